package platform_test

// The lockout and the source throttle against DynamoDB (moto) and the real
// Keycloak: parallel guesses, a source spraying usernames, and the audit
// trail of a password typed into the username field.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// countingHasher counts password checks at the hasher.
type countingHasher struct {
	auth.PasswordHasher
	checks atomic.Int64
}

func (c *countingHasher) Verify(h credential.Hash, pw string) (bool, error) {
	c.checks.Add(1)
	return c.PasswordHasher.Verify(h, pw)
}

func (c *countingHasher) VerifyDummy(pw string) bool {
	c.checks.Add(1)
	return c.PasswordHasher.VerifyDummy(pw)
}

// guardedService is e's service with its checks counted at the hasher.
func guardedService(t *testing.T, e *stacktest.Env) (*auth.Service, *countingHasher) {
	t.Helper()
	rt, err := platform.Build(context.Background(), e.Config, e.RT.AWS, slog.New(slog.NewJSONHandler(e.Logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := platform.Hasher(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	c := &countingHasher{PasswordHasher: h}
	svc, err := rt.NewAuth(c)
	if err != nil {
		t.Fatal(err)
	}
	return svc, c
}

func TestParallelGuessesAgainstDynamoDB(t *testing.T) {
	// A lock that outlasts the slowest run on a loaded machine: the
	// correct password below must meet it, not its end.
	e := stacktest.New(t, func(c *config.Config) { c.Lockout.Delay, c.Lockout.MaxDelay = 10*time.Minute, 15*time.Minute })
	u := e.NewUser(t, "homechoice")
	svc, hasher := guardedService(t, e)
	const guesses, max = 200, 5 // lockout.max_failures is 5 by default
	for _, name := range []string{u.Name, "lockout-nobody-" + testenv.Unique("u")} {
		before := hasher.checks.Load()
		var (
			wg            sync.WaitGroup
			wrong, locked atomic.Int64
			start         = make(chan struct{})
		)
		t0 := time.Now()
		for i := range guesses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := svc.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: name,
					Password: fmt.Sprintf("guess-%03d", i), SourceIP: fmt.Sprintf("198.51.100.%d", i)})
				var le *auth.LockedError
				switch {
				case errors.Is(err, auth.ErrInvalidCredentials):
					wrong.Add(1)
				case errors.As(err, &le):
					locked.Add(1)
				default:
					t.Errorf("guess %d: %v", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		checked := hasher.checks.Load() - before
		t.Logf("%d parallel guesses for %s: %d passwords checked at the hasher, %d wrong, %d locked, in %s",
			guesses, name, checked, wrong.Load(), locked.Load(), time.Since(t0).Round(time.Millisecond))
		if checked > max || wrong.Load() != checked || locked.Load() != guesses-checked {
			t.Fatalf("%d checked (%d wrong, %d locked), want at most %d checked and the rest locked", checked, wrong.Load(), locked.Load(), max)
		}
		_, err := svc.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: name, Password: u.Password,
			SourceIP: "192.0.2.10"})
		var le *auth.LockedError
		if !errors.As(err, &le) {
			t.Fatalf("the correct password while locked: %v", err)
		}
	}
}

func TestSourceThrottleAgainstDynamoDB(t *testing.T) {
	const hmacKey = "lockout-test-audit-key"
	e := stacktest.New(t, func(c *config.Config) {
		c.Audit.UsernameHMACKey = hmacKey
		// Outlasts the spray on a loaded machine, so every name after the
		// limit meets the throttle (not its end).
		c.Lockout.SourceDelay, c.Lockout.SourceMaxDelay = 10*time.Minute, 15*time.Minute
	})
	u := e.NewUser(t, "homechoice")
	const attacker = "192.0.2.99"
	limit := e.Config.Lockout.SourceMaxFailures
	typed := "Typed-Into-Username-" + testenv.Unique("pw") // a password in the username field
	names := []string{typed, u.Name}
	for i := len(names); i < limit+10; i++ {
		names = append(names, fmt.Sprintf("spray-%03d", i))
	}
	var checked, throttled int
	for _, name := range names {
		before := e.Calls.Snapshot()
		_, err := e.RT.Auth.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: name,
			Password: "Winter2026!", SourceIP: attacker})
		var te *auth.ThrottledError
		switch {
		case errors.Is(err, auth.ErrInvalidCredentials):
			checked++
		case errors.As(err, &te):
			if throttled == 0 {
				n := 0
				for op, c := range e.Calls.Snapshot() {
					n += c - before[op]
				}
				// The source's stored count is what the throttle decides on.
				src, err := e.RT.Users.SourceFailures(context.Background(), audit.NewPseudonyms([]byte(hmacKey)).Source(attacker), time.Now())
				if err != nil || src.FailedAttempts < limit {
					t.Fatalf("throttled at a stored count of %d (%v), want at least %d", src.FailedAttempts, err, limit)
				}
				t.Logf("1 source x %d usernames: 429 too_many_requests after %d checked failures (stored count %d), Retry-After %s, %d DynamoDB round trips",
					len(names), checked, src.FailedAttempts, te.RetryAfter.Round(time.Second), n)
			}
			throttled++
		default:
			t.Fatalf("%s: %v", name, err)
		}
	}
	// At most the limit is checked. (moto ignores ClientRequestToken, so an
	// SDK retry of a failure's transaction under load can count it twice
	// and throttle one check early; DynamoDB dedups that retry.)
	if checked > limit || checked < limit-2 || throttled != len(names)-checked {
		t.Fatalf("1 source x %d usernames: %d checked, %d throttled; want %d checked", len(names), checked, throttled, limit)
	}
	// The users the spray named are not locked: from another address the
	// right password works at once.
	if res, err := e.RT.Auth.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: u.Name,
		Password: u.Password, SourceIP: "198.51.100.20"}); err != nil || res.Mode != auth.ModeKeycloak {
		t.Fatalf("the named user from another address: %+v %v", res, err)
	}
	for _, name := range names {
		k, _ := userkey.New(u.Package, name)
		if lo, err := e.RT.Users.Lockout(context.Background(), k, time.Now()); err != nil || lo.Locked(time.Now()) {
			t.Fatalf("%s locked by the spray: %+v %v", name, lo, err)
		}
	}
	// The scan below sees the trail: the known user under their own name,
	// the unknown ones as keyed hashes.
	if trail := e.AuditTrail(t); !strings.Contains(trail, u.Name) || !strings.Contains(trail, audit.PseudonymPrefix) {
		t.Fatalf("audit trail lacks the known user or the pseudonyms:\n%.2000s", trail)
	}
	e.AssertNoSecrets(t, typed, u.Password)
}
