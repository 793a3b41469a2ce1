package ddbcount_test

import (
	"context"
	"crypto/rand"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// TestLoginBudget spells out, with the stores' own calls, how a login fits
// its budget of three DynamoDB round trips: one read, one conditional
// UpdateItem that reserves the attempt before the hash check, then every
// write of the outcome in one TransactWriteItems built from the stores' *Tx
// methods — session with its guards, cached token, audit and the
// reservation's release on success; lock and audit on failure. Here the
// session's place among the user's sessions is reserved by its own
// UpdateItem (sessions.Dynamo.Reserve); pkg/loginrecord saves that one by
// reading the count with the user (ReadLogin) and admitting the session
// inside the transaction (AdmitTx).
func TestLoginBudget(t *testing.T) {
	cfg := testenv.AWS(t)
	calls := ddbcount.New()
	db := dynamodb.NewFromConfig(cfg, calls.Option())
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	cipher, err := tokencache.NewLocalCipher(master)
	if err != nil {
		t.Fatal(err)
	}
	userStore := users.NewDynamo(db, testenv.Table(t, cfg, users.Table("users")))
	sessionStore := sessions.NewDynamo(db, testenv.Table(t, cfg, sessions.Table("sessions")))
	tokenStore := tokencache.NewDynamo(db, testenv.Table(t, cfg, tokencache.Table("tokens")), cipher)
	auditStore := audit.NewDynamo(db, testenv.Table(t, cfg, audit.Table("audit")))

	ctx := context.Background()
	now := time.Now().UTC()
	key, _ := userkey.New("homechoice", "alice.hc")
	if _, err := userStore.Create(ctx, users.User{Package: key.Package, Username: key.Username, Enabled: true}, now); err != nil {
		t.Fatal(err)
	}

	t.Run("failure", func(t *testing.T) {
		calls.Reset()
		e, err := userStore.Lookup(ctx, key, now)
		if err != nil || !e.Found {
			t.Fatalf("lookup: %+v %v", e, err)
		}
		at, err := userStore.Reserve(ctx, key, 1, now)
		if err != nil || !at.Admitted {
			t.Fatalf("reserve: %+v %v", at, err)
		}
		// ... hash check fails; the delay policy locks for a minute ...
		lock := users.Lockout{FailedAttempts: at.N, LastFailureAt: now, LockedUntil: now.Add(time.Minute)}
		a, err := auditStore.RecordTx(audit.Event{Package: key.Package, Username: key.Username, Action: audit.ActionLogin,
			Outcome: audit.OutcomeInvalidCredentials, At: now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: []types.TransactWriteItem{userStore.FailAttemptTx(key, at, lock.LockedUntil, now), a},
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := calls.Snapshot(), map[string]int{"Query": 1, "UpdateItem": 1, "TransactWriteItems": 1}; !maps.Equal(got, want) {
			t.Errorf("failed login calls %v, want %v", got, want)
		}
		if l, _ := userStore.Lockout(ctx, key, now); l.FailedAttempts != 1 || !l.LockedUntil.Equal(lock.LockedUntil) {
			t.Errorf("lockout after failure: %+v", l)
		}
	})

	t.Run("success", func(t *testing.T) {
		now := now.Add(2 * time.Minute)
		calls.Reset()
		e, err := userStore.Lookup(ctx, key, now)
		if err != nil || e.Lockout.FailedAttempts != 1 {
			t.Fatalf("lookup: %+v %v", e, err)
		}
		if at, err := userStore.Reserve(ctx, key, 1, now); err != nil || !at.Admitted {
			t.Fatalf("reserve after the lock: %+v %v", at, err)
		}
		// ... hash check and Keycloak succeed ...
		// The session's place among the user's sessions (the cap), refused
		// if they were revoked since the login began.
		rec, err := sessionStore.Reserve(ctx, sessions.Record{Package: key.Package, Username: key.Username,
			AuthMode: sessions.AuthKeycloak, CreatedAt: now, ExpiresAt: now.Add(8 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		token, rec, sess, err := sessionStore.CreateTx(rec)
		if err != nil {
			t.Fatal(err)
		}
		// The guards keep a login that raced a password change or a
		// revocation from storing its session.
		items := []types.TransactWriteItem{sess, sessionStore.GuardTx(rec), userStore.VersionCheckTx(key, e.User.Version)}
		add := func(item types.TransactWriteItem, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, item)
		}
		add(tokenStore.PutTx(ctx, tokencache.Record{Package: key.Package, Username: key.Username,
			AccessToken: "at", RefreshToken: "rt", AccessExpiresAt: now.Add(5 * time.Minute), CachedAt: now}))
		add(auditStore.RecordTx(audit.Event{Package: key.Package, Username: key.Username, Action: audit.ActionLogin,
			AuthMode: string(sessions.AuthKeycloak), Outcome: audit.OutcomeSuccess, At: now}))
		add(userStore.ReleaseTx(key, now), nil)
		if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
			t.Fatal(err)
		}
		if got, want := calls.Snapshot(), map[string]int{"Query": 1, "UpdateItem": 2, "TransactWriteItems": 1}; !maps.Equal(got, want) {
			t.Errorf("successful login calls %v, want %v", got, want)
		}

		// Everything landed as the stores' own writes would have.
		if _, err := sessionStore.GetByToken(ctx, token, now); err != nil {
			t.Errorf("session: %v", err)
		}
		if tok, err := tokenStore.Get(ctx, key.Package, key.Username, now); err != nil || tok.RefreshToken != "rt" {
			t.Errorf("cached token: %+v %v", tok, err)
		}
		if l, _ := userStore.Lockout(ctx, key, now); l.FailedAttempts != 0 {
			t.Errorf("lockout not reset: %+v", l)
		}
		if ev, _ := auditStore.ListByUser(ctx, key.Package, key.Username, 10); len(ev) != 2 || ev[0].Outcome != audit.OutcomeSuccess {
			t.Errorf("audit trail: %+v", ev)
		}
	})
}
