package platform_test

// Login latency side by side against the local stack (make bench):
//
//	a  direct gocloak password grant (no kcguard)
//	b  kcguard login, Keycloak healthy
//	c  kcguard login, breaker open (Keycloak blackholed)
//	d  naive login: local check, then a grant with the same timeout on
//	   every request while Keycloak is blackholed (no breaker)
//
// Each reports p50_ms and p99_ms; BENCHMARKS.md has the table and ratios.

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/users"
)

// timed runs op b.N times and reports the p50 and p99 of its latency.
func timed(b *testing.B, op func()) {
	var l []time.Duration
	for b.Loop() {
		start := time.Now()
		op()
		l = append(l, time.Since(start))
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	pct := func(p float64) float64 {
		return float64(l[min(len(l)-1, int(p*float64(len(l))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func BenchmarkLogin(b *testing.B) {
	e := stacktest.New(b, func(c *config.Config) { c.Log.Level = "error" })
	u := e.NewUser(b, "homechoice")
	ctx := context.Background()
	r := testenv.Homechoice
	kc := gocloak.NewClient(e.Config.Keycloak.URL)
	login := func(b *testing.B, want auth.Mode) func() {
		return func() {
			res, err := e.Login(u, u.Password)
			if err != nil || res.Mode != want {
				b.Fatalf("want %s: %+v %v", want, res, err)
			}
		}
	}

	b.Run("a_direct_grant", func(b *testing.B) {
		timed(b, func() {
			if _, err := kc.Login(ctx, r.ClientID, r.ClientSecret, r.Name, u.Name, u.Password); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("b_kcguard_keycloak_up", func(b *testing.B) { timed(b, login(b, auth.ModeKeycloak)) })
	b.Run("b2_kcguard_parallel_grant", func(b *testing.B) {
		p := stacktest.New(b, func(c *config.Config) { c.Log.Level = "error"; c.Keycloak.ParallelGrant = true })
		pu := p.NewUser(b, "homechoice")
		timed(b, func() {
			if res, err := p.Login(pu, pu.Password); err != nil || res.Mode != auth.ModeKeycloak {
				b.Fatalf("%+v %v", res, err)
			}
		})
	})

	e.Proxy.Blackhole() // connections hang: the worst kind of outage
	defer e.Proxy.Heal()
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("c_kcguard_breaker_open", func(b *testing.B) { timed(b, login(b, auth.ModeCached)) })

	hasher, err := platform.Hasher(e.Config)
	if err != nil {
		b.Fatal(err)
	}
	key := users.Key{Package: u.Package, Username: u.Name}
	b.Run("d_naive_keycloak_cut", func(b *testing.B) {
		timed(b, func() {
			entry, err := e.RT.Users.Lookup(ctx, key, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			h, _ := credential.ParseHash(entry.User.Hash.SecretData, entry.User.Hash.CredentialData)
			if ok, _ := hasher.Verify(h, u.Password); !ok {
				b.Fatal("local check failed")
			}
			if _, err := e.RT.Keycloak.PasswordGrant(ctx, u.Package, u.Name, u.Password); err == nil {
				b.Fatal("grant through a blackholed proxy succeeded")
			}
		})
	})
}
