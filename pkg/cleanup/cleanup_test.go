package cleanup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fakeBreaker is a breaker whose state the test sets.
type fakeBreaker struct {
	mu       sync.Mutex
	state    breaker.State
	failures int
}

func (b *fakeBreaker) Allow(context.Context) (func(error), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == breaker.StateOpen {
		return nil, breaker.ErrOpen
	}
	return func(err error) {
		if keycloak.IsOutage(err) {
			b.mu.Lock()
			b.failures++
			b.mu.Unlock()
		}
	}, nil
}

func (b *fakeBreaker) State(context.Context) breaker.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return breaker.Status{State: b.state}
}

// refresher answers refreshes by refresh token.
type refresher struct {
	answers  map[string]error // refresh token -> error (nil: new tokens)
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	calls    atomic.Int32
	delay    time.Duration
}

func (r *refresher) Refresh(ctx context.Context, pkg, rt string) (keycloak.Token, error) {
	r.calls.Add(1)
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxSeen.Load()
		if n <= m || r.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(r.delay)
	if err := r.answers[rt]; err != nil {
		return keycloak.Token{}, err
	}
	return keycloak.Token{AccessToken: "new-" + rt, RefreshToken: "next-" + rt, TokenType: "Bearer",
		ExpiresAt: t0.Add(5 * time.Minute), RefreshExpiresAt: t0.Add(30 * time.Minute)}, nil
}

type queue struct {
	mu   sync.Mutex
	jobs []syncjob.Job
}

func (q *queue) Enqueue(_ context.Context, j syncjob.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	return nil
}

type depth int

// Depth answers like SQS: not at all once the caller has given up.
func (d depth) Depth(ctx context.Context) (int, error) { return int(d), ctx.Err() }

type fixture struct {
	tokens   *tokencache.Memory
	sessions *sessions.Memory
	users    *users.Memory
	breaker  *fakeBreaker
	kc       *refresher
	queue    *queue
	logs     *bytes.Buffer
	emf      *bytes.Buffer
	c        *cleanup.Cleaner
}

func newFixture(set cleanup.Settings) *fixture {
	f := &fixture{
		tokens: tokencache.NewMemory(), sessions: sessions.NewMemory(), users: users.NewMemory(),
		breaker: &fakeBreaker{state: breaker.StateClosed}, kc: &refresher{answers: map[string]error{}},
		queue: &queue{}, logs: &bytes.Buffer{}, emf: &bytes.Buffer{},
	}
	f.c = &cleanup.Cleaner{
		Tokens: f.tokens, Sessions: f.sessions, Keycloak: f.kc, Breaker: f.breaker,
		Users: f.users, Queue: f.queue, Packages: []string{"homechoice"},
		QueueSize: depth(3), DLQSize: depth(1),
		Metrics: &metrics.EMF{W: f.emf}, Log: slog.New(slog.NewJSONHandler(f.logs, nil)), Settings: set,
	}
	return f
}

func (f *fixture) token(t *testing.T, user string, accessExpires time.Time, refresh string) {
	t.Helper()
	if err := f.tokens.Put(context.Background(), tokencache.Record{Package: "homechoice", Username: user,
		AccessToken: "access-" + user, RefreshToken: refresh, TokenType: "Bearer",
		AccessExpiresAt: accessExpires, RefreshExpiresAt: accessExpires.Add(25 * time.Minute), CachedAt: accessExpires.Add(-5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) session(t *testing.T, user string, expires time.Time) {
	t.Helper()
	if _, _, err := f.sessions.Create(context.Background(), sessions.Record{Package: "homechoice", Username: user,
		AuthMode: sessions.AuthLocal, CreatedAt: expires.Add(-time.Hour), ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshExpiring(t *testing.T) {
	f := newFixture(cleanup.Settings{RefreshWindow: 10 * time.Minute})
	f.token(t, "soon", t0.Add(3*time.Minute), "rt-soon")
	f.token(t, "revoked", t0.Add(4*time.Minute), "rt-revoked")
	f.token(t, "outage", t0.Add(5*time.Minute), "rt-outage")
	f.token(t, "later", t0.Add(time.Hour), "rt-later")
	f.kc.answers["rt-revoked"] = keycloak.NewError("refresh", "homechoice", keycloak.ErrInvalidCredentials, 400, "invalid_grant")
	f.kc.answers["rt-outage"] = keycloak.NewError("refresh", "homechoice", keycloak.ErrUnavailable, 503, "")

	r, err := f.c.RefreshExpiring(context.Background(), t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.Listed != 3 || r.Refreshed != 1 || r.Dropped != 1 || r.Failed != 1 || !r.Done {
		t.Fatalf("result %+v", r)
	}
	ctx := context.Background()
	if got, err := f.tokens.Get(ctx, "homechoice", "soon", t0); err != nil || got.AccessToken != "new-rt-soon" || !got.GraceUntil.After(t0.Add(23*time.Hour)) {
		t.Fatalf("refreshed entry %+v %v", got, err)
	}
	if _, err := f.tokens.Get(ctx, "homechoice", "revoked", t0); !errors.Is(err, tokencache.ErrNotFound) {
		t.Fatalf("a refused refresh token must drop the entry: %v", err)
	}
	if got, err := f.tokens.Get(ctx, "homechoice", "outage", t0); err != nil || got.AccessToken != "access-outage" {
		t.Fatalf("an outage must keep the entry: %+v %v", got, err)
	}
	if f.breaker.failures != 1 {
		t.Fatalf("the outage must be reported to the breaker, failures %d", f.breaker.failures)
	}
	if strings.Contains(f.logs.String(), "rt-") || strings.Contains(f.logs.String(), "access-") {
		t.Fatalf("a token was logged:\n%s", f.logs.String())
	}
}

func TestRefreshSkippedWhileBreakerOpen(t *testing.T) {
	f := newFixture(cleanup.Settings{})
	f.token(t, "soon", t0.Add(time.Minute), "rt-soon")
	f.breaker.state = breaker.StateOpen
	r, err := f.c.RefreshExpiring(context.Background(), t0, 100)
	if err != nil || r.Skipped != "breaker open" || r.Done || f.kc.calls.Load() != 0 {
		t.Fatalf("result %+v %v, calls %d", r, err, f.kc.calls.Load())
	}
}

func TestRefreshConcurrencyIsBounded(t *testing.T) {
	f := newFixture(cleanup.Settings{RefreshConcurrency: 3})
	for i := range 12 {
		f.token(t, fmt.Sprintf("u%02d", i), t0.Add(time.Minute), fmt.Sprintf("rt-%d", i))
	}
	f.kc.delay = 20 * time.Millisecond
	r, err := f.c.RefreshExpiring(context.Background(), t0, 100)
	if err != nil || r.Refreshed != 12 {
		t.Fatalf("result %+v %v", r, err)
	}
	if m := f.kc.maxSeen.Load(); m > 3 || m < 2 {
		t.Fatalf("max concurrent refreshes %d, want at most 3 (and some parallelism)", m)
	}
}

func TestRunDoesEveryStepAndLogsOneLine(t *testing.T) {
	f := newFixture(cleanup.Settings{})
	ctx := context.Background()
	f.token(t, "soon", t0.Add(time.Minute), "rt-soon")
	// Past its grace period (CachedAt + 24h) an hour ago.
	if err := f.tokens.Put(ctx, tokencache.Record{Package: "homechoice", Username: "stale", AccessToken: "a", RefreshToken: "rt-stale",
		CachedAt: t0.Add(-25 * time.Hour), AccessExpiresAt: t0.Add(-25*time.Hour + 5*time.Minute)}); err != nil {
		t.Fatal(err)
	}
	f.session(t, "gone1", t0.Add(-time.Hour))
	f.session(t, "gone2", t0.Add(-time.Minute))
	f.session(t, "live", t0.Add(time.Hour))
	if _, err := f.users.Create(ctx, pendingUser(t), t0.Add(-90*time.Second)); err != nil {
		t.Fatal(err)
	}

	res, err := f.c.Run(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Refresh.Listed != 2 || res.Refresh.PastGrace != 1 || res.Refresh.Refreshed != 1 || res.Tokens.Deleted != 1 || res.Sessions.Deleted != 2 || res.Reconcile.Queued != 1 || !res.Done() {
		t.Fatalf("result %+v", res)
	}
	if res.Gauges.QueueDepth != 3 || res.Gauges.DLQDepth != 1 || res.Gauges.OldestPending != 90*time.Second ||
		res.Gauges.Breaker != "closed" || res.Gauges.BreakerValue != 0 {
		t.Fatalf("gauges %+v", res.Gauges)
	}
	if len(f.queue.jobs) != 1 || f.queue.jobs[0].Username != "pending" {
		t.Fatalf("queued %+v", f.queue.jobs)
	}
	lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
	var runLines []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] == "cleanup run" {
			runLines = append(runLines, m)
		}
	}
	if len(runLines) != 1 {
		t.Fatalf("want one cleanup line, got %d:\n%s", len(runLines), f.logs.String())
	}
	if s := runLines[0]["sessions"].(map[string]any); s["deleted"] != 2.0 {
		t.Fatalf("log line %v", runLines[0])
	}
	for _, want := range []string{`"ExpiredSessionsDeleted":2`, `"ExpiredTokensDeleted":1`, `"TokensRefreshed":1`,
		`"UnsyncedUsersQueued":1`, `"SyncQueueDepth":3`, `"SyncDLQDepth":1`, `"OldestPendingChangeAge":90`, `"BreakerState":0`,
		`"Function":"cleanup"`, `"Namespace":"kcguard"`} {
		if !strings.Contains(f.emf.String(), want) {
			t.Errorf("metrics lack %s: %s", want, f.emf.String())
		}
	}
}

func TestRunIsBoundedInItemsAndNextRunContinues(t *testing.T) {
	f := newFixture(cleanup.Settings{DeleteLimit: 2})
	for i := range 5 {
		f.session(t, fmt.Sprintf("gone%d", i), t0.Add(-time.Duration(i+1)*time.Minute))
	}
	first, err := f.c.Run(context.Background(), t0)
	if err != nil || first.Sessions.Deleted != 2 || first.Sessions.Done || first.Done() {
		t.Fatalf("first run %+v %v", first.Sessions, err)
	}
	second, _ := f.c.Run(context.Background(), t0)
	third, _ := f.c.Run(context.Background(), t0)
	if second.Sessions.Deleted != 2 || third.Sessions.Deleted != 1 || !third.Sessions.Done {
		t.Fatalf("later runs %+v %+v", second.Sessions, third.Sessions)
	}
}

// stuckSessions never answers before its deadline, like a throttled table.
type stuckSessions struct{}

func (stuckSessions) DeleteExpired(ctx context.Context, _ time.Time, _ int) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestRunStopsCleanlyAtItsTimeBudget(t *testing.T) {
	f := newFixture(cleanup.Settings{StepTimeout: 50 * time.Millisecond, TimeBudget: time.Second})
	f.c.Sessions = stuckSessions{}
	if _, err := f.users.Create(context.Background(), pendingUser(t), t0); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := f.c.Run(context.Background(), t0)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("run took %s", took)
	}
	if err != nil || res.Sessions.Done || res.Done() {
		t.Fatalf("a step out of time is a clean stop, not an error: %+v %v", res, err)
	}
	if res.Reconcile.Queued != 1 || res.Gauges.QueueDepth != 3 {
		t.Fatalf("the steps after it must still run: %+v", res)
	}
}

func TestGaugesRunAfterTheBudgetIsSpent(t *testing.T) {
	f := newFixture(cleanup.Settings{StepTimeout: 100 * time.Millisecond, TimeBudget: 100 * time.Millisecond})
	f.c.Sessions = stuckSessions{}
	res, err := f.c.Run(context.Background(), t0)
	if err != nil || res.Sessions.Done || res.Reconcile.Done {
		t.Fatalf("out of budget: %+v %v", res, err)
	}
	if res.Gauges.QueueDepth != 3 || res.Gauges.DLQDepth != 1 || !strings.Contains(f.emf.String(), `"SyncQueueDepth":3`) {
		t.Fatalf("gauges must be published even when the budget is spent: %+v", res.Gauges)
	}
}

type failingDepth struct{}

func (failingDepth) Depth(context.Context) (int, error) { return 0, errors.New("sqs down") }

func TestFailedStepIsReportedAndOthersRun(t *testing.T) {
	f := newFixture(cleanup.Settings{})
	f.c.DLQSize = failingDepth{}
	f.session(t, "gone", t0.Add(-time.Minute))
	res, err := f.c.Run(context.Background(), t0)
	if err == nil || len(res.Errors) != 1 || res.Errors[0] != "gauges" || res.Sessions.Deleted != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
	if !strings.Contains(f.emf.String(), `"CleanupStepErrors":1`) {
		t.Fatalf("metrics: %s", f.emf.String())
	}
}

func TestBreakerValue(t *testing.T) {
	for s, want := range map[breaker.State]int{breaker.StateClosed: 0, breaker.StateHalfOpen: 1, breaker.StateOpen: 2, breaker.StateDisabled: -1} {
		if got := cleanup.BreakerValue(s); got != want {
			t.Errorf("%s: %d, want %d", s, got, want)
		}
	}
}

type fakeJournal struct{ before time.Time }

func (j *fakeJournal) Purge(_ context.Context, before time.Time, limit int) (int, error) {
	j.before = before
	return 3, nil
}

func TestRunPurgesTheJournal(t *testing.T) {
	f := newFixture(cleanup.Settings{JournalRetention: 7 * 24 * time.Hour})
	j := &fakeJournal{}
	f.c.Journal = j
	res, err := f.c.Run(context.Background(), t0)
	if err != nil || res.Journal == nil || res.Journal.Deleted != 3 || !res.Journal.Done || !j.before.Equal(t0.Add(-7*24*time.Hour)) {
		t.Fatalf("journal %+v, cut-off %s, %v", res.Journal, j.before, err)
	}
	if !strings.Contains(f.emf.String(), `"JournalEntriesPurged":3`) || !strings.Contains(f.logs.String(), `"journal":{"purged":3`) {
		t.Fatalf("journal counts not reported:\n%s\n%s", f.emf.String(), f.logs.String())
	}
}

// pendingUser is a local user Keycloak does not have yet, with a real hash:
// reconciliation re-queues its current password.
func pendingUser(t *testing.T) users.User {
	t.Helper()
	h, err := credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash("pending-user-password")
	if err != nil {
		t.Fatal(err)
	}
	return users.User{Package: "homechoice", Username: "pending", Enabled: true, Hash: users.NewHash(hash)}
}
