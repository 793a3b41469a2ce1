# kcguard — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include local/stack.env
export AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL KCGUARD_CONFIG

GO        ?= go
BIN       := bin
GOTESTFLAGS ?= -count=1 -timeout 30m
# Integration tests share one moto and one Keycloak on a 2-core machine, and
# some assert latency bounds (a login within Keycloak's timeout + 200 ms), so
# packages run one at a time: the 100k-session cleanup test alone keeps a
# core busy for minutes.
GOTESTP   ?= 1

include mk/deploy.mk

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install the local stack's components into .cache/ (Keycloak, moto, toxiproxy, RIE)
	local/stack.sh install

.PHONY: up
up: kcguard ## Start the local stack, create tables/queues/keys, seed users, serve the API on 127.0.0.1:3000
	local/stack.sh up
	$(BIN)/kcguard config fix
	$(BIN)/kcguard users seed local/realms/*.json
	local/stack.sh start api $(CURDIR)/$(BIN)/kcguard serve
	local/stack.sh start sync $(CURDIR)/$(BIN)/kcguard sync run
	local/stack.sh start cleanup $(CURDIR)/$(BIN)/kcguard cleanup run --schedule
	local/stack.sh wait api http://127.0.0.1:3000/login 30 499
	@echo "kcguard API on http://127.0.0.1:3000 (try: make try-login); stop with: make down"

.PHONY: try-login
try-login: ## Log in as a seeded user through the local API
	curl -sS -XPOST http://127.0.0.1:3000/login -H 'content-type: application/json' \
	  -d '{"username":"alice.hc","password":"alice-Homechoice-1","package":"homechoice"}'; echo

.PHONY: down
down: ## Stop everything `make up` started
	local/stack.sh down

.PHONY: status
status: ## Show which local services are running
	local/stack.sh status

.PHONY: kcguard
kcguard: ## Build the kcguard CLI into bin/
	$(GO) build -o $(BIN)/kcguard ./cmd/kcguard

.PHONY: build
build: kcguard build-functions ## Build the CLI and every Lambda bootstrap
	$(GO) build ./...

.PHONY: test-short
test-short: ## Unit tests only (no services needed)
	$(GO) test -short $(GOTESTFLAGS) ./...

.PHONY: test
test: lambda-amd64 template-check test-infra ## All tests: templates, CDK, then (stack started if needed) every Go test incl. RIE end-to-end
	$(GO) vet ./...
	$(GO) vet -tags rie ./test/e2e/
	local/with-stack.sh $(GO) test -tags rie -p $(GOTESTP) $(GOTESTFLAGS) ./...

BENCH_OUT ?= .cache/bench

.PHONY: bench
bench: lambda-amd64 ## Benchmarks and load runs against the local stack, one package at a time; raw output in .cache/bench/ (see BENCHMARKS.md)
	mkdir -p $(BENCH_OUT)
	local/with-stack.sh bash -c 'set -o pipefail; $(GO) test -p 1 -run "^$$" -bench . -benchtime 3s -count=1 -timeout 60m ./... | tee $(BENCH_OUT)/go-bench.txt && \
	  $(GO) test -tags rie -run "^$$" -bench BenchmarkColdStart -benchtime 1x -count=1 -timeout 20m ./test/e2e | tee $(BENCH_OUT)/coldstart.txt && \
	  KCGUARD_BENCH=1 $(GO) test -count=1 -v -run "TestFleetBenchTable" -timeout 30m ./pkg/breaker | tee $(BENCH_OUT)/breaker-fleet.txt'

.PHONY: chaos
chaos: ## Issue 15's chaos run, five minutes: fleet of 4 + faults on Keycloak and moto; report in .cache/chaos/ (see RELIABILITY.md)
	local/with-stack.sh env KCGUARD_CHAOS=full $(GO) test -count=1 -timeout 30m -v -run '^TestChaos$$' ./test/chaos/

BENCH_ABS = $(abspath $(BENCH_OUT))

.PHONY: bench-login
bench-login: ## Login latency, interleaved (BenchmarkLogin), and where a login's time goes (BenchmarkLoginProfile: CPU profile and trace in .cache/bench/)
	mkdir -p $(BENCH_OUT)
	local/with-stack.sh bash -c 'set -o pipefail; $(GO) test -run "^$$" -bench "BenchmarkLogin$$" -benchtime 1x -count=1 -timeout 30m ./pkg/platform | tee $(BENCH_OUT)/login.txt && \
	  $(GO) test -run "^$$" -bench BenchmarkLoginProfile -benchtime 1x -count=1 -timeout 30m -o $(BENCH_ABS)/platform.test \
	    -cpuprofile $(BENCH_ABS)/login-cpu.out -trace $(BENCH_ABS)/login-trace.out ./pkg/platform | tee $(BENCH_OUT)/login-profile.txt && \
	  $(GO) tool pprof -top -nodecount 40 $(BENCH_ABS)/platform.test $(BENCH_ABS)/login-cpu.out > $(BENCH_OUT)/login-cpu-top.txt && \
	  local/cpu-breakdown.sh $(BENCH_ABS)/platform.test $(BENCH_ABS)/login-cpu.out | tee $(BENCH_OUT)/login-cpu-breakdown.txt'

.PHONY: bench-capacity
bench-capacity: ## Logins/s and p99 of one kcguard serve in local mode during an outage (BenchmarkOutageCapacity)
	mkdir -p $(BENCH_OUT)
	local/with-stack.sh bash -c 'set -o pipefail; $(GO) test -run "^$$" -bench BenchmarkOutageCapacity -benchtime 1x -count=1 -timeout 30m ./test/load | tee $(BENCH_OUT)/capacity.txt'

.PHONY: bench-coldstart
bench-coldstart: lambda-amd64 ## Every bootstrap's init, first and warm invocation, and size (BenchmarkColdStart, fake runtime API)
	mkdir -p $(BENCH_OUT)
	local/with-stack.sh bash -c 'set -o pipefail; $(GO) test -tags rie -run "^$$" -bench BenchmarkColdStart -benchtime 1x -count=1 -timeout 20m ./test/e2e | tee $(BENCH_OUT)/coldstart.txt'

.PHONY: fmt
fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
