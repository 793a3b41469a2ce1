package cleanup_test

// Cleanup at scale against moto: 100,000 live sessions and 1,000 expired
// ones. One run must delete exactly the expired ones and read at most twice
// as many items as it deletes, which only an expiry index can do.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// itemReads counts the items DynamoDB read for a client's calls: a Query's
// or Scan's ScannedCount (what it read, before any filter), a GetItem's one
// item, a BatchGetItem's responses. It is SDK middleware, like ddbcount.
type itemReads struct {
	n       atomic.Int64
	scanned atomic.Int64 // Scan calls, which cleanup must never make
}

func (c *itemReads) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("itemreads",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleInitialize(ctx, in)
					switch r := out.Result.(type) {
					case *dynamodb.QueryOutput:
						c.n.Add(int64(r.ScannedCount))
					case *dynamodb.ScanOutput:
						c.n.Add(int64(r.ScannedCount))
						c.scanned.Add(1)
					case *dynamodb.GetItemOutput:
						if r.Item != nil {
							c.n.Add(1)
						}
					case *dynamodb.BatchGetItemOutput:
						for _, items := range r.Responses {
							c.n.Add(int64(len(items)))
						}
					}
					return out, md, err
				}), middleware.After)
		})
	}
}

// closedBreaker stands in for a healthy Keycloak: this test is about reads.
type closedBreaker struct{}

func (closedBreaker) Allow(context.Context) (func(error), error) { return func(error) {}, nil }
func (closedBreaker) State(context.Context) breaker.Status {
	return breaker.Status{State: breaker.StateClosed}
}

// seed writes items with BatchWriteItem, 25 a call, from a few workers:
// moto is one Python process, so more workers only queue up.
func seed(t *testing.T, db *dynamodb.Client, table string, items []map[string]types.AttributeValue, workers int) {
	t.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(workers)
	for start := 0; start < len(items); start += 25 {
		chunk := items[start:min(len(items), start+25)]
		g.Go(func() error {
			reqs := make([]types.WriteRequest, len(chunk))
			for i, it := range chunk {
				reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
			}
			pending := map[string][]types.WriteRequest{table: reqs}
			for attempt := 0; len(pending[table]) > 0; attempt++ {
				if attempt == 10 {
					return fmt.Errorf("seed: %d writes still unprocessed", len(pending[table]))
				}
				out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
				if err != nil {
					return err
				}
				pending = out.UnprocessedItems
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func sessionItems(t *testing.T, store *sessions.Dynamo, n int, created, expires func(i int) time.Time) ([]map[string]types.AttributeValue, []string) {
	t.Helper()
	items := make([]map[string]types.AttributeValue, 0, n)
	ids := make([]string, 0, n)
	for i := range n {
		_, rec, tx, err := store.CreateTx(sessions.Record{Package: "homechoice", Username: fmt.Sprintf("scale-user-%06d", i%20000),
			AuthMode: sessions.AuthLocal, CreatedAt: created(i), ExpiresAt: expires(i), SourceIP: "10.0.0.1", UserAgent: "scale-test"})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, tx.Put.Item)
		ids = append(ids, rec.ID)
	}
	return items, ids
}

func TestCleanupAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs moto (make up)")
	}
	const live, expired = 100_000, 1_000
	// A moto of its own: minutes of seeding and index walks in the shared
	// one would slow every other package's tests (moto is one Python
	// process) and break their latency budgets.
	t.Setenv("AWS_ENDPOINT_URL", testenv.PrivateMoto(t))
	awsCfg := testenv.AWS(t)
	plain := dynamodb.NewFromConfig(awsCfg)
	sessTable := testenv.Table(t, awsCfg, sessions.Table("sessions"))
	tokTable := testenv.Table(t, awsCfg, tokencache.Table("tokens"))
	userTable := testenv.Table(t, awsCfg, users.Table("users"))

	now := time.Now().UTC()
	seeder := sessions.NewDynamo(plain, sessTable)
	liveItems, liveIDs := sessionItems(t, seeder, live,
		func(i int) time.Time { return now.Add(-time.Duration(i%600) * time.Minute) },
		// Live sessions expire over the next 12 hours, across many buckets,
		// including the current hour's.
		func(i int) time.Time { return now.Add(time.Duration(1+i%720) * time.Minute) })
	expItems, expIDs := sessionItems(t, seeder, expired,
		func(i int) time.Time { return now.Add(-36 * time.Hour) },
		// Expired ones ended over the last 24 hours, one a few seconds ago.
		func(i int) time.Time { return now.Add(-time.Duration(5+i*86) * time.Second) })

	start := time.Now()
	seed(t, plain, sessTable, append(liveItems, expItems...), 3)
	seeding := time.Since(start)
	t.Logf("seeded %d sessions in %s", live+expired, seeding.Round(time.Millisecond))

	reads, calls := &itemReads{}, ddbcount.New()
	counted := dynamodb.NewFromConfig(awsCfg, reads.option(), calls.Option())
	var logs, emf bytes.Buffer
	c := &cleanup.Cleaner{
		Sessions: sessions.NewDynamo(counted, sessTable),
		Tokens:   tokencache.NewDynamo(counted, tokTable, tokencache.NewKMSCipher(kms.NewFromConfig(awsCfg), "alias/unused")),
		Keycloak: nil, Breaker: closedBreaker{},
		Users: users.NewDynamo(counted, userTable), Queue: nil, Packages: []string{"homechoice"},
		Metrics: &metrics.EMF{W: &emf}, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		// moto answers each Query on the expiry index by walking the whole
		// table in Python (about 2.5 s at 100,000 items; milliseconds in
		// DynamoDB), and the store Queries all 49 hour buckets of its 48 h
		// lookback: the step needs minutes here, not the default one.
		Settings: cleanup.Settings{DeleteLimit: 5000, StepTimeout: 8 * time.Minute, TimeBudget: 9 * time.Minute},
	}
	start = time.Now()
	res, err := c.Run(context.Background(), now)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	t.Logf("cleanup of %d live + %d expired sessions: items read %d, deleted %d, in %s; calls %s",
		live, expired, reads.n.Load(), res.Sessions.Deleted, took.Round(time.Millisecond), calls)
	if res.Sessions.Deleted != expired || !res.Sessions.Done {
		t.Fatalf("deleted %d expired sessions (done %v), want %d", res.Sessions.Deleted, res.Sessions.Done, expired)
	}
	if got := reads.n.Load(); got > 2*expired {
		t.Fatalf("the run read %d items for %d expired sessions: more than 2x", got, expired)
	}
	if reads.scanned.Load() != 0 {
		t.Fatalf("the run made %d Scan calls", reads.scanned.Load())
	}

	// Exactly the expired ones are gone: it deleted as many as there were,
	// and every expired id is missing, so no live one was taken; a sample of
	// live ones is checked too. (A Scan to count 100,000 items costs moto
	// minutes; GetItem costs milliseconds.)
	check := sessions.NewDynamo(plain, sessTable)
	for _, id := range expIDs {
		if _, err := check.GetByID(context.Background(), id); !errors.Is(err, sessions.ErrNotFound) {
			t.Fatalf("expired session %s: %v, want it gone", id, err)
		}
	}
	for i := 0; i < live; i += live / 500 {
		if _, err := check.GetByID(context.Background(), liveIDs[i]); err != nil {
			t.Fatalf("live session %d: %v", i, err)
		}
	}
	if bytes.Count(logs.Bytes(), []byte(`"msg":"cleanup run"`)) != 1 {
		t.Fatalf("want one cleanup line, logs:\n%s", logs.String())
	}
	if !bytes.Contains(emf.Bytes(), []byte(`"ExpiredSessionsDeleted":1000`)) {
		t.Fatalf("metrics: %s", emf.String())
	}
}
