package platform_test

// The parallel grant (keycloak.parallel_grant, on by default) against the
// real Keycloak 26.7.3 and its brute-force detector as the local realms
// configure it: a typo the speculative grant lets through must not cost the
// user their next correct password.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/platform"
)

const perfPrefix = "perf-"

// quickLoginCheck is the realm's quickLoginCheckMilliSeconds: two failures
// closer together than this lock the user for minimumQuickLoginWaitSeconds.
func quickLoginCheck(t *testing.T) time.Duration {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "local", "realms", "homechoice-realm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var realm struct {
		BruteForceProtected         bool  `json:"bruteForceProtected"`
		QuickLoginCheckMilliSeconds int64 `json:"quickLoginCheckMilliSeconds"`
	}
	if err := json.Unmarshal(data, &realm); err != nil {
		t.Fatal(err)
	}
	if !realm.BruteForceProtected || realm.QuickLoginCheckMilliSeconds <= 0 {
		t.Fatalf("the homechoice realm has no quick-login check to test against: %+v", realm)
	}
	return time.Duration(realm.QuickLoginCheckMilliSeconds) * time.Millisecond
}

// keycloakFailures polls Keycloak's brute-force record of the user (it is
// written asynchronously after the answer) until want holds or wait ends,
// and returns the last count seen.
func keycloakFailures(t *testing.T, e *stacktest.Env, pkg, id string, wait time.Duration, want func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		bf, err := e.RT.Keycloak.BruteForceStatus(context.Background(), pkg, id)
		if err != nil {
			t.Fatal(err)
		}
		if want(bf.Failures) || time.Now().After(deadline) {
			return bf.Failures
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParallelGrantTypoThenRightPassword(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	if !e.Config.Keycloak.ParallelGrant {
		t.Fatal("keycloak.parallel_grant is off by default: this test is about the default")
	}
	quick := quickLoginCheck(t)

	// A typo whose speculative grant Keycloak counted. The grant is
	// cancelled as soon as the local check fails; on a loaded machine
	// Keycloak may not have read it by then, so a typo Keycloak did not
	// count is followed by a good login (which clears kcguard's record and
	// puts the next attempt back in parallel) and tried again.
	typoReachingKeycloak := func(t *testing.T, u stacktest.User, id string) {
		t.Helper()
		for try := 1; ; try++ {
			if _, err := e.Login(u, "typo-"+u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("typo: %v, want invalid credentials", err)
			}
			if n := keycloakFailures(t, e, u.Package, id, 3*time.Second, func(n int) bool { return n >= 1 }); n == 1 {
				return
			} else if n > 1 {
				t.Fatalf("Keycloak counted %d failures for one typo", n)
			}
			if try == 3 {
				t.Fatal("three typos in parallel mode, none reached Keycloak: is the grant still started alongside the hash?")
			}
			time.Sleep(quick + 500*time.Millisecond)
			mustMode(t, e, u, u.Password, auth.ModeKeycloak)
		}
	}

	t.Run("a typo, a human pause, the right password", func(t *testing.T) {
		u := e.NewUserPrefixed(t, "homechoice", perfPrefix+"typo")
		id := kcID(t, e, u)
		typoReachingKeycloak(t, u, id)
		time.Sleep(quick + 500*time.Millisecond)
		mustMode(t, e, u, u.Password, auth.ModeKeycloak)
		if n := keycloakFailures(t, e, u.Package, id, 3*time.Second, func(n int) bool { return n == 0 }); n != 0 {
			t.Fatalf("Keycloak still counts %d failures after the good login", n)
		}
	})

	t.Run("two typos in a row, then the right password", func(t *testing.T) {
		// Sent straight to Keycloak, the second typo would land within
		// the quick-login check and lock the user for a minute. Through
		// kcguard the failure on record puts the user back in sequence:
		// the second typo is refused locally and never reaches Keycloak.
		u := e.NewUserPrefixed(t, "homechoice", perfPrefix+"typo2")
		id := kcID(t, e, u)
		typoReachingKeycloak(t, u, id)
		if _, err := e.Login(u, "typo2-"+u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("second typo: %v, want invalid credentials", err)
		}
		if n := keycloakFailures(t, e, u.Package, id, quick, func(n int) bool { return n > 1 }); n > 1 {
			t.Fatalf("Keycloak counted %d failures: the second typo reached it", n)
		}
		mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	})
}

// WarmLogin (a cold start's background calls) leaves the first login none
// of its one-time calls: no KMS data key, no breaker read.
func TestWarmLoginTakesTheFirstLoginsOneTimeCalls(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", perfPrefix+"warm")
	calls := ddbcount.New()
	awsCfg := testenv.AWS(t)
	calls.Attach(&awsCfg)
	rt, err := platform.Build(context.Background(), e.Config, awsCfg, e.RT.Log)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-rt.WarmLogin():
	case <-time.After(30 * time.Second):
		t.Fatal("WarmLogin did not finish")
	}
	keys, reads := calls.Count("GenerateDataKey"), calls.Count("GetItem")
	if keys != 1 || reads != 1 {
		t.Fatalf("warm-up: %d data keys and %d breaker reads, want 1 and 1", keys, reads)
	}
	res, err := rt.Auth.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: u.Name,
		Password: u.Password, SourceIP: "127.0.0.1"})
	if err != nil || res.Mode != auth.ModeKeycloak {
		t.Fatalf("%+v %v", res, err)
	}
	if k, r := calls.Count("GenerateDataKey"), calls.Count("GetItem"); k != keys || r != reads {
		t.Fatalf("the first login still asked KMS for %d data keys and read the breaker %d times", k-keys, r-reads)
	}
}

// Keycloak 26 refuses a user's parallel logins in the words of a wrong
// password (of 4 parallel right passwords it accepted 1). kcguard must not
// take that for an admin's reset: every answer is a login or a brief 429,
// and the local hash never goes stale.
func TestParallelLoginsOfOneUserAreNotAReset(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", perfPrefix+"parallel")
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	refusedByKeycloak := 0
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Login(u, u.Password)
				if err == nil && res.Mode != auth.ModeKeycloak {
					err = fmt.Errorf("mode %s", res.Mode)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			var locked *auth.LockedError
			switch {
			case err == nil:
			case errors.As(err, &locked) && locked.RetryAfter <= time.Second:
				refusedByKeycloak++
			default:
				t.Errorf("round %d: %v, want a login or a brief 429", round, err)
			}
		}
		if lu := localUser(t, e, u); lu.HashStale || !lu.Enabled {
			t.Fatalf("round %d: parallel logins recorded as Keycloak's verdict: %+v", round, lu)
		}
	}
	t.Logf("%d of 12 parallel logins refused by Keycloak's parallel-login guard (429, retry after 1 s)", refusedByKeycloak)
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
}
