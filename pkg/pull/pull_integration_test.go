package pull_test

// `sync pull` against the real Keycloak: an administrator (the master
// realm's admin, not kcguard's service account) disables, re-enables,
// resets and deletes users while none of them logs in, and the pull brings
// each decision into the local store.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/provision"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

const realm = "homechoice"

// pullEnv is the stack plus a realm that records the events the pull
// reads (turned on through `config fix`'s own code) and an administrator.
func pullEnv(t *testing.T) (*stacktest.Env, *testenv.KeycloakAdmin) {
	t.Helper()
	admin := testenv.NewKeycloakAdmin(t)
	admin.GrantServiceAccountRoles(realm, testenv.Homechoice.ClientID, "view-events", "manage-events")
	e := stacktest.New(t, func(c *config.Config) {
		c.Keycloak.Timeout = time.Second
		c.Keycloak.Resilience.CooldownSeconds = 60 // stays open once cut
	})
	if _, err := provision.FixEvents(context.Background(), e.RT.Keycloak, realm); err != nil {
		t.Fatal(err)
	}
	for _, c := range provision.CheckEvents(context.Background(), e.RT.Keycloak,
		platform.KeycloakOptions(e.Config, nil).Packages, e.Config.Pull.MaxGap) {
		if strings.HasPrefix(c.Name, "package "+realm+":") && !c.OK {
			t.Fatalf("events still off after config fix: %s", c.Detail)
		}
	}
	return e, admin
}

func pullOnly(e *stacktest.Env) *pull.Puller {
	p := e.RT.Puller()
	p.Packages = []string{realm}
	return p
}

func runPull(t *testing.T, p *pull.Puller) pull.Result {
	t.Helper()
	rs, err := p.Run(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	return rs[0]
}

func local(t *testing.T, e *stacktest.Env, name string) (users.User, error) {
	t.Helper()
	return e.RT.Users.Get(context.Background(), userkey.Key{Package: realm, Username: name})
}

func TestPullAppliesKeycloakDecisions(t *testing.T) {
	e, admin := pullEnv(t)
	p := pullOnly(e)
	alice := e.NewUserPrefixed(t, realm, "pull-dis")
	reset := e.NewUserPrefixed(t, realm, "pull-reset")
	own := e.NewUserPrefixed(t, realm, "pull-own")
	gone := e.NewUserPrefixed(t, realm, "pull-del")
	plain := e.NewUserPrefixed(t, realm, "pull-ok")

	first := runPull(t, p)
	if first.Mode != pull.ModeCompare || first.Reason != "first run" || first.Checked < 5 {
		t.Fatalf("first run must compare every user: %+v", first)
	}
	for _, n := range []string{alice.Name, reset.Name, own.Name, gone.Name, plain.Name} {
		u, err := local(t, e, n)
		if err != nil || !u.Enabled || u.HashStale || u.KeycloakConfirmedAt.IsZero() {
			t.Fatalf("after first run %s: %+v %v", n, u, err)
		}
	}

	// A password change through kcguard reaches Keycloak through kcguard's
	// own sync: that credential change is not an administrator's reset.
	newPw := testenv.Unique("Own-new-pw")
	if res, err := e.RT.Auth.ChangePassword(context.Background(), auth.PasswordChangeInput{Package: realm, Username: own.Name,
		OldPassword: own.Password, NewPassword: newPw}); err != nil || !res.Synced {
		t.Fatalf("password change through kcguard: %+v %v", res, err)
	}

	// A session alice opened while she was allowed ends with the disable.
	login, err := e.Login(alice, alice.Password)
	if err != nil {
		t.Fatal(err)
	}

	disabledAt := time.Now()
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, alice.Name), map[string]any{"enabled": false}, nil)
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, reset.Name)+"/reset-password",
		map[string]any{"type": "password", "value": testenv.Unique("Admin-set-pw"), "temporary": false}, nil)
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, own.Name), map[string]any{"requiredActions": []string{"VERIFY_EMAIL"}}, nil)
	admin.Do("DELETE", realm+"/users/"+admin.UserID(realm, gone.Name), nil, nil)

	r := runPull(t, p)
	took := time.Since(disabledAt)
	if r.Mode != pull.ModeEvents {
		t.Fatalf("second run must read events: %+v", r)
	}
	t.Logf("disable in Keycloak -> local store refuses: %s (one pull: %d ms, %d admin + %d user events)",
		took.Round(time.Millisecond), r.DurationMS, r.AdminEvents, r.UserEvents)
	if r.Disabled != 1 || r.Deleted != 1 || r.Stale != 1 || r.ActionsSet != 1 || len(r.Malformed) != 0 {
		t.Errorf("counts: %+v", r)
	}
	if u, err := local(t, e, alice.Name); err != nil || u.Enabled {
		t.Errorf("disabled in Keycloak, local: %+v %v", u, err)
	}
	if u, err := local(t, e, reset.Name); err != nil || !u.HashStale {
		t.Errorf("admin reset in Keycloak must make the local hash stale: %+v %v", u, err)
	}
	if u, err := local(t, e, own.Name); err != nil || u.HashStale || len(u.RequiredActions) != 1 || u.RequiredActions[0] != "VERIFY_EMAIL" {
		t.Errorf("kcguard's own change is not stale; required action recorded: %+v %v", u, err)
	}
	if _, err := local(t, e, gone.Name); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("deleted in Keycloak, local user must be gone: %v", err)
	}
	if _, err := e.RT.Sessions.GetByToken(context.Background(), login.SessionToken, time.Now()); !errors.Is(err, sessions.ErrRevoked) {
		t.Errorf("session of the disabled user: %v, want revoked", err)
	}
	// Nothing on this path queues a sync: the disabled user stays synced.
	if u, _ := local(t, e, alice.Name); u.Unsynced() {
		t.Errorf("pull raised the version: %+v", u)
	}

	// Keycloak down: what Keycloak decided holds. The disabled user, the
	// reset (stale) password and the user with a required action are
	// refused offline, exactly like a wrong password; an untouched user is not.
	e.Proxy.Disable()
	for _, c := range []struct {
		u  stacktest.User
		pw string
	}{{alice, alice.Password}, {reset, reset.Password}, {own, newPw}} {
		if _, err := e.Login(c.u, c.pw); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Errorf("%s offline: %v, want refused", c.u.Name, err)
		}
	}
	if res, err := e.Login(plain, plain.Password); err != nil || res.Mode == auth.ModeKeycloak {
		t.Errorf("untouched user offline: %+v %v", res, err)
	}
	e.Proxy.Enable()
	// The offline logins opened the breaker, and the pull waits for it:
	// Keycloak is back, as a probe would find.
	if _, err := e.RT.Breaker.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Re-enabled by the administrator: allowed again after the next pull.
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, alice.Name), map[string]any{"enabled": true}, nil)
	if r := runPull(t, p); r.Enabled != 1 {
		t.Errorf("re-enable: %+v", r)
	}
	e.Proxy.Disable()
	if res, err := e.Login(alice, alice.Password); err != nil || res.Mode == auth.ModeKeycloak {
		t.Errorf("re-enabled user offline: %+v %v", res, err)
	}
	e.Proxy.Enable()
	e.AssertNoSecrets(t, alice.Password, reset.Password, own.Password, plain.Password, newPw, login.SessionToken)
}

// A cursor older than pull.max_gap (events may have expired) makes the run
// compare every user page by page; it finds what happened in the gap.
func TestPullFallsBackToPageCompare(t *testing.T) {
	e, admin := pullEnv(t)
	p := pullOnly(e)
	p.Settings.PageSize = 25 // several pages: the shared realm holds other tests' users too
	u := e.NewUserPrefixed(t, realm, "pull-gap")
	r := e.NewUserPrefixed(t, realm, "pull-gapr")
	runPull(t, p)

	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, u.Name), map[string]any{"enabled": false}, nil)
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, r.Name)+"/reset-password",
		map[string]any{"type": "password", "value": testenv.Unique("Admin-set-pw"), "temporary": false}, nil)
	// The cursor store never moves a cursor back, so the missed window is
	// a fresh store holding a cursor from three hours ago.
	old := time.Now().Add(-3 * time.Hour)
	p.Cursors = &pull.MemoryCursors{}
	if err := p.Cursors.Put(context.Background(), realm, pull.Cursor{Through: old, LastCompare: old}); err != nil {
		t.Fatal(err)
	}
	res := runPull(t, p)
	if res.Mode != pull.ModeCompare || res.Reason == "first run" || res.Reason == "" {
		t.Fatalf("a cursor 3h old must fall back to the page compare: %+v", res)
	}
	if got, err := local(t, e, u.Name); err != nil || got.Enabled {
		t.Errorf("disable in the gap: %+v %v", got, err)
	}
	if got, err := local(t, e, r.Name); err != nil || !got.HashStale {
		t.Errorf("admin reset in the gap: %+v %v", got, err)
	}
	// Users whose password only kcguard ever set are not stale.
	if got, err := local(t, e, u.Name); err != nil || got.HashStale {
		t.Errorf("untouched password marked stale: %+v %v", got, err)
	}
}
