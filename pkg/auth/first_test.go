package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// firstReads is a LoginReader that also reserves first attempts: the
// memory login record's ReserveFirst beside the plain reads (the DynamoDB
// login record does both in one round trip each).
type firstReads struct {
	storeReads
	loginrecord.Stores
	calls int
}

func (f *firstReads) ReserveFirst(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.FirstAttempt, error) {
	f.calls++
	return f.Stores.ReserveFirst(ctx, key, source, now)
}

// countedReserve counts the usual reservations.
type countedReserve struct {
	Users
	n int
}

func (c *countedReserve) Reserve(ctx context.Context, key userkey.Key, maxFailures int, now time.Time) (users.Attempt, error) {
	c.n++
	return c.Users.Reserve(ctx, key, maxFailures, now)
}

func TestFirstAttemptIsReservedAlongsideTheRead(t *testing.T) {
	var reads *firstReads
	var reserve *countedReserve
	h := newHarness(t, func(d *Deps, s *Settings) {
		s.ParallelKeycloak = true
		reserve = &countedReserve{Users: d.Users}
		reads = &firstReads{storeReads: storeReads{users: d.Users, tokens: d.Tokens}, Stores: d.Recorder.(*memRecorder).Stores}
		d.Users, d.Reads = reserve, reads
	})
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")

	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("%+v %v", res, err)
	}
	if reads.calls != 1 || reserve.n != 0 {
		t.Fatalf("first attempt: %d first-reservations, %d usual ones; want 1 and 0", reads.calls, reserve.n)
	}
	// A failure on record: the usual reservation counts past it, and the
	// next attempt is not put to Keycloak alongside its hash.
	if _, err := h.login("alice", "typo"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	grants := h.kc.Calls(keycloaktest.PasswordGrant)
	if _, err := h.login("alice", "typo-2"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if reserve.n != 1 || h.kc.Calls(keycloaktest.PasswordGrant) != grants {
		t.Fatalf("after a failure: %d usual reservations (want 1), %d grants for the second typo (want 0)",
			reserve.n, h.kc.Calls(keycloaktest.PasswordGrant)-grants)
	}
	if l, _ := h.users.Lockout(context.Background(), userkey.Key{Package: pkg, Username: "alice"}, h.now); l.FailedAttempts != 2 {
		t.Fatalf("%d failures on record, want 2", l.FailedAttempts)
	}
}

func TestThrottledSourceReservesNothingAlongsideTheRead(t *testing.T) {
	var reads *firstReads
	h := newHarness(t, func(d *Deps, s *Settings) {
		reads = &firstReads{storeReads: storeReads{users: d.Users, tokens: d.Tokens}, Stores: d.Recorder.(*memRecorder).Stores}
		d.Reads = reads
	})
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	src := h.svc.sourceOf("192.0.2.1")
	if err := h.users.RecordSourceFailure(context.Background(), src,
		users.Lockout{FailedAttempts: 40, LastFailureAt: h.now, LockedUntil: h.now.Add(time.Minute)}, h.now); err != nil {
		t.Fatal(err)
	}
	var throttled *ThrottledError
	if _, err := h.login("alice", "alice-password-1"); !errors.As(err, &throttled) || throttled.RetryAfter != time.Minute {
		t.Fatalf("%v, want throttled for a minute", err)
	}
	if l, _ := h.users.Lockout(context.Background(), userkey.Key{Package: pkg, Username: "alice"}, h.now); l.FailedAttempts != 0 {
		t.Fatalf("a throttled source counted %d attempts against the user", l.FailedAttempts)
	}
}

// halfOpen is a breaker choosing its probe: Allow hands the probe out.
type halfOpen struct{ allowed int }

func (b *halfOpen) Allow(context.Context) (func(error), error) {
	b.allowed++
	return func(error) {}, nil
}
func (b *halfOpen) Closed(context.Context) bool { return false }

// A speculative grant (cancelled when the local check fails) must never be
// the half-open breaker's probe: a wrong password takes no probe.
func TestNoSpeculativeGrantUnlessTheBreakerIsClosed(t *testing.T) {
	b := &halfOpen{}
	h := newHarness(t, func(d *Deps, s *Settings) { s.ParallelKeycloak = true; d.Breaker = b })
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	if _, err := h.login("alice", "typo"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if b.allowed != 0 || h.kc.Calls(keycloaktest.PasswordGrant) != 0 {
		t.Fatalf("a wrong password took the probe: %d allowed, %d grants", b.allowed, h.kc.Calls(keycloaktest.PasswordGrant))
	}
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak || b.allowed != 1 {
		t.Fatalf("the right password is the probe: %+v %v, %d allowed", res, err, b.allowed)
	}
}
