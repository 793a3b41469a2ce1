package platform_test

import (
	"context"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/syncjob/syncjobtest"
	"github.com/kcguard/kcguard/pkg/users"
)

// Issue 11, finding 2 against the real Keycloak: two password changes whose
// direct syncs interleave (the older import held back until the newer sync
// has finished and marked its version synced), then a stale queued job of
// the older version redelivered. Keycloak must end with the newest password
// and refuse the older ones.
func TestSyncOrderingRealKeycloak(t *testing.T) {
	e := stacktest.New(t)
	ctx := context.Background()
	u := e.NewUserNamed(t, "homechoice", "replay")
	gate := syncjobtest.Gate(e.RT.Applier.Keycloak)
	e.RT.Applier.Keycloak = gate
	pw2, pw3 := u.Password+"-two", u.Password+"-three"

	arrived := gate.HoldNext()
	older := make(chan string, 1)
	go func() { older <- changePassword(t, e, u, u.Password, pw2) }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the first password change never reached its Keycloak import")
	}
	if got := changePassword(t, e, u, pw2, pw3); got != string(syncjob.Applied) {
		t.Fatalf("second change: sync %q, want applied", got)
	}
	gate.Release()
	if got := <-older; got != string(syncjob.Applied) {
		t.Fatalf("first change: sync %q, want applied", got)
	}
	if n := len(gate.Imported()); n != 3 {
		t.Fatalf("%d imports landed; want v3, the late v2, and v3 again", n)
	}

	// A redelivered job of the older version is superseded, not replayed.
	rec, err := e.RT.Users.Get(ctx, users.Key{Package: u.Package, Username: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := syncjob.CurrentPassword(rec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stale.Version = rec.Version - 1
	if res, err := e.RT.Applier.Apply(ctx, stale); err != nil || res != syncjob.Superseded {
		t.Fatalf("stale job: %s %v", res, err)
	}
	if rec.KeycloakSyncedVersion != rec.Version {
		t.Fatalf("local version %d, synced %d", rec.Version, rec.KeycloakSyncedVersion)
	}
	if _, err := e.RT.Keycloak.PasswordGrant(ctx, u.Package, u.Name, pw3); err != nil {
		t.Fatalf("Keycloak refuses the newest password: %v", err)
	}
	for _, old := range []string{u.Password, pw2} {
		if _, err := e.RT.Keycloak.PasswordGrant(ctx, u.Package, u.Name, old); err == nil {
			t.Fatal("Keycloak still accepts an older password")
		}
	}
	e.AssertNoSecrets(t, u.Password, pw2, pw3)
}
