package cleanup_test

// The cleanup run against the whole local stack: the real Keycloak behind a
// private toxiproxy proxy, DynamoDB, SQS and KMS in moto.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/tokencache"
)

func fastBreaker(c *config.Config) {
	c.Keycloak.Timeout = time.Second
	c.Keycloak.Resilience.CooldownSeconds = 1
	c.Keycloak.Resilience.HealthCheckCacheSeconds = 1
}

// login logs u in with Keycloak up and returns its cached token.
func cachedLogin(t *testing.T, e *stacktest.Env, u stacktest.User) tokencache.Record {
	t.Helper()
	res, err := e.Login(u, u.Password)
	if err != nil || res.Mode != auth.ModeKeycloak {
		t.Fatalf("login of %s: %+v %v", u.Name, res, err)
	}
	rec, err := e.RT.Tokens.Get(context.Background(), u.Package, u.Name, time.Now())
	if err != nil {
		t.Fatalf("no cached token after a Keycloak login: %v", err)
	}
	return rec
}

func TestRefreshAheadAgainstKeycloak(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx := context.Background()
	fresh, revoked := e.NewUser(t, "homechoice"), e.NewUser(t, "homechoice")
	before := cachedLogin(t, e, fresh)
	gone := cachedLogin(t, e, revoked)

	// Revoke the second user's refresh token: an admin logout ends the
	// Keycloak session it belongs to.
	kcUser, err := e.RT.Keycloak.FindUser(ctx, revoked.Package, revoked.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RT.Keycloak.LogoutUser(ctx, revoked.Package, kcUser.ID); err != nil {
		t.Fatal(err)
	}

	var emf bytes.Buffer
	c := e.RT.Cleaner(&emf)
	// Both access tokens expire within the window ("close to expiry").
	c.Settings.RefreshWindow = time.Until(before.AccessExpiresAt) + time.Minute
	time.Sleep(1100 * time.Millisecond) // a refreshed token's expiry must differ
	r, err := c.RefreshExpiring(ctx, time.Now(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.Listed != 2 || r.Refreshed != 1 || r.Dropped != 1 || r.Failed != 0 || !r.Done {
		t.Fatalf("refresh %+v\n%s", r, e.Logs.String())
	}
	after, err := e.RT.Tokens.Get(ctx, fresh.Package, fresh.Name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if after.AccessToken == before.AccessToken || !after.AccessExpiresAt.After(before.AccessExpiresAt) || !after.CachedAt.After(before.CachedAt) {
		t.Fatalf("token not refreshed: expiry %s -> %s", before.AccessExpiresAt, after.AccessExpiresAt)
	}
	// The refreshed token is one Keycloak accepts: it refreshes again.
	if _, err := e.RT.Keycloak.Refresh(ctx, fresh.Package, after.RefreshToken); err != nil {
		t.Fatalf("the stored refresh token must work: %v", err)
	}
	if _, err := e.RT.Tokens.Get(ctx, revoked.Package, revoked.Name, time.Now()); !errors.Is(err, tokencache.ErrNotFound) {
		t.Fatalf("a token whose refresh token was revoked must be dropped: %v", err)
	}
	if _, err := e.RT.Keycloak.Refresh(ctx, revoked.Package, gone.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("Keycloak must refuse the revoked refresh token: %v", err)
	}
	e.AssertNoSecrets(t, fresh.Password, revoked.Password, before.AccessToken, before.RefreshToken,
		after.AccessToken, after.RefreshToken, gone.AccessToken, gone.RefreshToken)
}

func TestRunWithKeycloakDownKeepsTokensAndStillCleans(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx := context.Background()
	u := e.NewUser(t, "janee")
	before := cachedLogin(t, e, u)
	// An entry past its grace period, and an unsynced user.
	if err := e.RT.Tokens.Put(ctx, tokencache.Record{Package: "janee", Username: "stale-user", AccessToken: "x", RefreshToken: "y",
		CachedAt: time.Now().Add(-25 * time.Hour), AccessExpiresAt: time.Now().Add(-25*time.Hour + 5*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	var emf bytes.Buffer
	c := e.RT.Cleaner(&emf)
	c.Settings.RefreshWindow = time.Hour
	res, err := c.Run(ctx, time.Now())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, e.Logs.String())
	}
	if res.Refresh.Skipped != "breaker open" || res.Tokens.Deleted != 1 || res.Gauges.Breaker != "open" || res.Gauges.BreakerValue != 2 {
		t.Fatalf("result %+v", res)
	}
	if got, err := e.RT.Tokens.Get(ctx, u.Package, u.Name, time.Now()); err != nil || got.AccessToken != before.AccessToken {
		t.Fatalf("during an outage the cached token must stay: %v", err)
	}
	if !strings.Contains(emf.String(), `"BreakerState":2`) || strings.Count(e.Logs.String(), `"msg":"cleanup run"`) != 1 {
		t.Fatalf("metrics %s", emf.String())
	}
	e.AssertNoSecrets(t, u.Password, before.AccessToken, before.RefreshToken)
}
