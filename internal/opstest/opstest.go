// Package opstest builds a kcguard stack in a known state for the
// operators' tests (status, reports, CLI): each test gets its own tables,
// queue, key and toxiproxy proxy through stacktest.
package opstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// AdminKey is api.admin_key of a Known stack.
const AdminKey = "operators-test-admin-key"

// AuditKey is audit.username_hmac_key of a Known stack (unknown usernames
// are audited under its pseudonyms).
const AuditKey = "operators-test-audit-key"

// Known is a stack in a known state: breaker forced open with Keycloak cut,
// 3 queued jobs for 3 users waiting for Keycloak, 2 locked (unknown)
// usernames, one Keycloak login with its cached token and session, and a
// recorded pull run.
type Known struct {
	Env     *stacktest.Env
	User    stacktest.User
	Waiting []string
	Locked  []string
}

// NewKnown builds it; the proxy is restored when the test ends.
func NewKnown(t *testing.T) *Known {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local stack (moto, keycloak, toxiproxy)")
	}
	env := stacktest.New(t, func(c *config.Config) {
		c.Lockout.MaxFailures, c.Lockout.Delay, c.Lockout.MaxDelay = 1, time.Hour, time.Hour
		c.API.AdminKey = AdminKey
		// A loaded machine can make Keycloak's first grant slow; this state
		// needs that grant to succeed, not to be quick.
		c.Keycloak.Timeout = 10 * time.Second
		c.Audit.UsernameHMACKey = AuditKey
	})
	ctx := context.Background()
	k := &Known{Env: env, User: env.NewUser(t, "homechoice")}
	if r, err := env.Login(k.User, k.User.Password); err != nil || r.Mode != "keycloak" {
		t.Fatalf("keycloak login: %+v, %v", r, err)
	}
	for i := 0; i < 2; i++ {
		ghost := stacktest.User{Package: "homechoice", Name: testenv.Unique("operators-locked")}
		k.Locked = append(k.Locked, ghost.Name)
		var locked *auth.LockedError
		for n := 0; n < 5 && !errors.As(err1(env.Login(ghost, "wrong-password")), &locked); n++ {
		}
		if locked == nil {
			t.Fatalf("%s never locked", ghost.Name)
		}
	}
	q := env.RT.JournaledQueue
	for i := 0; i < 3; i++ {
		h := env.Hash(t, testenv.Unique("Pw-waiting"))
		u, err := env.RT.Users.Create(ctx, users.User{Package: "homechoice", Username: testenv.Unique("operators-waiting"),
			Enabled: true, Hash: users.NewHash(h)}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		j, err := syncjob.CurrentPassword(u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(ctx, j); err != nil {
			t.Fatal(err)
		}
		k.Waiting = append(k.Waiting, u.Username)
	}
	env.RT.RecordRun(ctx, status.JobPull, time.Now().Add(-time.Second), "pulled 4 events", nil)
	env.Proxy.Disable()
	t.Cleanup(env.Proxy.Enable)
	if _, err := env.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

func err1[T any](_ T, err error) error { return err }
