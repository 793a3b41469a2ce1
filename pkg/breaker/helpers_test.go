package breaker_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// clock is a settable breaker clock: cooldowns and leases pass by Advance.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.UnixMilli(1_800_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// events records notifications.
type events struct {
	mu  sync.Mutex
	all []breaker.Event
}

func (e *events) Notify(_ context.Context, ev breaker.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) list() []breaker.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]breaker.Event(nil), e.all...)
}

// transitions renders events as "closed>open" strings for comparisons.
func (e *events) transitions() []string {
	var out []string
	for _, ev := range e.list() {
		out = append(out, string(ev.From)+">"+string(ev.To))
	}
	return out
}

var errStoreDown = errors.New("store unreachable (test)")

// flakyStore wraps a Store, counts calls and can be taken down.
type flakyStore struct {
	breaker.Store
	down                      atomic.Bool
	gets, swaps, adds, clears atomic.Int64
}

func (f *flakyStore) Get(ctx context.Context, name string) (breaker.Record, error) {
	f.gets.Add(1)
	if f.down.Load() {
		return breaker.Record{}, errStoreDown
	}
	return f.Store.Get(ctx, name)
}

func (f *flakyStore) Swap(ctx context.Context, name string, expect uint64, next breaker.Record) error {
	f.swaps.Add(1)
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Swap(ctx, name, expect, next)
}

func (f *flakyStore) AddFailure(ctx context.Context, name string, gen uint64) (breaker.Record, error) {
	f.adds.Add(1)
	if f.down.Load() {
		return breaker.Record{}, errStoreDown
	}
	return f.Store.AddFailure(ctx, name, gen)
}

func (f *flakyStore) ClearFailures(ctx context.Context, name string, gen uint64) error {
	f.clears.Add(1)
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.ClearFailures(ctx, name, gen)
}

func (f *flakyStore) writes() int64 { return f.swaps.Load() + f.adds.Load() + f.clears.Load() }

// countingDB counts DynamoDB round trips by kind.
type countingDB struct {
	breaker.DynamoDB
	gets, puts, updates atomic.Int64
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	return c.DynamoDB.GetItem(ctx, in, o...)
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.puts.Add(1)
	return c.DynamoDB.PutItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.updates.Add(1)
	return c.DynamoDB.UpdateItem(ctx, in, o...)
}

func (c *countingDB) reset() { c.gets.Store(0); c.puts.Store(0); c.updates.Store(0) }

// errKeycloakDown is an outage as the Keycloak adapter reports it.
var errKeycloakDown = keycloak.NewError("password grant", "homechoice", keycloak.ErrUnavailable, 0, "connection refused (test)")

// keycloakAnswered is production's IsSuccessful (platform.BreakerSettings):
// the Keycloak adapter has classified the error; only an outage counts.
func keycloakAnswered(err error) bool { return !keycloak.IsOutage(err) }

// call runs one call through b with the given outcome and reports whether
// the breaker let it through.
func call(t *testing.T, b *breaker.Breaker, outcome error) bool {
	t.Helper()
	done, err := b.Allow(context.Background())
	if errors.Is(err, breaker.ErrOpen) {
		return false
	}
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	done(outcome)
	return true
}

// lockedWriter serialises log writes from concurrent breakers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
