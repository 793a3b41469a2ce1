package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

func newAccounts(t *testing.T) (auth.Accounts, *users.Memory) {
	t.Helper()
	h, err := credential.NewHasher(credential.Params{Algorithm: credential.Argon2, Iterations: 1, Argon2MemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	st := users.NewMemory()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return auth.Accounts{Users: st, Hasher: h, Policy: credential.Policy{MinLength: 12}, Now: func() time.Time { return now }}, st
}

func verifies(t *testing.T, u users.User, password string) bool {
	t.Helper()
	h, err := credential.NewHasher(credential.Params{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := u.Hash.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	ok, err := h.Verify(stored, password)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestAccountsCreate(t *testing.T) {
	ctx := context.Background()
	a, st := newAccounts(t)
	u, err := a.Create(ctx, auth.NewAccount{Package: "homechoice", Username: "Op.Made", Password: "a long enough password",
		Email: "op@example.com", Group: "pilot"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, u.Key())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Enabled || got.Email != "op@example.com" || got.Attributes["group"] != "pilot" || got.Version != u.Version {
		t.Errorf("stored %+v", got)
	}
	if !got.Unsynced() {
		t.Error("a created user must wait for the sync (version above keycloak_synced_version)")
	}
	if !verifies(t, got, "a long enough password") || verifies(t, got, "another password!") {
		t.Error("the stored hash does not check the password it was made from")
	}
	if _, err := a.Create(ctx, auth.NewAccount{Package: "homechoice", Username: "op.made", Password: "a long enough password"}); !errors.Is(err, users.ErrAlreadyExists) {
		t.Errorf("second create: err = %v, want ErrAlreadyExists", err)
	}
	_, err = a.Create(ctx, auth.NewAccount{Package: "homechoice", Username: "short.pw", Password: "short"})
	var pe *credential.PolicyError
	if !errors.As(err, &pe) || pe.Reason != credential.ReasonTooShort {
		t.Errorf("weak password: err = %v, want the policy's too_short", err)
	}
	if _, err := st.Get(ctx, userkey.Key{Package: "homechoice", Username: "short.pw"}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("a refused password stored a user: %v", err)
	}
}

func TestAccountsSetPassword(t *testing.T) {
	ctx := context.Background()
	a, st := newAccounts(t)
	u, err := a.Create(ctx, auth.NewAccount{Package: "janee", Username: "reset.me", Password: "the first password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetPassword(ctx, u.Key(), "tiny"); !errors.Is(err, credential.ErrPolicy) {
		t.Fatalf("weak reset: err = %v, want ErrPolicy", err)
	}
	nu, err := a.SetPassword(ctx, u.Key(), "the second password")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := st.Get(ctx, u.Key())
	if nu.Version != u.Version+1 || got.Version != nu.Version {
		t.Errorf("versions: created %d, reset %d, stored %d; a reset is the next version", u.Version, nu.Version, got.Version)
	}
	if !verifies(t, got, "the second password") || verifies(t, got, "the first password") {
		t.Error("the reset did not replace the hash")
	}
	if _, err := a.SetPassword(ctx, userkey.Key{Package: "janee", Username: "nobody"}, "the second password"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("unknown user: err = %v, want ErrNotFound", err)
	}
}

func TestAccountsSeedStoresKeycloaksPasswordAsSynced(t *testing.T) {
	ctx := context.Background()
	a, st := newAccounts(t)
	// Realm files predate the policy: a short password is stored as is.
	u, created, err := a.Seed(ctx, auth.NewAccount{Package: "homechoice", Username: "seeded", Password: "pw"})
	if err != nil || !created {
		t.Fatalf("seed: created %v, err %v", created, err)
	}
	got, _ := st.Get(ctx, u.Key())
	if got.Unsynced() || got.KeycloakSyncedVersion != got.Version {
		t.Errorf("seeded user waits for a sync Keycloak does not need: version %d, synced %d", got.Version, got.KeycloakSyncedVersion)
	}
	if !verifies(t, got, "pw") {
		t.Error("seeded hash does not check the realm file's password")
	}
	if _, created, err := a.Seed(ctx, auth.NewAccount{Package: "homechoice", Username: "seeded", Password: "other"}); err != nil || created {
		t.Fatalf("second seed: created %v, err %v; an existing user is kept", created, err)
	}
	again, _ := st.Get(ctx, u.Key())
	if !verifies(t, again, "pw") {
		t.Error("a second seed replaced the existing user's password")
	}
}
