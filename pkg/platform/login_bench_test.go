package platform_test

// Login latency side by side against the local stack (make bench), every
// variant over HTTP from the same kind of client:
//
//	a      direct Keycloak password grant (no kcguard)
//	b      kcguard POST /login, default configuration (grant alongside the hash)
//	b_seq  kcguard POST /login, keycloak.parallel_grant: false (hash, then grant)
//	c      kcguard POST /login, breaker forced open, Keycloak blackholed (cached token)
//
// The variants run interleaved: after warm-up rounds (Keycloak's JIT, the
// connection pools), each round runs every variant a few times in an order
// that rotates from round to round, so drift in the machine's load falls
// on all of them alike. A variant's p50 is the median of its per-round
// medians; b/a is the median of the per-round ratios. Each variant has
// users and an Env (tables, toxiproxy proxy) of its own, and no user logs
// in twice in a row: Keycloak 26 refuses a user's login while it still
// books the previous one (BENCHMARKS.md).
//
// d (naive: local check, then a grant with the same timeout against a
// blackholed Keycloak, no breaker) costs the full timeout per login, so it
// runs on its own, three times, after the rounds.
//
// BENCHMARKS.md has the table and how to reproduce it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/benchstat"
	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// benchConfig is the default configuration, quiet, with a patient Keycloak
// timeout: on a loaded machine a grant can outlast the 2 s default, and the
// login would then measure the fallback instead (the timeout changes
// nothing while Keycloak answers).
func benchConfig(c *config.Config) {
	c.Log.Level = "error"
	c.Keycloak.Timeout = 10 * time.Second
}

// client is the one HTTP client every variant uses (keep-alive, loopback).
var client = &http.Client{Timeout: 30 * time.Second}

// serveAPI serves the Env's HTTP API (the handlers `kcguard serve` and the
// Lambda functions run) on a loopback port of its own.
func serveAPI(tb testing.TB, e *stacktest.Env) string {
	srv := httptest.NewServer(&httpapi.Server{Routes: e.RT.Routes(), MaxBodyBytes: int64(e.Config.API.MaxBodyBytes), Log: e.RT.Log})
	tb.Cleanup(srv.Close)
	return srv.URL
}

// apiLogin posts one login and checks its answer's status and auth mode.
func apiLogin(base string, u stacktest.User, wantMode string) error {
	body, _ := json.Marshal(map[string]string{"username": u.Name, "password": u.Password, "package": u.Package})
	resp, err := client.Post(base+"/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out struct {
		AuthMode       string `json:"auth_mode"`
		KeycloakStatus string `json:"keycloak_status"`
		Error          struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.AuthMode != wantMode {
		// Not the body: it carries the session and Keycloak tokens.
		return fmt.Errorf("login %s: %d, auth_mode %q, keycloak_status %q, error %q; want 200 with auth_mode %s",
			u.Name, resp.StatusCode, out.AuthMode, out.KeycloakStatus, out.Error.Code, wantMode)
	}
	return nil
}

// directGrant is what an application without kcguard does: a password
// grant at Keycloak's token endpoint (through the same kind of proxy).
func directGrant(kcURL string, u stacktest.User) error {
	r := testenv.Homechoice
	form := url.Values{"grant_type": {"password"}, "client_id": {r.ClientID}, "client_secret": {r.ClientSecret},
		"username": {u.Name}, "password": {u.Password}}
	req, err := http.NewRequest(http.MethodPost, kcURL+"/realms/"+r.Name+"/protocol/openid-connect/token",
		strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// Sent again on a fresh connection if the pooled one was closed
	// unanswered, as kcguard's own grant is (pkg/keycloak: replayable).
	req.Header["Idempotency-Key"] = nil
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &tok) != nil || tok.AccessToken == "" {
		// Keycloak's own words (invalid_grant "Invalid user credentials" is
		// also its answer to a brute-force-locked user) say why.
		return fmt.Errorf("direct grant %s: %d %.200s", u.Name, resp.StatusCode, data)
	}
	return nil
}

type benchVariant struct {
	name string
	op   func(i int) error // the round's i-th login
	// per-round medians and every latency, in ms
	medians, all []float64
}

// interleave runs warmup+rounds rounds of per calls of every variant, the
// order rotating each round, and keeps what the measured rounds saw.
func interleave(b *testing.B, vs []*benchVariant, warmup, rounds, per int) {
	for r := range warmup + rounds {
		for k := range vs {
			v := vs[(k+r)%len(vs)]
			var round []float64
			for i := range per {
				start := time.Now()
				if err := v.op(i); err != nil {
					b.Fatalf("%s, round %d: %v", v.name, r, err)
				}
				round = append(round, benchstat.Ms(time.Since(start)))
			}
			if r >= warmup {
				v.medians = append(v.medians, benchstat.Median(round))
				v.all = append(v.all, round...)
			}
		}
	}
}

func BenchmarkLogin(b *testing.B) {
	warmup := benchstat.Int(b, "KCGUARD_BENCH_WARMUP", 3)
	rounds := benchstat.Int(b, "KCGUARD_BENCH_ROUNDS", 15)
	per := benchstat.Int(b, "KCGUARD_BENCH_PER_ROUND", 4)

	def := stacktest.New(b, benchConfig)
	seq := stacktest.New(b, benchConfig, func(c *config.Config) { c.Keycloak.ParallelGrant = false })
	open := stacktest.New(b, benchConfig)
	if !def.Config.Keycloak.ParallelGrant {
		b.Fatal("the default configuration no longer grants in parallel: update the variants' names")
	}
	// A user per login of a round: Keycloak refuses a login of a user it is
	// still booking the previous one of (see BENCHMARKS.md), so no user
	// logs in twice in a row.
	pool := func(e *stacktest.Env, prefix string) []stacktest.User {
		us := make([]stacktest.User, per)
		for i := range us {
			us[i] = e.NewUserPrefixed(b, "homechoice", prefix)
		}
		return us
	}
	ua, ub, us, ucs := pool(def, "perf-bench-a"), pool(def, "perf-bench-b"), pool(seq, "perf-bench-bseq"), pool(open, "perf-bench-c")
	uc := ucs[0]
	apiDef, apiSeq, apiOpen := serveAPI(b, def), serveAPI(b, seq), serveAPI(b, open)

	// c: a token cached by one healthy login, then the outage.
	for _, u := range ucs {
		if err := apiLogin(apiOpen, u, "keycloak"); err != nil {
			b.Fatal(err)
		}
	}
	open.Proxy.Blackhole() // connections hang: the worst kind of outage
	b.Cleanup(open.Proxy.Heal)
	if _, err := open.RT.Breaker.ForceOpen(context.Background()); err != nil {
		b.Fatal(err)
	}

	vs := []*benchVariant{
		{name: "a_direct_grant", op: func(i int) error { return directGrant(def.Config.Keycloak.URL, ua[i]) }},
		{name: "b_kcguard_default", op: func(i int) error { return apiLogin(apiDef, ub[i], "keycloak") }},
		{name: "b_seq_kcguard_sequential", op: func(i int) error { return apiLogin(apiSeq, us[i], "keycloak") }},
		{name: "c_kcguard_breaker_open", op: func(i int) error { return apiLogin(apiOpen, ucs[i], "cached") }},
	}
	for b.Loop() {
		interleave(b, vs, warmup, rounds, per)
	}

	a := vs[0]
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n%-26s %9s %9s %9s %6s %12s\n", "variant", "p50 ms", "p90 ms", "p99 ms", "n", "p50 / a")
	for _, v := range vs {
		ratios := make([]float64, len(v.medians))
		for i := range v.medians {
			ratios[i] = v.medians[i] / a.medians[i]
		}
		p50, ratio := benchstat.Median(v.medians), benchstat.Median(ratios)
		fmt.Fprintf(&tbl, "%-26s %9.1f %9.1f %9.1f %6d %12.3f\n", v.name, p50,
			benchstat.Percentile(v.all, 0.90), benchstat.Percentile(v.all, 0.99), len(v.all), ratio)
		short := strings.SplitN(v.name, "_kcguard", 2)[0]
		short = strings.TrimSuffix(short, "_direct_grant")
		b.ReportMetric(p50, short+"_p50_ms")
		b.ReportMetric(benchstat.Percentile(v.all, 0.99), short+"_p99_ms")
		if v != a {
			b.ReportMetric(ratio, short+"/a_p50")
		}
	}
	fmt.Printf("BenchmarkLogin: %d warm-up + %d rounds × %d logins per variant, order rotating; p50 = median of round medians, p50/a = median of per-round ratios%s",
		warmup, rounds, per, tbl.String())

	// d: what the breaker saves during an outage.
	hasher, err := platform.Hasher(open.Config)
	if err != nil {
		b.Fatal(err)
	}
	// The naive client waits the default timeout, not the benchmark's.
	naiveCfg := open.Config
	naiveCfg.Keycloak.Timeout = config.Default().Keycloak.Timeout
	naiveKC, err := platform.KeycloakClient(naiveCfg, open.RT.Log)
	if err != nil {
		b.Fatal(err)
	}
	key := userkey.Key{Package: uc.Package, Username: uc.Name}
	var naive []float64
	for range 3 {
		start := time.Now()
		entry, err := open.RT.Users.Lookup(context.Background(), key, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		h, _ := entry.User.Hash.Verifier()
		if ok, _ := hasher.Verify(h, uc.Password); !ok {
			b.Fatal("local check failed")
		}
		if _, err := naiveKC.PasswordGrant(context.Background(), uc.Package, uc.Name, uc.Password); err == nil {
			b.Fatal("grant through a blackholed proxy succeeded")
		}
		naive = append(naive, benchstat.Ms(time.Since(start)))
	}
	b.ReportMetric(benchstat.Median(naive), "d_p50_ms")
	fmt.Printf("d_naive_keycloak_cut (local check, then a grant with the %s timeout): p50 %.0f ms over %d logins; c/d = %.3f\n",
		naiveCfg.Keycloak.Timeout, benchstat.Median(naive), len(naive), benchstat.Median(vs[3].medians)/benchstat.Median(naive))
}
