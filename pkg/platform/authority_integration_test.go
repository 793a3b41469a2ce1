package platform_test

// The authority rule against the real Keycloak 26.7.3: what an
// administrator or Keycloak decides refuses the login through kcguard,
// online and in the next outage (this test's toxiproxy proxy cut), and
// nothing kcguard queues ever undoes it.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

const authorityPrefix = "authority-"

// patientKeycloak: these tests are about what Keycloak answers, not how
// fast; on a loaded machine a grant can take longer than the 2 s default,
// which would read as an outage and test something else.
func patientKeycloak(c *config.Config) { c.Keycloak.Timeout = 8 * time.Second }

func kcID(t *testing.T, e *stacktest.Env, u stacktest.User) string {
	t.Helper()
	kc, err := e.RT.Keycloak.FindUser(context.Background(), u.Package, u.Name)
	if err != nil {
		t.Fatal(err)
	}
	return kc.ID
}

func localUser(t *testing.T, e *stacktest.Env, u stacktest.User) users.User {
	t.Helper()
	lu, err := e.RT.Users.Get(context.Background(), userkey.Key{Package: u.Package, Username: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	return lu
}

// cutKeycloak cuts this test's path to Keycloak; restore brings it back.
// Each cut below costs at most two failed grants in a row, under the
// breaker's threshold of three, so the breaker stays closed and the next
// login reaches Keycloak without waiting for a cooldown.
func cutKeycloak(t *testing.T, e *stacktest.Env) {
	t.Helper()
	e.Proxy.Disable()
}

func restore(t *testing.T, e *stacktest.Env) {
	t.Helper()
	e.Proxy.Enable()
}

// nothingQueued proves kcguard did not queue a change for Keycloak.
func nothingQueued(t *testing.T, e *stacktest.Env) {
	t.Helper()
	waiting, inFlight, err := e.RT.Queue.Depth(context.Background())
	if err != nil || waiting+inFlight != 0 {
		t.Fatalf("a Keycloak decision must never be synced back: %d waiting, %d in flight, %v", waiting, inFlight, err)
	}
}

func TestKeycloakDisableIsRefusedOnlineAndOffline(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", authorityPrefix+"disable")
	ctx := context.Background()
	mustMode(t, e, u, u.Password, auth.ModeKeycloak) // leaves a cached token behind
	id := kcID(t, e, u)
	off, on := false, true
	if err := e.RT.Keycloak.UpdateUser(ctx, u.Package, id, keycloak.UserUpdate{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrAccountDisabled) {
		t.Fatalf("online: %v, want ErrAccountDisabled", err)
	}
	if lu := localUser(t, e, u); lu.Enabled || lu.Unsynced() {
		t.Fatalf("disable not stored as Keycloak's verdict: %+v", lu)
	}
	cutKeycloak(t, e)
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("offline, with a cached token at hand: %v, want refused", err)
	}
	restore(t, e)
	if err := e.RT.Keycloak.UpdateUser(ctx, u.Package, id, keycloak.UserUpdate{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	cutKeycloak(t, e)
	mustMode(t, e, u, u.Password, auth.ModeCached)
	restore(t, e)
	nothingQueued(t, e)
	e.AssertNoSecrets(t, u.Password)
}

func TestKeycloakAdminResetWinsOverTheLocalHash(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", authorityPrefix+"reset")
	ctx := context.Background()
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	// An administrator sets a new password in Keycloak.
	reset := "reset-by-admin-" + u.Password
	if err := e.RT.Keycloak.ImportPasswordHash(ctx, u.Package, kcID(t, e, u), e.Hash(t, reset)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("old password online: %v, want the wrong-password answer", err)
	}
	t.Logf("refused login that asked Keycloak's admin API why: %s", time.Since(start))
	if lu := localUser(t, e, u); !lu.HashStale || lu.Unsynced() {
		t.Fatalf("local hash not marked stale: %+v", lu)
	}
	cutKeycloak(t, e)
	for _, pw := range []string{u.Password, reset} {
		if _, err := e.Login(u, pw); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("offline before Keycloak confirmed the new password: %v", err)
		}
	}
	restore(t, e)
	start = time.Now()
	mustMode(t, e, u, reset, auth.ModeKeycloak)
	t.Logf("login that learnt the new password: %s", time.Since(start))
	start = time.Now()
	mustMode(t, e, u, reset, auth.ModeKeycloak)
	t.Logf("normal login through Keycloak: %s", time.Since(start))
	if lu := localUser(t, e, u); lu.HashStale || lu.Unsynced() {
		t.Fatalf("the verified new password must be learnt, synced: %+v", lu)
	}
	cutKeycloak(t, e)
	mustMode(t, e, u, reset, auth.ModeCached)
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("old password offline after learning: %v", err)
	}
	restore(t, e)
	nothingQueued(t, e)
	if _, err := e.RT.Keycloak.PasswordGrant(ctx, u.Package, u.Name, reset); err != nil {
		t.Fatalf("Keycloak must still have the administrator's password: %v", err)
	}
	e.AssertNoSecrets(t, u.Password, reset)
}

func TestKeycloakRequiredActionIsRefusedWithItsCode(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", authorityPrefix+"action")
	ctx := context.Background()
	id := kcID(t, e, u)
	acts := []string{"UPDATE_PASSWORD"}
	if err := e.RT.Keycloak.UpdateUser(ctx, u.Package, id, keycloak.UserUpdate{RequiredActions: &acts}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrActionRequired) {
		t.Fatalf("%v, want ErrActionRequired", err)
	}
	if lu := localUser(t, e, u); len(lu.RequiredActions) != 1 || lu.RequiredActions[0] != "UPDATE_PASSWORD" || lu.Unsynced() {
		t.Fatalf("required actions not recorded: %+v", lu)
	}
	cutKeycloak(t, e)
	if _, err := e.Login(u, u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("offline: %v", err)
	}
	restore(t, e)
	none := []string{}
	if err := e.RT.Keycloak.UpdateUser(ctx, u.Package, id, keycloak.UserUpdate{RequiredActions: &none}); err != nil {
		t.Fatal(err)
	}
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	nothingQueued(t, e)
}

func TestKeycloakBruteForceLockRefusesToo(t *testing.T) {
	e := stacktest.New(t, patientKeycloak)
	u := e.NewUserPrefixed(t, "homechoice", authorityPrefix+"bf")
	ctx := context.Background()
	id := kcID(t, e, u)
	t.Cleanup(func() { // unlock, whatever happens
		on := true
		_ = e.RT.Keycloak.UpdateUser(context.Background(), u.Package, id, keycloak.UserUpdate{Enabled: &on})
	})
	if err := keycloaktest.LockUser(ctx, e.RT.Keycloak, u.Package, u.Name, id); err != nil {
		t.Fatal(err)
	}
	_, err := e.Login(u, u.Password)
	var locked *auth.LockedError
	// The local realms lock for 60 s per step, at most 15 minutes.
	if !errors.As(err, &locked) || locked.RetryAfter <= 0 || locked.RetryAfter > 15*time.Minute {
		t.Fatalf("%v, want locked with Keycloak's wait", err)
	}
	if lu := localUser(t, e, u); lu.HashStale || !lu.Enabled || lu.Unsynced() {
		t.Fatalf("a brute-force lock is transient, not a reset: %+v", lu)
	}
	nothingQueued(t, e)
}

func TestKeycloakOnlyUserIsLearnt(t *testing.T) {
	e := stacktest.New(t, patientKeycloak, func(c *config.Config) { c.Keycloak.LearnOnLogin = true })
	u, id := e.NewKeycloakUser(t, "janee", authorityPrefix+"kconly")
	if _, err := e.Login(u, "wrong-"+u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	mustMode(t, e, u, u.Password, auth.ModeKeycloak)
	lu := localUser(t, e, u)
	if lu.KeycloakID != id || lu.Unsynced() || lu.KeycloakConfirmedAt.IsZero() || lu.Hash.Algorithm != "argon2" {
		t.Fatalf("learnt user: %+v", lu)
	}
	cutKeycloak(t, e)
	mustMode(t, e, u, u.Password, auth.ModeCached)
	if _, err := e.Login(u, "wrong-"+u.Password); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("wrong password offline: %v", err)
	}
	restore(t, e)
	nothingQueued(t, e)
	e.AssertNoSecrets(t, u.Password)
}

func TestOfflineWindowRefusesAUserPastIt(t *testing.T) {
	e := stacktest.New(t, patientKeycloak, func(c *config.Config) { c.Keycloak.Resilience.OfflineCredentialsExpirationDays = 3 })
	recent, old := e.NewUserPrefixed(t, "homechoice", authorityPrefix+"recent"), e.NewUserPrefixed(t, "homechoice", authorityPrefix+"old")
	mustMode(t, e, recent, recent.Password, auth.ModeKeycloak)
	mustMode(t, e, old, old.Password, auth.ModeKeycloak)
	// old's last Keycloak confirmation was four days ago.
	lu := localUser(t, e, old)
	if _, err := e.RT.Users.ApplyVerdict(context.Background(), lu.Key(), lu.Version,
		users.Verdict{ConfirmedAt: time.Now().Add(-4 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cutKeycloak(t, e)
	mustMode(t, e, recent, recent.Password, auth.ModeCached)
	if _, err := e.Login(old, old.Password); !errors.Is(err, auth.ErrOfflineWindowExpired) {
		t.Fatalf("past the window: %v, want ErrOfflineWindowExpired", err)
	}
	restore(t, e)
	mustMode(t, e, old, old.Password, auth.ModeKeycloak) // Keycloak confirms it again
	cutKeycloak(t, e)
	mustMode(t, e, old, old.Password, auth.ModeCached)
	restore(t, e)
}
