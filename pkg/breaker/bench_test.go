package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/sony/gobreaker/v2"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// The fleet benchmark: 8 instances × 32 concurrent callers, a fake
// Keycloak answering in 20 ms, Keycloak healthy, one moto table shared by
// every variant. It compares (a) no breaker, (b) kcguard's fleet breaker and
// (c) gobreaker's DistributedCircuitBreaker on a DynamoDB SharedDataStore.
const (
	benchInstances = 8
	benchCallers   = 32 // per instance
	benchLatency   = 20 * time.Millisecond
)

type benchEnv struct {
	db       *dynamodb.Client
	table    string
	keycloak string
	http     *http.Client
}

func newBenchEnv(tb testing.TB) *benchEnv {
	db, table := dynamoTable(tb)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(benchLatency)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"x","expires_in":300}`))
	}))
	tb.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = benchInstances * benchCallers * 2
	return &benchEnv{db: db, table: table, keycloak: srv.URL, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (e *benchEnv) login(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.keycloak+"/realms/homechoice/protocol/openid-connect/token", nil)
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("keycloak: %s", resp.Status)
	}
	return nil
}

// variant is one way of calling Keycloak from instance i.
type variant struct {
	name string
	call func(ctx context.Context, instance int) error
	db   *countingDB // DynamoDB round trips, nil for no breaker
}

func (e *benchEnv) variants(tb testing.TB) []variant {
	name := testenv.Unique(e.keycloak)
	fleet := func(ttl time.Duration) variant {
		db := &countingDB{DynamoDB: e.db}
		store := breaker.NewDynamoStore(db, e.table)
		n := name + "/ttl" + ttl.String()
		var bs []*breaker.Breaker
		for i := range benchInstances {
			bs = append(bs, breaker.New(store, breaker.Settings{Name: n, StateCacheTTL: ttl,
				Instance: fmt.Sprint("i", i), Logger: slog.New(slog.DiscardHandler)}))
		}
		return variant{name: fmt.Sprintf("b: kcguard fleet breaker (cache %s)", ttl), db: db,
			call: func(ctx context.Context, i int) error { return bs[i].Execute(ctx, e.login) }}
	}
	gdb := &countingDB{DynamoDB: e.db}
	var dcbs []*gobreaker.DistributedCircuitBreaker[struct{}]
	for range benchInstances {
		dcb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](&dynamoSharedStore{db: gdb, raw: e.db, table: e.table},
			gobreaker.Settings{Name: name, Timeout: time.Minute,
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 }})
		if err != nil {
			tb.Fatalf("gobreaker: %v", err)
		}
		dcbs = append(dcbs, dcb)
	}
	return []variant{
		{name: "a: no breaker", call: func(ctx context.Context, _ int) error { return e.login(ctx) }},
		fleet(30 * time.Second),
		fleet(time.Second),
		{name: "c: gobreaker DistributedCircuitBreaker", db: gdb, call: func(ctx context.Context, i int) error {
			_, err := dcbs[i].Execute(func() (struct{}, error) { return struct{}{}, e.login(ctx) })
			return err
		}},
	}
}

// dynamoSharedStore is gobreaker's SharedDataStore on DynamoDB, the way its
// Redis store works: a lock item taken with a conditional put (expiring so
// a crashed holder cannot wedge the fleet) and a data item.
type dynamoSharedStore struct {
	db    *countingDB
	raw   *dynamodb.Client // DeleteItem, not in breaker.DynamoDB
	table string
}

var _ gobreaker.SharedDataStore = (*dynamoSharedStore)(nil)

var errLockHeld = errors.New("lock held")

func (s *dynamoSharedStore) key(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: k}}
}

func (s *dynamoSharedStore) Lock(name string) error {
	now := time.Now()
	item := s.key(name)
	item["expires_ms"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(5*time.Second).UnixMilli(), 10)}
	_, err := s.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &s.table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires_ms < :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)}},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return errLockHeld
	}
	return err
}

func (s *dynamoSharedStore) Unlock(name string) error {
	s.db.puts.Add(1) // count the delete as a write
	_, err := s.raw.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: &s.table, Key: s.key(name)})
	return err
}

func (s *dynamoSharedStore) GetData(name string) ([]byte, error) {
	out, err := s.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &s.table, Key: s.key(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	if b, ok := out.Item["data"].(*types.AttributeValueMemberB); ok {
		return b.Value, nil
	}
	return nil, nil
}

func (s *dynamoSharedStore) SetData(name string, data []byte) error {
	item := s.key(name)
	item["data"] = &types.AttributeValueMemberB{Value: data}
	_, err := s.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	return err
}

type loadResult struct {
	variant      string
	ok, failed   int64
	elapsed      time.Duration
	p50, p99     time.Duration
	reads, write int64
	lat          []time.Duration // sorted
	first, last  time.Time       // wall span of all merged runs
	roundRatios  []float64       // calls/s over (a)'s in the same round
}

// add merges another run of the same variant into r.
func (r *loadResult) add(o loadResult) {
	r.variant = o.variant
	r.ok, r.failed, r.elapsed = r.ok+o.ok, r.failed+o.failed, r.elapsed+o.elapsed
	r.reads, r.write = r.reads+o.reads, r.write+o.write
	r.lat = append(r.lat, o.lat...)
	if r.first.IsZero() || o.first.Before(r.first) {
		r.first = o.first
	}
	if o.last.After(r.last) {
		r.last = o.last
	}
	slices.Sort(r.lat)
	r.p50, r.p99 = percentiles(r.lat)
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	return lat[len(lat)*50/100], lat[min(len(lat)-1, len(lat)*99/100)]
}

func (r loadResult) callsPerSec() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// runLoad runs every caller of every instance for d, or for n calls in
// total when n > 0 (the testing.B form).
func runLoad(v variant, d time.Duration, n int64) loadResult {
	if v.db != nil {
		v.db.reset()
	}
	var ok, failed, issued atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range benchInstances * benchCallers {
		wg.Go(func() {
			var mine []time.Duration
			for {
				if n > 0 && issued.Add(1) > n || n <= 0 && time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				err := v.call(context.Background(), c%benchInstances)
				mine = append(mine, time.Since(t0))
				if err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r := loadResult{variant: v.name, ok: ok.Load(), failed: failed.Load(), elapsed: time.Since(start), lat: lat, first: start, last: time.Now()}
	slices.Sort(lat)
	r.p50, r.p99 = percentiles(lat)
	if v.db != nil {
		r.reads, r.write = v.db.gets.Load(), v.db.puts.Load()+v.db.updates.Load()
	}
	return r
}

// TestFleetBenchTable prints the BENCHMARKS.md table. It is a load run, not
// a test: KCGUARD_BENCH=1 turns it on, KCGUARD_BENCH_SECONDS sets the run
// length per variant (default 45, split over the rounds).
func TestFleetBenchTable(t *testing.T) {
	if os.Getenv("KCGUARD_BENCH") == "" {
		t.Skip("load run; set KCGUARD_BENCH=1 (see BENCHMARKS.md)")
	}
	secs, _ := strconv.Atoi(os.Getenv("KCGUARD_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 45
	}
	env := newBenchEnv(t)
	vs := env.variants(t)
	for _, v := range vs {
		runLoad(v, 2*time.Second, 0) // warm connections and the breaker record
	}
	// Interleaved short rounds, so the drift of a shared 2-core machine
	// (other test runs, GC, moto) is spread over every variant; the ratios
	// are the median of per-round ratios against (a) in the same round.
	rounds, _ := strconv.Atoi(os.Getenv("KCGUARD_BENCH_ROUNDS"))
	if rounds <= 0 {
		rounds = 9
	}
	// The order of a and the b variants rotates per round so none always
	// runs first (after c's slow, moto-heavy run); c is orders of magnitude
	// off and always runs last.
	rs := make([]loadResult, len(vs))
	for round := range rounds {
		order := []int{0, 1, 2}
		for range round % 3 {
			order = append(order[1:], order[0])
		}
		order = append(order, 3)
		got := make([]loadResult, len(vs))
		for _, i := range order {
			got[i] = runLoad(vs[i], time.Duration(secs)*time.Second/time.Duration(rounds), 0)
			t.Logf("round %d %s: %.0f calls/s, %d failed", round+1, got[i].variant, got[i].callsPerSec(), got[i].failed)
		}
		for i, r := range got {
			rs[i].add(r)
			rs[i].roundRatios = append(rs[i].roundRatios, r.callsPerSec()/got[0].callsPerSec())
		}
	}
	var sb strings.Builder
	base := rs[0].callsPerSec()
	fmt.Fprintf(&sb, "\n| variant | calls/s | ratio to (a), median of rounds | ratio to (a), pooled | p50 | p99 | failed calls | DynamoDB reads/call | DynamoDB writes/call |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		calls := float64(r.ok + r.failed)
		slices.Sort(r.roundRatios)
		fmt.Fprintf(&sb, "| %s | %.0f | %.3f | %.3f | %s | %s | %d | %.5f | %.5f |\n", r.variant, r.callsPerSec(),
			r.roundRatios[len(r.roundRatios)/2], r.callsPerSec()/base,
			r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.failed, float64(r.reads)/calls, float64(r.write)/calls)
	}
	for i, ttl := range []time.Duration{30 * time.Second, time.Second} {
		r := rs[1+i]
		span := r.last.Sub(r.first)
		fmt.Fprintf(&sb, "\n%s: %d reads, %d writes for %d calls over %s wall time = %.2f reads per instance per %s cache period\n",
			r.variant, r.reads, r.write, r.ok+r.failed, span.Round(time.Second),
			float64(r.reads)/benchInstances/max(1, span.Seconds()/ttl.Seconds()), ttl)
	}
	t.Log(sb.String())
}

// BenchmarkFleet is the same comparison in testing.B form (make bench):
// one op is one login call by one of the 256 callers.
func BenchmarkFleet(b *testing.B) {
	env := newBenchEnv(b)
	for _, v := range env.variants(b) {
		b.Run(strings.NewReplacer(" ", "_", ":", "", "(", "", ")", "").Replace(v.name), func(b *testing.B) {
			runLoad(v, 0, benchInstances*benchCallers) // warm up
			b.ResetTimer()
			r := runLoad(v, 0, int64(b.N))
			b.StopTimer()
			calls := float64(r.ok + r.failed)
			b.ReportMetric(r.callsPerSec(), "calls/s")
			b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(r.failed)/calls, "failed/op")
			b.ReportMetric(float64(r.reads)/calls, "ddb-reads/op")
			b.ReportMetric(float64(r.write)/calls, "ddb-writes/op")
		})
	}
}

// BenchmarkAllowClosed is the breaker's own cost per call when closed and
// cached: no I/O, one short mutex section per step.
func BenchmarkAllowClosed(b *testing.B) {
	br := breaker.New(breaker.NewMemoryStore(), breaker.Settings{Name: kc, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow(ctx)
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
}
