package syncjob

import (
	"context"
	"errors"
	"testing"

	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/users"
)

// TestPasswordJobEndsKeycloakSessions: a password change's job logs the
// user out of Keycloak once Keycloak has the new password, also when an
// older job already applied it (the logout must not be lost to coalescing),
// and a failed logout fails the job so its retry logs out again.
func TestPasswordJobEndsKeycloakSessions(t *testing.T) {
	ctx := context.Background()
	st, kc := users.NewMemory(), keycloaktest.New()
	a := &Applier{Keycloak: kc, Users: st}
	kc.AddUser(pkg, "alice", "keycloak-old-password")
	old, err := kc.PasswordGrant(ctx, pkg, "alice", "keycloak-old-password")
	if err != nil {
		t.Fatal(err)
	}
	// A drift job without the flag, then the password change's job.
	drift := changeTo(t, st, "alice", "outage-password-1")
	change := changeTo(t, st, "alice", "outage-password-2")
	change.EndSessions = true
	if res, err := a.Apply(ctx, drift); err != nil || res != Applied {
		t.Fatalf("drift job: %s %v", res, err)
	}
	if _, err := kc.Refresh(ctx, pkg, old.RefreshToken); err != nil {
		t.Fatalf("a job without EndSessions must not log out: %v", err)
	}
	kc.Fail(keycloaktest.LogoutUser, keycloak.NewError("logout user", pkg, keycloak.ErrUnavailable, 503, ""), 1)
	if _, err := a.Apply(ctx, change); !keycloak.IsOutage(err) {
		t.Fatalf("failed logout: %v, want the job to fail as an outage", err)
	}
	if res, err := a.Apply(ctx, change); err != nil || res != Superseded {
		t.Fatalf("retried password job: %s %v", res, err)
	}
	if _, err := kc.Refresh(ctx, pkg, old.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("old refresh token after the password job: %v, want refused", err)
	}
	if !grantOK(kc, "alice", "outage-password-2") {
		t.Fatal("Keycloak must have the new password")
	}
}

// TestQueuedChangesLogOutOnceEach: three password changes queued during an
// outage; the first job applies the newest password and logs out, the
// middle one (a newer change follows) does not, the newest does again.
func TestQueuedChangesLogOutOnceEach(t *testing.T) {
	ctx := context.Background()
	st, kc := users.NewMemory(), keycloaktest.New()
	a := &Applier{Keycloak: kc, Users: st}
	kc.AddUser(pkg, "bob", "keycloak-old-password")
	var jobs []Job
	for _, pw := range []string{"outage-password-1", "outage-password-2", "outage-password-3"} {
		j := changeTo(t, st, "bob", pw)
		j.EndSessions = true
		jobs = append(jobs, j)
	}
	var logouts []int
	for _, j := range jobs {
		before := kc.Calls(keycloaktest.LogoutUser)
		if _, err := a.Apply(ctx, j); err != nil {
			t.Fatal(err)
		}
		logouts = append(logouts, kc.Calls(keycloaktest.LogoutUser)-before)
	}
	if logouts[0] != 1 || logouts[1] != 0 || logouts[2] != 1 {
		t.Fatalf("logouts per job %v, want [1 0 1]", logouts)
	}
}
