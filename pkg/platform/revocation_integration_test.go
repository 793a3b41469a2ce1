package platform_test

// A password change ends every session of the user, kcguard's and
// Keycloak's, also when Keycloak is down and the change is queued.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
)

func TestQueuedPasswordChangeEndsKeycloakSessions(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx := context.Background()
	u := e.NewUser(t, "homechoice")
	first := login(t, e, u, auth.ModeKeycloak)
	if first.Keycloak == nil || first.Keycloak.RefreshToken == "" {
		t.Fatal("no keycloak refresh token")
	}
	oldRefresh := first.Keycloak.RefreshToken
	if _, err := e.RT.Keycloak.Refresh(ctx, u.Package, oldRefresh); err != nil {
		t.Fatalf("the refresh token works before the change: %v", err)
	}

	restore := outage(t, e) // this test's toxiproxy proxy cut, the breaker open
	newPW := "changed-" + u.Password
	res, err := e.RT.Auth.ChangePassword(ctx, auth.PasswordChangeInput{Package: u.Package, Username: u.Name,
		OldPassword: u.Password, NewPassword: newPW})
	if err != nil || res.Sync != "queued" {
		t.Fatalf("change during the outage: %+v %v", res, err)
	}
	// Local and immediate: the session and the cached Keycloak token are gone.
	if _, err := e.RT.Sessions.GetByToken(ctx, first.SessionToken, time.Now()); !errors.Is(err, sessions.ErrRevoked) {
		t.Fatalf("kcguard session after the change: %v, want ErrRevoked", err)
	}
	if _, err := e.RT.Tokens.Get(ctx, u.Package, u.Name, time.Now()); !errors.Is(err, tokencache.ErrNotFound) {
		t.Fatalf("cached keycloak token after the change: %v, want deleted", err)
	}
	if r := authorize(t, e, "Bearer "+first.SessionToken, time.Now()); r.IsAuthorized {
		t.Fatal("the authorizer still accepts the old session")
	}

	restore()
	out, err := e.RT.Poller(0).Drain(ctx)
	if err != nil || out.Applied != 1 || out.Failed != 0 || out.DeadLettered != 0 {
		t.Fatalf("drain: %+v %v", out, err)
	}
	// The real Keycloak refuses the old refresh token, and has the new password.
	if _, err := e.RT.Keycloak.Refresh(ctx, u.Package, oldRefresh); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("old keycloak refresh token after the drain: %v, want refused", err)
	}
	if _, err := e.RT.Keycloak.PasswordGrant(ctx, u.Package, u.Name, newPW); err != nil {
		t.Fatalf("keycloak refuses the new password: %v", err)
	}
	if r, err := e.Login(u, newPW); err != nil || r.Mode != auth.ModeKeycloak {
		t.Fatalf("login with the new password: %+v %v", r, err)
	}
	e.AssertNoSecrets(t, u.Password, newPW, oldRefresh, first.SessionToken)
}

// TestPasswordChangeKillsEverySessionInOneWrite: 400 sessions of one user
// on the real stack, one password change: none is left, and the change
// wrote the sessions table once.
func TestPasswordChangeKillsEverySessionInOneWrite(t *testing.T) {
	// No cap, so all 400 are live before the change.
	e := stacktest.New(t, fastBreaker, func(c *config.Config) { c.Sessions.MaxPerUser = -1 })
	ctx := context.Background()
	u := e.NewUser(t, "homechoice")
	// One real login, then 399 more sessions seeded in batches of 25 (400
	// argon2 logins take minutes on a shared machine, and moto copies the
	// whole table for every transaction).
	r, err := e.Login(u, u.Password)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	toks := []string{r.SessionToken}
	var reqs []types.WriteRequest
	for len(toks) < n {
		now := time.Now()
		rec, err := e.RT.Sessions.Reserve(ctx, sessions.Record{Package: u.Package, Username: u.Name,
			AuthMode: sessions.AuthLocal, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, put, err := e.RT.Sessions.CreateTx(rec)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: put.Put.Item}})
	}
	for len(reqs) > 0 {
		chunk := reqs[:min(25, len(reqs))]
		reqs = reqs[len(chunk):]
		out, err := e.RT.DynamoDB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{e.Config.Tables.Sessions: chunk}})
		if err != nil || len(out.UnprocessedItems) > 0 {
			t.Fatalf("seed sessions: %v", err)
		}
	}
	live := 0
	for _, tok := range toks {
		if _, err := e.RT.Sessions.GetByToken(ctx, tok, time.Now()); err == nil {
			live++
		}
	}
	if live != n {
		t.Fatalf("%d of %d sessions live before the change", live, n)
	}
	e.Proxy.Disable() // the change is queued: no Keycloak writes in the count
	defer e.Proxy.Enable()
	before := e.Calls.Snapshot()
	if _, err := e.RT.Auth.ChangePassword(ctx, auth.PasswordChangeInput{Package: u.Package, Username: u.Name,
		OldPassword: u.Password, NewPassword: "changed-" + u.Password}); err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for op, c := range e.Calls.Snapshot() {
		if d := c - before[op]; d > 0 {
			calls[op] = d
		}
	}
	left := 0
	for _, tok := range toks {
		if _, err := e.RT.Sessions.GetByToken(ctx, tok, time.Now()); err == nil {
			left++
		}
	}
	t.Logf("password change over %d sessions (%d live): DynamoDB calls %v; %d sessions left live", n, live, calls, left)
	if left != 0 {
		t.Errorf("%d of %d sessions survived the password change", left, n)
	}
	// The revocation is one write (sessions.TestDynamoRevocationIsOneWrite
	// counts it alone); here the whole change, lockout and password and
	// audit included, stays a handful of writes, where a walk over the
	// sessions would cost one per session.
	writes := calls["UpdateItem"] + calls["PutItem"] + calls["DeleteItem"] + calls["BatchWriteItem"] + calls["TransactWriteItems"]
	if writes > 8 || calls["BatchWriteItem"] != 0 {
		t.Errorf("password change over %d sessions wrote %d times (%v): the revocation must not walk the sessions", n, writes, calls)
	}
}
