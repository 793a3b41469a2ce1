# Deployment: Lambda builds, the SAM template, the CDK app (infra/) and the
# checks that keep them the same system. Included from the root Makefile.
#
# One recipe builds every bootstrap: `make build-functions` for tests and
# the CDK assets, and `sam build` (BuildMethod: makefile, the build-<Id>
# targets below) copies the very same file, so what the RIE tests run is
# what is shipped.

GO ?= go

# Functions are the folders under functions/ with a main.go; a new function
# is built, sized and invokable without touching this file.
LAMBDA_FUNCTIONS ?= $(sort $(notdir $(patsubst %/main.go,%,$(wildcard functions/*/main.go))))
# arm64 is what AWS runs (template.yaml, infra/); amd64 is what this machine's
# RIE runs. Same source, same flags.
LAMBDA_ARCHS     ?= arm64 amd64
LAMBDA_DIST      ?= dist/lambda
LAMBDA_GOFLAGS   := -tags lambda.norpc -trimpath -ldflags '-s -w'

DEPLOY_CACHE   := $(CURDIR)/.cache
TOOLS_VENV     := $(DEPLOY_CACHE)/venv-tools
SAM            := $(TOOLS_VENV)/bin/sam
CFN_LINT       := $(TOOLS_VENV)/bin/cfn-lint
# The CDK CLI (npm) for `make synth`/`make deploy`; tests synthesize in-process
# and do not need it.
AWS_CDK_CLI_VERSION ?= 2.1148.1
CDK_PREFIX     := $(DEPLOY_CACHE)/cdk-cli-$(AWS_CDK_CLI_VERSION)
CDK            := $(CDK_PREFIX)/node_modules/.bin/cdk
STAGE          ?= dev
# The AWS variables of local/stack.env point at moto; deploy and synth must
# never inherit them.
REAL_AWS_ENV   := env -u AWS_ENDPOINT_URL -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY
# No telemetry or notices calls from the CDK CLI.
CDK_ENV        := CDK_DISABLE_CLI_TELEMETRY=true

# The bootstrap of one function and architecture.
lambda_bin = $(LAMBDA_DIST)/$(2)/$(1)/bootstrap

.PHONY: build-functions
build-functions: ## Build one bootstrap per function for provided.al2023 (arm64 and amd64) into dist/lambda/ and print sizes
	@set -e; for arch in $(LAMBDA_ARCHS); do for fn in $(LAMBDA_FUNCTIONS); do \
	  $(call lambda_build,$$fn,$$arch); \
	done; done
	@$(lambda_sizes)

.PHONY: lambda-sizes
lambda-sizes: ## Print the size of every built bootstrap
	@$(lambda_sizes)

# lambda_build builds one bootstrap: $(call lambda_build,FN,ARCH).
lambda_build = CGO_ENABLED=0 GOOS=linux GOARCH=$(2) $(GO) build $(LAMBDA_GOFLAGS) -o $(call lambda_bin,$(1),$(2)) ./functions/$(1)

define lambda_sizes
printf '%-12s %-6s %10s\n' function arch bytes; \
for arch in $(LAMBDA_ARCHS); do for fn in $(LAMBDA_FUNCTIONS); do \
  f=$(call lambda_bin,$$fn,$$arch); [ -f $$f ] || continue; s=$$(stat -c %s $$f); \
  awk -v f=$$fn -v a=$$arch -v s=$$s 'BEGIN { printf "%-12s %-6s %10d  %5.1f MiB\n", f, a, s, s/1048576 }'; \
done; done
endef

# `sam build` (BuildMethod: makefile) runs `make build-<LogicalId>` with
# ARTIFACTS_DIR set: LoginFunction -> functions/login, SyncWorkerFunction ->
# functions/syncworker. Same recipe as build-functions.
build-%Function:
	$(call lambda_build,$(call fn_of,$*),arm64)
	cp $(call lambda_bin,$(call fn_of,$*),arm64) $(ARTIFACTS_DIR)/bootstrap

fn_of = $(shell printf '%s' '$(1)' | tr 'A-Z' 'a-z')

# --- tools ------------------------------------------------------------------------

# aws-sam-cli and cfn-lint, pinned in local/requirements-tools.txt.
$(TOOLS_VENV)/.requirements: local/requirements-tools.txt
	@echo "installing template checkers into $(TOOLS_VENV) (pip)"
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	cp $< $@

.PHONY: deploy-tools
deploy-tools: $(TOOLS_VENV)/.requirements ## Install aws-sam-cli and cfn-lint (pinned) into .cache/venv-tools

# The CDK CLI, only for `make synth` / `make deploy` (tests synthesize in-process).
$(CDK):
	@echo "installing the AWS CDK CLI $(AWS_CDK_CLI_VERSION) into $(CDK_PREFIX) (npm)"
	mkdir -p $(CDK_PREFIX)
	npm install --no-audit --no-fund --silent --prefix $(CDK_PREFIX) aws-cdk@$(AWS_CDK_CLI_VERSION)

.PHONY: cdk-cli
cdk-cli: $(CDK) ## Install the AWS CDK CLI (pinned) into .cache/

# --- templates -------------------------------------------------------------------

# The synthesized templates the checks look at: the CDK app run in-process
# (no CLI, no AWS credentials), once per stage, with stand-in code assets so
# the check does not depend on a build.
SYNTH_DIR := $(CURDIR)/.cache/synth
STAGES    := dev prod

.PHONY: synth-templates
synth-templates: # CDK templates for every stage into .cache/synth/<stage>/
	@set -e; rm -rf $(SYNTH_DIR); for fn in $(LAMBDA_FUNCTIONS); do \
	  mkdir -p $(SYNTH_DIR)/assets/$$fn; : > $(SYNTH_DIR)/assets/$$fn/bootstrap; done; \
	for stage in $(STAGES); do \
	  start=$$(date +%s%N); \
	  (cd infra && $(REAL_AWS_ENV) JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 \
	    CDK_OUTDIR=$(SYNTH_DIR)/$$stage \
	    CDK_CONTEXT_JSON='{"stage":"'$$stage'","lambdaDist":"$(SYNTH_DIR)/assets"}' \
	    $(GO) run . 2>&1 | { grep -v '^!!' || true; }); \
	  test -f $(SYNTH_DIR)/$$stage/Kcguard-$$stage.template.json; \
	  echo "synthesized Kcguard-$$stage in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"; \
	done

# W3005: CDK adds DependsOn on the function's role next to its GetAtt; the
# redundancy is CDK's, harmless, and not ours to change.
CFN_LINT_IGNORE := W3005

.PHONY: template-check
template-check: deploy-tools synth-templates ## sam validate --lint on template.yaml, cfn-lint on the synthesized CDK templates
	SAM_CLI_TELEMETRY=0 $(REAL_AWS_ENV) AWS_REGION=us-east-1 $(SAM) validate --lint -t template.yaml
	$(CFN_LINT) --ignore-checks $(CFN_LINT_IGNORE) -- $(foreach s,$(STAGES),$(SYNTH_DIR)/$(s)/Kcguard-$(s).template.json)
	@echo "template checks passed: template.yaml, $(foreach s,$(STAGES),Kcguard-$(s))"

# --- CDK app -----------------------------------------------------------------------

.PHONY: test-infra
test-infra: ## CDK assertions, cdk-nag (AwsSolutions) and the SAM/CDK/code parity test (infra/)
	cd infra && $(GO) vet ./...
	@test -z "$$(gofmt -l infra)" || { gofmt -l infra; exit 1; }
	cd infra && $(REAL_AWS_ENV) JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 $(GO) test -count=1 ./... 2>&1 | { grep -v '^!!' || true; }; exit $${PIPESTATUS[0]}

.PHONY: template-tables
template-tables: ## Rewrite template.yaml's tables from pkg/schema (infra's TestTemplateTablesAreGenerated fails until you do)
	cd infra && $(GO) test -count=1 -run '^TestTemplateTablesAreGenerated$$' . -update-template

.PHONY: infra-tidy
infra-tidy: ## go mod tidy in infra/ (after the root module's dependencies change)
	cd infra && $(GO) mod tidy

.PHONY: synth
synth: build-functions $(CDK) ## cdk synth (STAGE=dev|prod) into infra/cdk.out, with the built arm64 bootstraps
	cd infra && $(REAL_AWS_ENV) $(CDK_ENV) $(CDK) synth --no-notices --quiet -c stage=$(STAGE) -c lambdaDist=$(CURDIR)/$(LAMBDA_DIST)/arm64 --output cdk.out
	@ls -l infra/cdk.out/*.template.json

.PHONY: deploy
deploy: build-functions $(CDK) ## cdk deploy STAGE=dev|prod KEYCLOAK_URL=https://... PACKAGES='{...}' [ADMIN_PRINCIPALS=arn,...] with your AWS credentials (README, Deployment)
	@test -n "$(KEYCLOAK_URL)" -a -n '$(PACKAGES)' || { echo "usage: make deploy STAGE=prod KEYCLOAK_URL=https://... PACKAGES='{\"pkg\":{\"realm\":\"...\",\"client_id\":\"...\"}}' [ALERT_EMAIL=...]"; exit 2; }
	cd infra && $(REAL_AWS_ENV) $(CDK_ENV) $(CDK) deploy --no-notices -c stage=$(STAGE) -c lambdaDist=$(CURDIR)/$(LAMBDA_DIST)/arm64 \
	  $(if $(ALERT_EMAIL),-c alertEmail=$(ALERT_EMAIL)) \
	  $(if $(ADMIN_PRINCIPALS),--parameters AdminPrincipals='$(ADMIN_PRINCIPALS)') \
	  --parameters KeycloakUrl=$(KEYCLOAK_URL) --parameters Packages='$(PACKAGES)' Kcguard-$(STAGE)

# --- running the built functions (RIE) ------------------------------------------------------

.PHONY: invoke
invoke: ## Run a built function under the Lambda RIE with an event: make invoke FN=login EVENT=events/login.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=login EVENT=events/login.json"; exit 2; }
	$(call lambda_build,$(FN),amd64)
	$(GO) run ./internal/rietest/cmd/rie-invoke -fn $(FN) -event $(EVENT)

.PHONY: lambda-amd64
lambda-amd64: # the bootstraps this machine's RIE runs
	@set -e; for fn in $(LAMBDA_FUNCTIONS); do $(call lambda_build,$$fn,amd64); done

.PHONY: test-rie
test-rie: lambda-amd64 ## End-to-end: every built bootstrap under the Lambda RIE against the local stack, with events/
	local/with-stack.sh $(GO) test -count=1 -tags rie -timeout 15m ./test/e2e/...

.PHONY: test-deploy
test-deploy: template-check test-infra test-rie ## All deployment checks: templates, CDK assertions/nag/parity, RIE end-to-end
