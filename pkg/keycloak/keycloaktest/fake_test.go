package keycloaktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
)

func TestFakeLoginImportLogout(t *testing.T) {
	f := keycloaktest.New()
	ctx := context.Background()
	id := f.AddUser("hc", "Alice", "old-password-1")
	if _, err := f.PasswordGrant(ctx, "hc", "alice", "old-password-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PasswordGrant(ctx, "hc", "alice", "nope"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	h, _ := credential.NewHasher(credential.Params{Algorithm: credential.PBKDF2SHA512, Iterations: 10})
	hash, _ := h.Hash("new-password-2")
	if err := f.ImportPasswordHash(ctx, "hc", id, hash); err != nil {
		t.Fatal(err)
	}
	tok, err := f.PasswordGrant(ctx, "hc", "alice", "new-password-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.PasswordGrant(ctx, "hc", "alice", "old-password-1"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("old password after import: %v", err)
	}
	if err := f.LogoutUser(ctx, "hc", id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Refresh(ctx, "hc", tok.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("refresh after logout: %v", err)
	}
	if got := f.Calls(keycloaktest.PasswordGrant); got != 4 {
		t.Fatalf("PasswordGrant calls = %d, want 4", got)
	}
	if _, err := f.CreateUser(ctx, "hc", keycloak.UserSpec{Username: "ALICE"}); !errors.Is(err, keycloak.ErrConflict) {
		t.Fatalf("duplicate create: %v", err)
	}
}

func TestFakeFailuresAndLatency(t *testing.T) {
	f := keycloaktest.New()
	ctx := context.Background()
	down := keycloak.NewError("ping", "", keycloak.ErrUnavailable, 503, "")
	f.Fail(keycloaktest.Ping, down, 2)
	for i := range 2 {
		if err := f.Ping(ctx); !keycloak.IsOutage(err) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := f.Ping(ctx); err != nil {
		t.Fatalf("after 2 failures: %v", err)
	}
	f.Fail(keycloaktest.All, down, -1)
	if _, err := f.FindUser(ctx, "hc", "x"); !keycloak.IsOutage(err) {
		t.Fatalf("All failure: %v", err)
	}
	f.ClearFailures()

	f.SetLatency(keycloaktest.All, time.Second)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := f.Ping(cctx); !errors.Is(err, context.DeadlineExceeded) || keycloak.IsOutage(err) {
		t.Fatalf("latency past caller deadline: %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Fatal("latency ignored the context")
	}
}

func TestFakeContract(t *testing.T) {
	keycloaktest.RunContract(t, keycloaktest.New(), "hc")
}
