package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/sessions/sessionstest"
)

func TestMemory(t *testing.T) {
	sessionstest.Run(t, func(*testing.T) sessions.Store {
		return sessions.NewMemory(sessions.WithIdleTimeout(sessionstest.IdleTimeout))
	})
}

func TestDynamo(t *testing.T) {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	sessionstest.Run(t, func(t *testing.T) sessions.Store {
		// A table per case: DeleteExpired sweeps the whole table.
		return sessions.NewDynamo(db, testenv.Table(t, cfg, sessions.Table("sessions")),
			sessions.WithIdleTimeout(sessionstest.IdleTimeout))
	})
}

// TestDynamoRoundTrips documents each operation's cost: the authorizer's
// GetByToken is one BatchGetItem (session and user state together).
func TestDynamoRoundTrips(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, sessions.Table("sessions"))
	calls := ddbcount.New()
	s := sessions.NewDynamo(dynamodb.NewFromConfig(cfg, calls.Option()), table, sessions.WithIdleTimeout(time.Hour))
	ctx := context.Background()
	t0 := time.Now().UTC()
	r := sessions.Record{Package: "p", Username: "u", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	var (
		tok string
		rec sessions.Record
	)
	cases := []struct {
		name string
		op   func() error
		want map[string]int
	}{
		{"Create", func() (err error) { tok, rec, err = s.Create(ctx, r); return err }, map[string]int{"UpdateItem": 1, "TransactWriteItems": 1}},
		{"GetByToken", func() error { _, err := s.GetByToken(ctx, tok, t0); return err }, map[string]int{"BatchGetItem": 1}},
		{"GetByTokenMalformed", func() error { s.GetByToken(ctx, "x", t0); return nil }, map[string]int{}},
		{"GetByID", func() error { _, err := s.GetByID(ctx, rec.ID); return err }, map[string]int{"GetItem": 2}},
		{"TouchThrottled", func() error { _, err := s.Touch(ctx, rec.ID, t0); return err }, map[string]int{"UpdateItem": 1}},
		{"Touch", func() error { _, err := s.Touch(ctx, rec.ID, t0.Add(2*time.Minute)); return err }, map[string]int{"UpdateItem": 1}},
		{"ListByUser", func() error { _, err := s.ListByUser(ctx, "p", "u"); return err }, map[string]int{"GetItem": 1, "Query": 1}},
		{"Revoke", func() error { return s.Revoke(ctx, rec.ID, t0) }, map[string]int{"UpdateItem": 1}},
		// 2 hour buckets in a 1-hour lookback window, one delete batch.
		{"DeleteExpired", func() error {
			_, err := sessions.NewDynamo(dynamodb.NewFromConfig(cfg, calls.Option()), table, sessions.WithExpiryLookback(time.Hour)).
				DeleteExpired(ctx, t0.Add(2*time.Hour), 10)
			return err
		}, map[string]int{"Query": 2, "BatchWriteItem": 1}},
	}
	for _, c := range cases {
		calls.Reset()
		if err := c.op(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := calls.Snapshot(); !maps.Equal(got, c.want) {
			t.Errorf("%s: calls %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDynamoStoresNoToken reads the raw item: only hashes may be there.
func TestDynamoStoresNoToken(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, sessions.Table("sessions"))
	db := dynamodb.NewFromConfig(cfg)
	s := sessions.NewDynamo(db, table)
	now := time.Now()
	tok, _, err := s.Create(context.Background(), sessions.Record{Package: "p", Username: "u", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: &table})
	if err != nil || len(out.Items) != 2 { // the session and its user's state
		t.Fatalf("scan: %d items, %v", len(out.Items), err)
	}
	random, _, _ := strings.Cut(tok, ".")
	for _, item := range out.Items {
		for name, v := range item {
			if strings.Contains(fmt.Sprint(v), random) {
				t.Errorf("attribute %s holds the token", name)
			}
		}
	}
}

// TestDynamoRevocationIsOneWrite: 400 sessions of one user, then one
// password change's revocation: every session is dead, and the revocation
// wrote once (ListByUser's reads only count them).
func TestDynamoRevocationIsOneWrite(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, sessions.Table("sessions"))
	calls := ddbcount.New()
	db := dynamodb.NewFromConfig(cfg, calls.Option())
	s := sessions.NewDynamo(db, table, sessions.WithMaxPerUser(-1))
	ctx := context.Background()
	t0 := time.Now().UTC()
	const n = 400
	// Seeded in batches of 25, the way the cleanup scale test does, with
	// each session's seq from the user's state as Reserve gives it.
	toks := make([]string, n)
	var reqs []types.WriteRequest
	for i := range n {
		r, err := s.Reserve(ctx, sessions.Record{Package: "homechoice", Username: "many", AuthMode: sessions.AuthLocal,
			CreatedAt: t0.Add(time.Duration(i) * time.Millisecond), ExpiresAt: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, put, err := s.CreateTx(r)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = tok
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: put.Put.Item}})
	}
	for len(reqs) > 0 {
		chunk := reqs[:min(25, len(reqs))]
		reqs = reqs[len(chunk):]
		if out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: chunk}}); err != nil || len(out.UnprocessedItems) > 0 {
			t.Fatalf("seed: %v", err)
		}
	}
	now := t0.Add(time.Second)
	calls.Reset()
	live, err := s.RevokeAllForUser(ctx, "homechoice", "many", now)
	if err != nil {
		t.Fatal(err)
	}
	got := calls.Snapshot()
	writes := got["UpdateItem"] + got["PutItem"] + got["DeleteItem"] + got["BatchWriteItem"] + got["TransactWriteItems"]
	var (
		mu   sync.Mutex
		left int
		g    errgroup.Group
	)
	g.SetLimit(8)
	for _, tok := range toks {
		g.Go(func() error {
			_, err := s.GetByToken(ctx, tok, now)
			if err == nil {
				mu.Lock()
				left++
				mu.Unlock()
				return nil
			}
			if !errors.Is(err, sessions.ErrRevoked) {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation of %d sessions (%d live before): calls %v, %d write(s); %d sessions left live", n, live, got, writes, left)
	if writes != 1 || got["UpdateItem"] != 1 || left != 0 || live != n {
		t.Errorf("revocation: %d writes (%v), %d sessions left live, %d counted; want 1 write, 0 left, %d counted", writes, got, left, live, n)
	}
}

// TestMemoryRevocationRacesLogins revokes while logins store sessions in
// parallel: every session whose login began before the revocation is
// refused or dead, every later one lives.
func TestMemoryRevocationRacesLogins(t *testing.T) {
	s := sessions.NewMemory(sessions.WithMaxPerUser(-1))
	raceRevocation(t, s)
}

// TestDynamoRevocationInterleavings walks a login's three steps (Reserve,
// then the transaction with CreateTx and GuardTx) against a revocation at
// each point. A free-for-all race like the memory test's cannot run on moto:
// its TransactWriteItems restores the whole table from a copy taken at its
// start when a condition fails, undoing writes other requests made
// meanwhile (real DynamoDB isolates transactions).
func TestDynamoRevocationInterleavings(t *testing.T) {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	s := sessions.NewDynamo(db, testenv.Table(t, cfg, sessions.Table("sessions")))
	ctx := context.Background()
	t0 := time.Now().UTC()
	for _, revokeAt := range []string{"before Reserve", "between Reserve and the transaction", "after the transaction"} {
		t.Run(revokeAt, func(t *testing.T) {
			user := testenv.Unique("interleave")
			rec := sessions.Record{Package: "homechoice", Username: user, AuthMode: sessions.AuthLocal, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			revoke := func() {
				if _, err := s.RevokeAllForUser(ctx, "homechoice", user, t0.Add(time.Millisecond)); err != nil {
					t.Fatal(err)
				}
			}
			if revokeAt == "before Reserve" {
				revoke()
			}
			r, err := s.Reserve(ctx, rec)
			if revokeAt == "before Reserve" {
				if !errors.Is(err, sessions.ErrSuperseded) {
					t.Fatalf("reserve after revocation: %v, want ErrSuperseded", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if revokeAt == "between Reserve and the transaction" {
				revoke()
			}
			tok, created, put, err := s.CreateTx(r)
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{put, s.GuardTx(created)}})
			if revokeAt == "between Reserve and the transaction" {
				if reasons := sessions.CancelReasons(err); len(reasons) != 2 || reasons[0] || !reasons[1] {
					t.Fatalf("transaction after revocation: %v (reasons %v), want the guard to fail", err, reasons)
				}
				if _, err := s.GetByID(ctx, created.ID); !errors.Is(err, sessions.ErrNotFound) {
					t.Fatalf("refused login stored its session: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			revoke()
			if _, err := s.GetByToken(ctx, tok, t0.Add(time.Second)); !errors.Is(err, sessions.ErrRevoked) {
				t.Fatalf("session of a login begun before the revocation: %v, want ErrRevoked", err)
			}
		})
	}
}

func raceRevocation(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	t0 := time.Now().UTC()
	cut := t0.Add(50 * time.Millisecond)
	type result struct {
		began time.Time
		tok   string
		err   error
	}
	results := make(chan result, 100)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := t0.Add(time.Duration(i) * time.Millisecond)
			tok, _, err := s.Create(ctx, sessions.Record{Package: "homechoice", Username: "racer", AuthMode: sessions.AuthLocal,
				CreatedAt: began, ExpiresAt: t0.Add(time.Hour)})
			results <- result{began, tok, err}
		}()
	}
	if _, err := s.RevokeAllForUser(ctx, "homechoice", "racer", cut); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	after := cut.Add(time.Second)
	for r := range results {
		if r.err != nil {
			if !errors.Is(r.err, sessions.ErrSuperseded) || r.began.After(cut) {
				t.Errorf("login begun at +%v: %v", r.began.Sub(t0), r.err)
			}
			continue
		}
		_, err := s.GetByToken(ctx, r.tok, after)
		if alive := err == nil; alive != r.began.After(cut) {
			t.Errorf("login begun at +%v (revoked at +50ms): alive=%v (%v)", r.began.Sub(t0), alive, err)
		}
	}
}

func TestRecordEndsAtTheEarlierExpiry(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		idle, want time.Time
	}{
		{"no idle limit", time.Time{}, t0.Add(12 * time.Hour)},
		{"idle first", t0.Add(30 * time.Minute), t0.Add(30 * time.Minute)},
		{"absolute first", t0.Add(13 * time.Hour), t0.Add(12 * time.Hour)},
	} {
		r := sessions.Record{ExpiresAt: t0.Add(12 * time.Hour), IdleExpiresAt: tc.idle}
		if got := r.EndsAt(); !got.Equal(tc.want) {
			t.Errorf("%s: EndsAt = %s, want %s", tc.name, got, tc.want)
		}
		// A session is refused from the moment EndsAt names.
		if r.Status(tc.want) == nil || r.Status(tc.want.Add(-time.Second)) != nil {
			t.Errorf("%s: Status disagrees with EndsAt %s", tc.name, tc.want)
		}
	}
}
