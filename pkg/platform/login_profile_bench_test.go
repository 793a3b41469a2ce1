package platform_test

// Where a healthy login's time goes: N sequential logins of one user with
// the default configuration over HTTP, each part timed where it happens
// (the API's HTTP and JSON, every AWS SDK call, the argon2 check, the
// Keycloak round trip). With -cpuprofile / -trace the same run gives the
// CPU profile and the execution trace (BENCHMARKS.md, "Where the time goes").

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/middleware"

	"github.com/kcguard/kcguard/internal/benchstat"
	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/platform"
)

// spans collects the intervals of named parts of the current login.
type spans struct {
	mu sync.Mutex
	d  map[string][]interval
}

type interval struct{ start, end time.Time }

func (s *spans) add(name string, start time.Time) {
	end := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d[name] = append(s.d[name], interval{start, end})
}

// take returns and clears what was recorded since the last take. A
// login's two transactions are told apart by order: the first-attempt
// reservation (alongside the read) comes before the outcome.
func (s *spans) take() map[string][]interval {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	s.d = map[string][]interval{}
	if tx := d["aws TransactWriteItems"]; len(tx) == 2 {
		slices.SortFunc(tx, func(a, b interval) int { return a.start.Compare(b.start) })
		delete(d, "aws TransactWriteItems")
		d["aws TransactWriteItems: reserve first attempt"] = tx[:1]
		d["aws TransactWriteItems: outcome"] = tx[1:]
	}
	return d
}

// sum is the intervals' total length.
func sum(iv []interval) time.Duration {
	var t time.Duration
	for _, x := range iv {
		t += x.end.Sub(x.start)
	}
	return t
}

// covered is how much wall time the intervals cover together: parts that
// ran at the same time (the read and the first-attempt reservation, the
// hash and the grant) count once.
func covered(iv []interval) time.Duration {
	slices.SortFunc(iv, func(a, b interval) int { return a.start.Compare(b.start) })
	var total time.Duration
	var cur interval
	for i, x := range iv {
		switch {
		case i == 0:
			cur = x
		case x.start.After(cur.end):
			total += cur.end.Sub(cur.start)
			cur = x
		case x.end.After(cur.end):
			cur.end = x.end
		}
	}
	if len(iv) > 0 {
		total += cur.end.Sub(cur.start)
	}
	return total
}

// sdkTimer times every AWS SDK call (serialise, sign, send, retry,
// deserialise) by service and operation.
func (s *spans) sdkTimer(stack *middleware.Stack) error {
	op := stack.ID()
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("perfspans",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			s.add("aws "+op, start)
			return out, md, err
		}), middleware.Before)
}

type timedTransport struct {
	s    *spans
	next http.RoundTripper
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.s.add("keycloak "+lastSegment(r.URL.Path), start)
	return resp, err
}

func lastSegment(p string) string { return p[strings.LastIndex(p, "/")+1:] }

// timedHasher times each password verification.
type timedHasher struct {
	auth.PasswordHasher
	s *spans
}

func (h timedHasher) Verify(stored credential.Hash, password string) (bool, error) {
	start := time.Now()
	defer h.s.add("argon2 verify", start)
	return h.PasswordHasher.Verify(stored, password)
}

func BenchmarkLoginProfile(b *testing.B) {
	n := benchstat.Int(b, "KCGUARD_BENCH_LOGINS", 100)
	e := stacktest.New(b, benchConfig)
	u := e.NewUserPrefixed(b, "homechoice", "perf-profile")
	s := &spans{d: map[string][]interval{}}

	// The same Runtime as the Lambda function's, on the Env's resources,
	// with every SDK client and the Keycloak client timed.
	awsCfg := testenv.AWS(b)
	awsCfg.APIOptions = append(awsCfg.APIOptions, s.sdkTimer)
	rt, err := platform.Build(context.Background(), e.Config, awsCfg, e.RT.Log)
	if err != nil {
		b.Fatal(err)
	}
	kcOpts := platform.KeycloakOptions(rt.Config, rt.Log)
	kcOpts.HTTPClient = &http.Client{Transport: timedTransport{s: s, next: http.DefaultTransport.(*http.Transport).Clone()}}
	if rt.Keycloak, err = keycloak.New(kcOpts); err != nil {
		b.Fatal(err)
	}
	hasher, err := platform.Hasher(rt.Config)
	if err != nil {
		b.Fatal(err)
	}
	if rt.Auth, err = rt.NewAuth(timedHasher{PasswordHasher: hasher, s: s}); err != nil {
		b.Fatal(err)
	}
	routes := rt.Routes()
	for i := range routes {
		h := routes[i].Handler
		routes[i].Handler = func(ctx context.Context, r httpapi.Request) (httpapi.Response, error) {
			start := time.Now()
			defer s.add("handler", start)
			return h(ctx, r)
		}
	}
	srv := httptest.NewServer(&httpapi.Server{Routes: routes, MaxBodyBytes: int64(rt.Config.API.MaxBodyBytes), Log: rt.Log})
	b.Cleanup(srv.Close)

	// The first login after the Runtime was built pays the one-time setup
	// (connections, the token cache's data key, the breaker's first read):
	// what a Lambda function's first invocation pays after its init.
	s.take()
	start := time.Now()
	if err := apiLogin(srv.URL, u, "keycloak"); err != nil {
		b.Fatal(err)
	}
	firstTotal := time.Since(start)
	first := s.take()
	var firstTbl strings.Builder
	fmt.Fprintf(&firstTbl, "\n%-48s %9.2f\n", "total (client's view)", benchstat.Ms(firstTotal))
	for _, name := range slices.Sorted(maps.Keys(first)) {
		fmt.Fprintf(&firstTbl, "%-48s %9.2f  (%d calls)\n", name, benchstat.Ms(sum(first[name])), len(first[name]))
	}
	fmt.Printf("BenchmarkLoginProfile: the first login after the Runtime was built (ms)%s", firstTbl.String())

	// Warm up: connection pools, Keycloak's JIT.
	for range 10 {
		if err := apiLogin(srv.URL, u, "keycloak"); err != nil {
			b.Fatal(err)
		}
	}
	s.take()
	per, calls := map[string][]float64{}, map[string]int{}
	var critical, totals []float64
	for b.Loop() {
		for range n {
			start := time.Now()
			if err := apiLogin(srv.URL, u, "keycloak"); err != nil {
				b.Fatal(err)
			}
			total := time.Since(start)
			d := s.take()
			// The critical path: the wall time I/O and the hash covered.
			var parts []interval
			for name := range d {
				if name != "handler" {
					parts = append(parts, d[name]...)
				}
				per[name] = append(per[name], benchstat.Ms(sum(d[name])))
				calls[name] += len(d[name])
			}
			path := covered(parts)
			critical = append(critical, benchstat.Ms(path))
			totals = append(totals, benchstat.Ms(total))
			per["http+json outside the handler"] = append(per["http+json outside the handler"],
				benchstat.Ms(total-sum(d["handler"])))
			per["handler, off the critical path of I/O and hash"] = append(per["handler, off the critical path of I/O and hash"],
				benchstat.Ms(sum(d["handler"])-path))
		}
	}
	names := make([]string, 0, len(per))
	for name := range per {
		names = append(names, name)
	}
	slices.Sort(names)
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n%-48s %9s %9s %9s\n", "part (per login where it occurs)", "p50 ms", "mean ms", "calls/login")
	fmt.Fprintf(&tbl, "%-48s %9.2f %9.2f %9s\n", "total (client's view)", benchstat.Median(totals), benchstat.Mean(totals), "")
	fmt.Fprintf(&tbl, "%-48s %9.2f %9.2f %9s\n", "critical path: wall time of AWS, hash, Keycloak", benchstat.Median(critical), benchstat.Mean(critical), "")
	for _, name := range names {
		c := "-"
		if calls[name] > 0 {
			c = fmt.Sprintf("%.2f", float64(calls[name])/float64(len(totals)))
		}
		fmt.Fprintf(&tbl, "%-48s %9.2f %9.2f %9s\n", name, benchstat.Median(per[name]), benchstat.Mean(per[name]), c)
	}
	b.ReportMetric(benchstat.Median(totals), "p50_ms")
	b.ReportMetric(benchstat.Median(critical), "critical_p50_ms")
	// b.Log would cut the table at ten lines.
	fmt.Printf("BenchmarkLoginProfile: %d sequential healthy logins, default configuration%s", len(totals), tbl.String())
}
