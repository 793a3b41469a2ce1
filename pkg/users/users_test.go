package users_test

import (
	"context"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
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

func newDynamo(t *testing.T) func(*testing.T) users.Store {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, users.Table("users"))
	db := dynamodb.NewFromConfig(cfg)
	// One table for all cases: each case works in its own package.
	return func(*testing.T) users.Store {
		return users.NewDynamo(db, table, users.WithFailureWindow(userstest.Window))
	}
}

func TestDynamo(t *testing.T) {
	userstest.Run(t, newDynamo(t))
}

func TestDynamoConcurrent(t *testing.T) {
	if os.Getenv("KCGUARD_TEST_REAL_DYNAMODB") == "" {
		t.Skip("moto does not serialise conditional writes or ADD on one item, so concurrent " +
			"compare-and-swap cannot be checked against it; set KCGUARD_TEST_REAL_DYNAMODB=1 " +
			"with AWS_ENDPOINT_URL pointing at DynamoDB (or DynamoDB Local) to run it")
	}
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
	k, _ := users.NewKey("rt", "alice")
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
		{"RecordFailure", func() error { _, err := s.RecordFailure(ctx, k, now); return err }, map[string]int{"UpdateItem": 1}},
		{"SetLockedUntil", func() error { return s.SetLockedUntil(ctx, k, now, now) }, map[string]int{"UpdateItem": 1}},
		{"ResetFailures", func() error { return s.ResetFailures(ctx, k) }, map[string]int{"DeleteItem": 1}},
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

// TestDynamoRecordFailureTx checks the transaction form of the failure
// counter: a first failure starts (or restarts) the count, later ones add
// to it atomically whatever count the caller computed.
func TestDynamoRecordFailureTx(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, users.Table("users"))
	db := dynamodb.NewFromConfig(cfg)
	s := users.NewDynamo(db, table, users.WithFailureWindow(time.Hour))
	ctx := context.Background()
	k, _ := users.NewKey("p", "Mallory")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	apply := func(l users.Lockout) {
		t.Helper()
		if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: []types.TransactWriteItem{s.RecordFailureTx(k, l)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A stale counter from long ago that TTL has not removed yet.
	for range 5 {
		if _, err := s.RecordFailure(ctx, k, t0.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name      string
		l         users.Lockout
		wantCount int
		locked    bool
	}{
		{"first failure restarts the stale counter", users.Lockout{FailedAttempts: 1, LastFailureAt: t0}, 1, false},
		// Two parallel guesses both computed 2: both count.
		{"second", users.Lockout{FailedAttempts: 2, LastFailureAt: t0}, 2, false},
		{"same estimate again", users.Lockout{FailedAttempts: 2, LastFailureAt: t0, LockedUntil: t0.Add(time.Minute)}, 3, true},
	}
	for _, c := range cases {
		apply(c.l)
		l, err := s.Lockout(ctx, k, t0)
		if err != nil || l.FailedAttempts != c.wantCount || l.Locked(t0) != c.locked || !l.LastFailureAt.Equal(t0) {
			t.Errorf("%s: %+v, %v; want count %d locked %v", c.name, l, err, c.wantCount, c.locked)
		}
	}
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{s.ResetFailuresTx(k)},
	}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, t0); l != (users.Lockout{}) {
		t.Errorf("after ResetFailuresTx: %+v", l)
	}
}
