package keycloaktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// RunContract checks the behaviour kcguard relies on against kc, so the Fake
// cannot drift from the real Client: it runs against both (the Client in the
// keycloak package's integration tests). pkg must be a configured package.
// Users are created with unique names and deleted afterwards.
func RunContract(t *testing.T, kc keycloak.Keycloak, pkg string) {
	ctx := context.Background()
	hasher, err := credential.NewHasher(credential.Params{})
	if err != nil {
		t.Fatal(err)
	}
	hash := func(t *testing.T, pw string) credential.Hash {
		h, err := hasher.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	newUser := func(t *testing.T, pw string) (id, username string) {
		t.Helper()
		username = "contract-" + randomSuffix()
		spec := keycloak.UserSpec{Username: username, Email: username + "@example.test", FirstName: "Con", LastName: "Tract"}
		if pw != "" {
			spec.Password = hash(t, pw)
		}
		id, err := kc.CreateUser(ctx, pkg, spec)
		if err != nil {
			t.Fatalf("create user: %v", err)
		}
		t.Cleanup(func() { _ = kc.DeleteUser(context.Background(), pkg, id) })
		return id, username
	}

	t.Run("login with created hash, wrong password refused", func(t *testing.T) {
		_, user := newUser(t, "first-Password-1")
		if _, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1"); err != nil {
			t.Fatalf("right password: %v", err)
		}
		_, err := kc.PasswordGrant(ctx, pkg, user, "wrong-Password-1")
		if !errors.Is(err, keycloak.ErrInvalidCredentials) || keycloak.IsOutage(err) {
			t.Fatalf("wrong password: err = %v, want ErrInvalidCredentials", err)
		}
	})

	t.Run("import replaces password and moves createdAt", func(t *testing.T) {
		id, user := newUser(t, "first-Password-1")
		before, err := kc.PasswordCredentialCreatedAt(ctx, pkg, id)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if err := kc.ImportPasswordHash(ctx, pkg, id, hash(t, "second-Password-2")); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.PasswordGrant(ctx, pkg, user, "second-Password-2"); err != nil {
			t.Fatalf("new password: %v", err)
		}
		if _, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
			t.Fatalf("old password: err = %v", err)
		}
		after, err := kc.PasswordCredentialCreatedAt(ctx, pkg, id)
		if err != nil || !after.After(before) {
			t.Fatalf("createdAt %v → %v, %v", before, after, err)
		}
	})

	t.Run("no password is not found", func(t *testing.T) {
		id, _ := newUser(t, "")
		if _, err := kc.PasswordCredentialCreatedAt(ctx, pkg, id); !errors.Is(err, keycloak.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("find is exact and case-insensitive, create conflicts", func(t *testing.T) {
		id, user := newUser(t, "")
		u, err := kc.FindUser(ctx, pkg, strings.ToUpper(user))
		if err != nil || u.ID != id || u.Username != user || !u.Enabled {
			t.Fatalf("find = %+v, %v", u, err)
		}
		if _, err := kc.FindUser(ctx, pkg, user[:len(user)-1]); !errors.Is(err, keycloak.ErrNotFound) {
			t.Fatalf("prefix: err = %v, want ErrNotFound", err)
		}
		if _, err := kc.CreateUser(ctx, pkg, keycloak.UserSpec{Username: user}); !errors.Is(err, keycloak.ErrConflict) {
			t.Fatalf("duplicate: err = %v, want ErrConflict", err)
		}
	})

	t.Run("update and disable", func(t *testing.T) {
		id, user := newUser(t, "first-Password-1")
		no, name := false, "Renamed"
		if err := kc.UpdateUser(ctx, pkg, id, keycloak.UserUpdate{Enabled: &no, FirstName: &name}); err != nil {
			t.Fatal(err)
		}
		u, err := kc.FindUser(ctx, pkg, user)
		if err != nil || u.Enabled || u.FirstName != "Renamed" || u.LastName != "Tract" {
			t.Fatalf("after update %+v, %v", u, err)
		}
		if _, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
			t.Fatalf("disabled user login: err = %v", err)
		}
		if err := kc.UpdateUser(ctx, pkg, "00000000-0000-0000-0000-000000000000", keycloak.UserUpdate{Enabled: &no}); !errors.Is(err, keycloak.ErrNotFound) {
			t.Fatalf("missing user: err = %v", err)
		}
	})

	t.Run("logout ends refresh", func(t *testing.T) {
		id, user := newUser(t, "first-Password-1")
		tok, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc.Refresh(ctx, pkg, tok.RefreshToken); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if err := kc.LogoutUser(ctx, pkg, id); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.Refresh(ctx, pkg, tok.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
			t.Fatalf("refresh after logout: err = %v", err)
		}
	})

	// What an administrator decides shows in the grant's answer only when
	// the password is right; a wrong one learns nothing.
	t.Run("disabled and required actions are named to the right password only", func(t *testing.T) {
		id, user := newUser(t, "first-Password-1")
		off, on := false, true
		if err := kc.UpdateUser(ctx, pkg, id, keycloak.UserUpdate{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		_, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1")
		if !errors.Is(err, keycloak.ErrAccountDisabled) || !errors.Is(err, keycloak.ErrInvalidCredentials) || keycloak.IsOutage(err) {
			t.Fatalf("disabled, right password: %v", err)
		}
		_, err = kc.PasswordGrant(ctx, pkg, user, "wrong-Password-1")
		if !errors.Is(err, keycloak.ErrInvalidCredentials) || errors.Is(err, keycloak.ErrAccountDisabled) {
			t.Fatalf("disabled, wrong password: %v", err)
		}
		acts := []string{"UPDATE_PASSWORD"}
		if err := kc.UpdateUser(ctx, pkg, id, keycloak.UserUpdate{Enabled: &on, RequiredActions: &acts}); err != nil {
			t.Fatal(err)
		}
		_, err = kc.PasswordGrant(ctx, pkg, user, "first-Password-1")
		if !errors.Is(err, keycloak.ErrActionRequired) || errors.Is(err, keycloak.ErrAccountDisabled) {
			t.Fatalf("required action, right password: %v", err)
		}
		a, err := keycloak.InspectAccount(ctx, kc, pkg, id)
		if err != nil || !a.Found || !a.User.Enabled || len(a.User.RequiredActions) != 1 || a.User.RequiredActions[0] != "UPDATE_PASSWORD" ||
			a.BruteForce.Locked || a.PasswordSetAt.IsZero() {
			t.Fatalf("inspect: %+v %v", a, err)
		}
		none := []string{}
		if err := kc.UpdateUser(ctx, pkg, id, keycloak.UserUpdate{RequiredActions: &none}); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.PasswordGrant(ctx, pkg, user, "first-Password-1"); err != nil {
			t.Fatalf("actions cleared: %v", err)
		}
		if err := kc.DeleteUser(ctx, pkg, id); err != nil {
			t.Fatal(err)
		}
		if a, err := keycloak.InspectAccount(ctx, kc, pkg, id); err != nil || a.Found {
			t.Fatalf("inspect a deleted user: %+v %v", a, err)
		}
	})

	t.Run("ping", func(t *testing.T) {
		if err := kc.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LockUser drives a real Keycloak's brute-force detector with wrong
// passwords until it locks the user (BruteForceStatus says so), for tests.
// Two quick failures usually do (quickLoginCheckMilliSeconds); on a loaded
// machine they may be further apart, so it goes on up to the realm's
// failureFactor (10 in local/realms), which locks whatever the timing.
func LockUser(ctx context.Context, kc keycloak.Keycloak, pkg, username, userID string) error {
	for i := 0; i < 12; i++ {
		if _, err := kc.PasswordGrant(ctx, pkg, username, "certainly-wrong-"+randomSuffix()); !errors.Is(err, keycloak.ErrInvalidCredentials) {
			return fmt.Errorf("wrong password %d: %v", i+1, err)
		}
		if i == 0 {
			continue
		}
		bf, err := kc.BruteForceStatus(ctx, pkg, userID)
		if err != nil {
			return err
		}
		if bf.Locked {
			return nil
		}
	}
	return fmt.Errorf("keycloak did not lock %s", username)
}
