package sessions_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

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
// GetByToken is one GetItem, login's Create one PutItem.
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
		{"Create", func() (err error) { tok, rec, err = s.Create(ctx, r); return err }, map[string]int{"PutItem": 1}},
		{"GetByToken", func() error { _, err := s.GetByToken(ctx, tok, t0); return err }, map[string]int{"GetItem": 1}},
		{"GetByTokenMalformed", func() error { s.GetByToken(ctx, "x", t0); return nil }, map[string]int{}},
		{"GetByID", func() error { _, err := s.GetByID(ctx, rec.ID); return err }, map[string]int{"GetItem": 1}},
		{"TouchThrottled", func() error { _, err := s.Touch(ctx, rec.ID, t0); return err }, map[string]int{"UpdateItem": 1}},
		{"Touch", func() error { _, err := s.Touch(ctx, rec.ID, t0.Add(2*time.Minute)); return err }, map[string]int{"UpdateItem": 1}},
		{"ListByUser", func() error { _, err := s.ListByUser(ctx, "p", "u"); return err }, map[string]int{"Query": 1}},
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
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("scan: %d items, %v", len(out.Items), err)
	}
	for name, v := range out.Items[0] {
		if strings.Contains(fmt.Sprint(v), tok) {
			t.Errorf("attribute %s holds the token", name)
		}
	}
}
