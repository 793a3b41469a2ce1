package users_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
	"github.com/kcguard/kcguard/pkg/users/userstest"
)

func newMemory(*testing.T) users.Store {
	return users.NewMemory(users.WithFailureWindow(userstest.Window))
}

func TestMemory(t *testing.T) {
	userstest.Run(t, newMemory)
	userstest.RunConcurrent(t, newMemory)
}

func newDynamo(t *testing.T, opts ...func(*dynamodb.Options)) func(*testing.T) users.Store {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, users.Table("users"))
	db := dynamodb.NewFromConfig(cfg, opts...)
	// One table for all cases: each case works in its own package.
	return func(*testing.T) users.Store {
		return users.NewDynamo(db, table, users.WithFailureWindow(userstest.Window))
	}
}

func TestDynamo(t *testing.T) {
	userstest.Run(t, newDynamo(t))
}

// TestDynamoConcurrent runs the concurrency cases (compare-and-swap, the
// atomic counter, 200 parallel reservations against a gate of 5) against
// the stack's DynamoDB. They rely on DynamoDB's serialisation of the writes
// to one item, which moto gives only through local/moto_server.py (plain
// moto let one or two reservations too many through in 8 of 40 runs).
func TestDynamoConcurrent(t *testing.T) {
	userstest.RunConcurrent(t, newDynamo(t))
}

// TestDynamoRoundTrips documents what each operation costs; login reads a
// user and its lockout state in a single round trip.
func TestDynamoRoundTrips(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, users.Table("users"))
	calls := ddbcount.New()
	s := users.NewDynamo(dynamodb.NewFromConfig(cfg, calls.Option()), table)
	ctx := context.Background()
	k, _ := userkey.New("rt", "alice")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	cases := []struct {
		name string
		op   func() error
		want map[string]int
	}{
		{"Create", func() error {
			_, err := s.Create(ctx, users.User{Package: "rt", Username: "alice", Hash: users.Hash{Algorithm: "argon2"}}, now)
			return err
		}, map[string]int{"PutItem": 1}},
		{"Lookup", func() error { _, err := s.Lookup(ctx, k, now); return err }, map[string]int{"Query": 1}},
		{"Get", func() error { _, err := s.Get(ctx, k); return err }, map[string]int{"GetItem": 1}},
		{"Reserve", func() error { _, err := s.Reserve(ctx, k, 5, now); return err }, map[string]int{"UpdateItem": 1}},
		{"FailAttempt", func() error { return s.FailAttempt(ctx, k, users.Attempt{N: 1}, time.Time{}, now) }, map[string]int{"UpdateItem": 1}},
		{"Release", func() error { _, err := s.Release(ctx, k, now); return err }, map[string]int{"DeleteItem": 1}},
		{"SourceFailures", func() error { _, err := s.SourceFailures(ctx, "src", now); return err }, map[string]int{"GetItem": 1}},
		{"UpdatePassword", func() error {
			_, err := s.UpdatePassword(ctx, k, 1, users.Hash{Algorithm: "argon2"}, now)
			return err
		}, map[string]int{"UpdateItem": 1}},
		{"MarkSyncedCurrent", func() error { _, err := s.MarkSynced(ctx, k, 2); return err }, map[string]int{"UpdateItem": 1}},
		{"ListUnsyncedPage", func() error { _, _, err := s.ListUnsynced(ctx, "rt", 10, ""); return err }, map[string]int{"Query": 1}},
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

// TestDynamoLockoutTx checks the transaction forms a login's outcome uses:
// FailAttemptTx stamps the failure and, at the threshold, locks and opens
// the gate by one; ReleaseTx clears the count but cancels its transaction
// rather than lift a lock.
func TestDynamoLockoutTx(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, users.Table("users"))
	db := dynamodb.NewFromConfig(cfg)
	s := users.NewDynamo(db, table, users.WithFailureWindow(time.Hour))
	ctx := context.Background()
	k, _ := userkey.New("p", "Mallory")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tx := func(item types.TransactWriteItem) error {
		_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{item}})
		return err
	}
	var last users.Attempt
	for range 3 {
		if last, _ = s.Reserve(ctx, k, 3, t0); !last.Admitted {
			t.Fatalf("reserve: %+v", last)
		}
	}
	until := t0.Add(time.Minute)
	if err := tx(s.FailAttemptTx(k, last, until, t0)); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, t0); l.FailedAttempts != 3 || !l.LockedUntil.Equal(until) || !l.LastFailureAt.Equal(t0) {
		t.Fatalf("after FailAttemptTx: %+v", l)
	}
	if err := tx(s.ReleaseTx(k, t0)); err == nil {
		t.Fatal("ReleaseTx lifted a lock")
	}
	if a, _ := s.Reserve(ctx, k, 3, until); !a.Admitted || a.N != 4 {
		t.Fatalf("one attempt after the lock: %+v", a)
	}
	if err := tx(s.ReleaseTx(k, until)); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, until); l != (users.Lockout{}) {
		t.Errorf("after ReleaseTx: %+v", l)
	}
}
