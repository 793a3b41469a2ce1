package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// The authority rule against the fake Keycloak: whatever Keycloak decided
// refuses the login, online and in the next outage, and is recorded
// without raising Version, so nothing is ever queued to undo it.

func (h *harness) user(t *testing.T, name string) users.User {
	t.Helper()
	u, err := h.users.Get(context.Background(), userkey.Key{Package: pkg, Username: name})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// kcUser adds a user both tiers know with one password, synced and with
// its Keycloak id as provisioning leaves it, and returns the id.
func (h *harness) kcUser(t *testing.T, name, password string) string {
	t.Helper()
	hash, err := h.hasher.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	id := h.kc.AddUser(pkg, name, password)
	if _, err := h.users.Create(context.Background(), users.User{Package: pkg, Username: name, Enabled: true,
		Hash: users.NewHash(hash), Version: 1, KeycloakSyncedVersion: 1, KeycloakID: id}, h.now); err != nil {
		t.Fatal(err)
	}
	return id
}

func (h *harness) noSyncQueued(t *testing.T) {
	t.Helper()
	if len(h.sync.enqueued)+len(h.sync.dispatched) != 0 {
		t.Fatalf("Keycloak's decision must never be synced back: enqueued %+v dispatched %+v", h.sync.enqueued, h.sync.dispatched)
	}
}

func adminCalls(h *harness) int {
	return h.kc.Calls(keycloaktest.GetUser) + h.kc.Calls(keycloaktest.BruteForceStatus) +
		h.kc.Calls(keycloaktest.PasswordCredentialCreatedAt) + h.kc.Calls(keycloaktest.FindUser)
}

func TestDisabledInKeycloakIsRefusedOnlineAndOffline(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "alice-password-1")
	h.kc.SetEnabled(pkg, id, false)
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrAccountDisabled) {
		t.Fatalf("online: %v, want ErrAccountDisabled", err)
	}
	u := h.user(t, "alice")
	if u.Enabled || u.Version != 1 || u.Unsynced() {
		t.Fatalf("the disable must be stored without a version change: %+v", u)
	}
	if adminCalls(h) != 0 {
		t.Fatalf("Keycloak named the reason; %d admin calls", adminCalls(h))
	}
	if a := h.recorder.audits[len(h.recorder.audits)-1]; a.Outcome != audit.OutcomeAccountDisabled {
		t.Fatalf("audit outcome %s", a.Outcome)
	}
	h.breaker.open = true
	h.tokens.byKey[u.Key()] = keycloak.Token{AccessToken: "cached"}
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("offline, even with a cached token: %v, want ErrInvalidCredentials", err)
	}
	// Re-enabled in Keycloak: the next login with Keycloak up works again.
	h.breaker.open = false
	h.kc.SetEnabled(pkg, id, true)
	res, err := h.login("alice", "alice-password-1")
	if err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("re-enabled: %+v %v", res, err)
	}
	if u := h.user(t, "alice"); !u.Enabled || u.Unsynced() {
		t.Fatalf("re-enable not learnt: %+v", u)
	}
	h.breaker.open = true
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeCached {
		t.Fatalf("offline after re-enable: %+v %v", res, err)
	}
	h.noSyncQueued(t)
}

func TestAdminResetInKeycloakMakesTheHashStale(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "old-password-1")
	h.kc.SetPassword(pkg, id, "reset-by-admin-1")
	_, err := h.login("alice", "old-password-1")
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password online: %v, want the wrong-password answer", err)
	}
	u := h.user(t, "alice")
	if !u.HashStale || u.Version != 1 || u.Unsynced() || u.KeycloakID != id || !u.Enabled {
		t.Fatalf("stale not recorded as Keycloak's verdict: %+v", u)
	}
	if got := adminCalls(h); got != 3 {
		t.Fatalf("one group of admin calls (user, brute force, credential date) expected, got %d", got)
	}
	if len(h.recorder.failures) != 0 {
		t.Fatal("a password the local store accepted must not count as a failed attempt")
	}
	h.breaker.open = true
	if _, err := h.login("alice", "old-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password offline: %v", err)
	}
	if _, err := h.login("alice", "reset-by-admin-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("new password offline before Keycloak confirmed it: %v", err)
	}
	h.breaker.open = false
	res, err := h.login("alice", "reset-by-admin-1")
	if err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("new password online: %+v %v", res, err)
	}
	u = h.user(t, "alice")
	if u.HashStale || u.Version != 1 || u.Unsynced() {
		t.Fatalf("learnt hash must clear stale and stay synced: %+v", u)
	}
	h.breaker.open = true
	delete(h.tokens.byKey, u.Key())
	if res, err := h.login("alice", "reset-by-admin-1"); err != nil || res.Mode != ModeLocal {
		t.Fatalf("new password offline: %+v %v", res, err)
	}
	if _, err := h.login("alice", "old-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("old password after learning: %v", err)
	}
	h.noSyncQueued(t)
}

func TestRequiredActionIsRefusedWithItsCode(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "alice-password-1")
	h.kc.SetRequiredActions(pkg, id, "UPDATE_PASSWORD")
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrActionRequired) {
		t.Fatalf("online: %v, want ErrActionRequired", err)
	}
	if u := h.user(t, "alice"); len(u.RequiredActions) != 1 || u.RequiredActions[0] != "UPDATE_PASSWORD" || u.Unsynced() {
		t.Fatalf("actions not recorded: %+v", u)
	}
	h.breaker.open = true
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("offline: %v", err)
	}
	h.breaker.open = false
	h.kc.SetRequiredActions(pkg, id)
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("actions done: %+v %v", res, err)
	}
	if u := h.user(t, "alice"); u.RequiredActions != nil {
		t.Fatalf("actions not cleared: %+v", u)
	}
	h.noSyncQueued(t)
}

func TestKeycloakBruteForceLockRefusesToo(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "alice-password-1")
	h.kc.Now = func() time.Time { return h.now }
	h.kc.Lock(pkg, id, h.now.Add(90*time.Second))
	_, err := h.login("alice", "alice-password-1")
	var locked *LockedError
	if !errors.As(err, &locked) || locked.RetryAfter != 90*time.Second {
		t.Fatalf("%v, want LockedError with Keycloak's 90s", err)
	}
	if u := h.user(t, "alice"); u.HashStale || !u.Enabled || u.Version != 1 {
		t.Fatalf("a transient lock is not a reset: %+v", u)
	}
	h.kc.Lock(pkg, id, time.Time{})
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("after the lock: %+v %v", res, err)
	}
	h.noSyncQueued(t)
}

func TestDeletedInKeycloakIsRefused(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "alice-password-1")
	if err := h.kc.DeleteUser(context.Background(), pkg, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("%v", err)
	}
	if u := h.user(t, "alice"); u.Enabled {
		t.Fatalf("deleted in Keycloak must refuse offline logins too: %+v", u)
	}
	h.noSyncQueued(t)
}

func TestUnexplainedRefusalRefusesAndRecordsNothing(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "alice-password-1")
	h.kc.SetPassword(pkg, id, "reset-by-admin-1")
	h.kc.Fail(keycloaktest.BruteForceStatus, keycloak.NewError("brute-force status", pkg, keycloak.ErrUnavailable, 503, ""), 1)
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("%v", err)
	}
	if u := h.user(t, "alice"); u.HashStale || !u.Enabled {
		t.Fatalf("a guess must not be recorded: %+v", u)
	}
	h.noSyncQueued(t)
}

func TestLearnOnLogin(t *testing.T) {
	learn := func(_ *Deps, s *Settings) { s.LearnOnLogin = true }
	t.Run("keycloak-only user is learnt and works offline", func(t *testing.T) {
		h := newHarness(t, learn)
		id := h.kc.AddUser(pkg, "kconly", "kc-only-password-1")
		res, err := h.login("KCOnly", "kc-only-password-1")
		if err != nil || res.Mode != ModeKeycloak || res.Keycloak == nil {
			t.Fatalf("first login: %+v %v", res, err)
		}
		u := h.user(t, "kconly")
		if u.KeycloakID != id || u.Unsynced() || !u.Enabled || u.HashStale || !u.KeycloakConfirmedAt.Equal(h.now) {
			t.Fatalf("learnt user: %+v", u)
		}
		hash, err := u.Hash.Verifier()
		if err != nil || hash.Algorithm != credential.Argon2 {
			t.Fatalf("learnt hash must be Keycloak-compatible argon2: %+v %v", hash, err)
		}
		h.breaker.open = true
		delete(h.tokens.byKey, u.Key())
		if res, err := h.login("kconly", "kc-only-password-1"); err != nil || res.Mode != ModeLocal {
			t.Fatalf("offline: %+v %v", res, err)
		}
		if _, err := h.login("kconly", "wrong-password-1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong password offline: %v", err)
		}
		h.noSyncQueued(t)
	})
	t.Run("unknown user, wrong password: plain 401, counted", func(t *testing.T) {
		h := newHarness(t, learn)
		h.kc.AddUser(pkg, "kconly", "kc-only-password-1")
		if _, err := h.login("kconly", "wrong-password-1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%v", err)
		}
		if len(h.recorder.failures) != 1 {
			t.Fatalf("failures %d", len(h.recorder.failures))
		}
		if _, err := h.users.Get(context.Background(), userkey.Key{Package: pkg, Username: "kconly"}); !errors.Is(err, users.ErrNotFound) {
			t.Fatalf("nothing learnt from a refusal: %v", err)
		}
	})
	t.Run("keycloak down: plain 401 without calling it", func(t *testing.T) {
		h := newHarness(t, learn)
		h.kc.AddUser(pkg, "kconly", "kc-only-password-1")
		h.breaker.open = true
		if _, err := h.login("kconly", "kc-only-password-1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%v", err)
		}
		if n := h.kc.Calls(keycloaktest.PasswordGrant); n != 0 {
			t.Fatalf("%d grants", n)
		}
	})
	t.Run("off: unknown users never reach Keycloak", func(t *testing.T) {
		h := newHarness(t)
		h.kc.AddUser(pkg, "kconly", "kc-only-password-1")
		if _, err := h.login("kconly", "kc-only-password-1"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%v", err)
		}
		if n := h.kc.Calls(keycloaktest.PasswordGrant); n != 0 {
			t.Fatalf("%d grants", n)
		}
	})
	t.Run("disabled in keycloak, unknown locally: named, not learnt", func(t *testing.T) {
		h := newHarness(t, learn)
		id := h.kc.AddUser(pkg, "kcoff", "kc-off-password-1")
		h.kc.SetEnabled(pkg, id, false)
		if _, err := h.login("kcoff", "kc-off-password-1"); !errors.Is(err, ErrAccountDisabled) {
			t.Fatalf("%v", err)
		}
		if _, err := h.users.Get(context.Background(), userkey.Key{Package: pkg, Username: "kcoff"}); !errors.Is(err, users.ErrNotFound) {
			t.Fatalf("a disabled user must not be learnt: %v", err)
		}
	})
}

func TestOfflineWindow(t *testing.T) {
	const window = 7 * 24 * time.Hour
	h := newHarness(t, func(_ *Deps, s *Settings) { s.OfflineWindow = window })
	h.kcUser(t, "alice", "alice-password-1")
	h.addUser(t, "never", "never-password-1", "") // Keycloak never confirmed it
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("%+v %v", res, err)
	}
	confirmed := h.now
	if u := h.user(t, "alice"); !u.KeycloakConfirmedAt.Equal(confirmed) {
		t.Fatalf("a Keycloak login must stamp KeycloakConfirmedAt: %+v", u)
	}
	h.breaker.open = true
	h.now = confirmed.Add(window - time.Minute)
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeLocal {
		t.Fatalf("inside the window: %+v %v", res, err)
	}
	h.now = confirmed.Add(window + time.Minute)
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrOfflineWindowExpired) {
		t.Fatalf("past the window: %v, want ErrOfflineWindowExpired", err)
	}
	if _, err := h.login("never", "never-password-1"); !errors.Is(err, ErrOfflineWindowExpired) {
		t.Fatalf("never confirmed: %v", err)
	}
	if _, err := h.login("alice", "wrong-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a wrong password is still just wrong: %v", err)
	}
	h.breaker.open = false
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("Keycloak back: %+v %v", res, err)
	}
	if u := h.user(t, "alice"); !u.KeycloakConfirmedAt.Equal(h.now) {
		t.Fatalf("confirmation not refreshed: %v", u.KeycloakConfirmedAt)
	}
}

// The normal path adds no Keycloak admin call and no store write: the
// confirmation stamp rides on the login-record write, at most every ConfirmEvery.
func TestNormalLoginConfirmsCoarselyAndCheaply(t *testing.T) {
	h := newHarness(t)
	h.kcUser(t, "alice", "alice-password-1")
	for i, want := range []bool{true, false, true} {
		if _, err := h.login("alice", "alice-password-1"); err != nil {
			t.Fatal(err)
		}
		s := h.recorder.successes[len(h.recorder.successes)-1]
		if got := s.Verdict != nil && !s.Verdict.ConfirmedAt.IsZero(); got != want {
			t.Fatalf("login %d: confirmation written = %v, want %v", i, got, want)
		}
		h.now = h.now.Add(users.ConfirmEvery/2 + time.Second)
	}
	if adminCalls(h) != 0 {
		t.Fatalf("%d admin calls on the normal path", adminCalls(h))
	}
	h.addUser(t, "bob", "bob-password-1", "bob-password-1") // synced, Keycloak id not yet known
	if _, err := h.login("bob", "bob-password-1"); err != nil {
		t.Fatal(err)
	}
	kc, _ := h.kc.FindUser(context.Background(), pkg, "bob")
	if u := h.user(t, "bob"); u.KeycloakID != kc.ID || u.Version != 1 || u.Unsynced() {
		t.Fatalf("the Keycloak id is learnt from the token, without a version change: %+v", u)
	}
}

func TestStaleUserCannotChangeThePasswordLocally(t *testing.T) {
	h := newHarness(t)
	id := h.kcUser(t, "alice", "old-password-1")
	h.kc.SetPassword(pkg, id, "reset-by-admin-1")
	h.login("alice", "old-password-1")
	if _, err := h.change("alice", "old-password-1", "my-own-new-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a stale hash must not authorise a change that would overwrite the reset: %v", err)
	}
	h.noSyncQueued(t)
}

// Keycloak 26 refuses a login of a user while another of theirs is in
// flight, in the words of a wrong password (measured: of 4 parallel right
// passwords 3 are refused). A refusal of the password Keycloak last
// accepted is therefore not a reset; one of a password set since is.
func TestRefusalOfTheConfirmedPasswordIsNotAReset(t *testing.T) {
	h := newHarness(t, func(_ *Deps, s *Settings) { s.Sleep = func(context.Context, time.Duration) {} })
	h.kc.Now = func() time.Time { return h.now.Add(-time.Hour) } // the password Keycloak holds was set before...
	id := h.kcUser(t, "alice", "alice-password-1")
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("%+v %v", res, err) // ...this login confirmed the user
	}
	refused := keycloak.NewError("password grant", pkg, keycloak.ErrInvalidCredentials, 400, "Invalid user credentials")
	// Refused once: asked again after a pause, the login goes through.
	h.kc.Fail(keycloaktest.PasswordGrant, refused, 1)
	grants := h.kc.Calls(keycloaktest.PasswordGrant)
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("refused once: %+v %v, want the retry's login", res, err)
	}
	if n := h.kc.Calls(keycloaktest.PasswordGrant) - grants; n != 2 {
		t.Fatalf("%d grants, want the refused one and one retry", n)
	}
	// Refused twice: 429 for a moment.
	h.kc.Fail(keycloaktest.PasswordGrant, refused, 2)
	var locked *LockedError
	if _, err := h.login("alice", "alice-password-1"); !errors.As(err, &locked) || locked.RetryAfter > 2*time.Second {
		t.Fatalf("refusal of the confirmed password: %v, want locked for a moment", err)
	}
	if u := h.user(t, "alice"); u.HashStale || !u.Enabled {
		t.Fatalf("a parallel login's refusal was recorded as Keycloak's verdict: %+v", u)
	}
	if len(h.recorder.failures) != 0 {
		t.Fatal("the right password must not count as a failed attempt")
	}
	if res, err := h.login("alice", "alice-password-1"); err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("the next login: %+v %v", res, err)
	}

	// A password set in Keycloak after the confirmation: a reset.
	h.kc.Now = func() time.Time { return h.now.Add(time.Minute) }
	h.kc.SetPassword(pkg, id, "reset-by-admin-1")
	grants = h.kc.Calls(keycloaktest.PasswordGrant)
	if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("after a reset: %v", err)
	}
	if n := h.kc.Calls(keycloaktest.PasswordGrant) - grants; n != 1 {
		t.Fatalf("a reset is not retried: %d grants", n)
	}
	if u := h.user(t, "alice"); !u.HashStale {
		t.Fatalf("a password set after the confirmation must make the hash stale: %+v", u)
	}
}
