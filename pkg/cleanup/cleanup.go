// Package cleanup is kcguard's scheduled maintenance run (functions/cleanup
// on an EventBridge schedule, `kcguard cleanup run` locally): refresh cached
// Keycloak tokens ahead of expiry, purge expired cached tokens and sessions
// through their expiry indexes, re-queue users Keycloak has not caught up
// with, and publish queue depth, DLQ depth, oldest pending change and the
// breaker state.
//
// Every step is bounded in items (a limit) and in time (a deadline). A step
// that reaches a bound stops cleanly and reports Done=false; what it left is
// still listed by its index, so the next run continues where this one
// stopped. Every step returns counts; Run logs them as one structured line
// and publishes them as metrics.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// Tokens is the part of the token cache the run uses.
type Tokens interface {
	ListExpiring(ctx context.Context, before time.Time, limit int) ([]tokencache.Record, error)
	Put(ctx context.Context, rec tokencache.Record) error
	Delete(ctx context.Context, pkg, username string) error
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)
}

// Sessions is the part of the session store the run uses.
type Sessions interface {
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)
}

// Refresher exchanges a refresh token for new tokens (keycloak.Client).
type Refresher interface {
	Refresh(ctx context.Context, pkg, refreshToken string) (keycloak.Token, error)
}

// Breaker guards Keycloak (breaker.Breaker).
type Breaker interface {
	Allow(ctx context.Context) (done func(error), err error)
	State(ctx context.Context) breaker.Status
}

// Depth reports how many messages a queue holds (visible and in flight).
type Depth interface {
	Depth(ctx context.Context) (int, error)
}

// Journal purges sync journal entries older than a cut-off (step 4); nil
// leaves the step out.
type Journal interface {
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
}

var (
	_ Tokens    = (*tokencache.Dynamo)(nil)
	_ Breaker   = (*breaker.Breaker)(nil)
	_ Refresher = (*keycloak.Client)(nil)
)

// Defaults for Settings; the cleanup section's defaults (config.Default)
// are these. The journal's retention is the journal's own
// (journal.DefaultRetention), the one it writes its TTL with.
const (
	DefaultRefreshWindow      = 10 * time.Minute
	DefaultRefreshLimit       = 200
	DefaultRefreshConcurrency = 4
	DefaultDeleteLimit        = 5000
	DefaultReconcileLimit     = 500
	DefaultStepTimeout        = time.Minute
	DefaultTimeBudget         = 4 * time.Minute
)

// Settings bound a run. Zero values take the Default* constants.
type Settings struct {
	// RefreshWindow: tokens expiring within it are refreshed.
	RefreshWindow time.Duration
	// RefreshLimit bounds the tokens refreshed per run.
	RefreshLimit int
	// RefreshConcurrency bounds parallel refreshes.
	RefreshConcurrency int
	// DeleteLimit bounds expired sessions and, separately, expired tokens
	// deleted per run.
	DeleteLimit int
	// ReconcileLimit bounds unsynced users re-queued per run.
	ReconcileLimit int
	// JournalRetention is how long journal entries are kept (default
	// journal.DefaultRetention).
	JournalRetention time.Duration
	// JournalLimit bounds journal entries purged per run (default DeleteLimit).
	JournalLimit int
	// StepTimeout bounds each step; TimeBudget bounds the run. A step never
	// runs past the run's budget.
	StepTimeout time.Duration
	TimeBudget  time.Duration
	// Namespace and Dimensions of the published metrics (default "kcguard",
	// {"Function": "cleanup"}).
	Namespace  string
	Dimensions map[string]string
}

func (s Settings) withDefaults() Settings {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&s.RefreshWindow, DefaultRefreshWindow)
	def(&s.RefreshLimit, DefaultRefreshLimit)
	def(&s.RefreshConcurrency, DefaultRefreshConcurrency)
	def(&s.DeleteLimit, DefaultDeleteLimit)
	def(&s.ReconcileLimit, DefaultReconcileLimit)
	defd(&s.JournalRetention, journal.DefaultRetention)
	def(&s.JournalLimit, s.DeleteLimit)
	defd(&s.StepTimeout, DefaultStepTimeout)
	defd(&s.TimeBudget, DefaultTimeBudget)
	if s.Namespace == "" {
		s.Namespace = "kcguard"
	}
	if s.Dimensions == nil {
		s.Dimensions = map[string]string{"Function": "cleanup"}
	}
	return s
}

// Cleaner runs the scheduled maintenance.
type Cleaner struct {
	Tokens    Tokens
	Sessions  Sessions
	Keycloak  Refresher
	Breaker   Breaker
	Users     syncjob.Unsynced
	Queue     syncjob.Queue
	Packages  []string
	QueueSize Depth
	DLQSize   Depth
	Journal   Journal // nil: step 4 is left out
	// SyncDelivery is the sync worker's delivery (its event source
	// mapping); nil locally. The run re-enables it if it was left paused
	// under a closed breaker, and pauses it under an open one.
	SyncDelivery syncjob.Pauser
	// Probe, if set, pings Keycloak when the breaker is open and a probe is
	// due, so an outage ends even when no login or sync job comes by.
	Probe func(ctx context.Context) error
	// Cursors, if set, keep where reconciliation stopped, so a bounded
	// pass continues there next run instead of starting over.
	Cursors  syncjob.Cursors
	Metrics  metrics.Publisher
	Log      *slog.Logger
	Settings Settings
}

// RefreshResult counts step 1.
type RefreshResult struct {
	Listed    int `json:"listed"`
	Refreshed int `json:"refreshed"`
	// Dropped: Keycloak refused the refresh token, so the entry was deleted.
	Dropped int `json:"dropped"`
	// Failed: Keycloak was unreachable or the write failed; kept for next run.
	Failed int `json:"failed"`
	// PastGrace: already past the grace period; the purge step removes it.
	PastGrace int `json:"past_grace"`
	// Skipped says why the step did not run ("breaker open", ...).
	Skipped string `json:"skipped,omitempty"`
	Done    bool   `json:"done"`
}

// DeleteResult counts one purge.
type DeleteResult struct {
	Deleted int  `json:"deleted"`
	Done    bool `json:"done"`
}

// Gauges is step 5.
type Gauges struct {
	QueueDepth int `json:"queue_depth"`
	DLQDepth   int `json:"dlq_depth"`
	// OldestPending is the age of the oldest change Keycloak has not got
	// yet: the oldest UpdatedAt among the unsynced users the reconciliation
	// saw (a lower bound when it stopped early). SQS's own
	// ApproximateAgeOfOldestMessage is a CloudWatch metric, not a queue
	// attribute, and peeking at messages would hide them from the worker.
	OldestPending time.Duration `json:"oldest_pending"`
	Breaker       string        `json:"breaker"`
	// BreakerValue is the breaker state as a number: 0 closed, 1
	// half-open, 2 open (forced open too), -1 disabled.
	BreakerValue int `json:"breaker_value"`
}

// Result is one run.
type Result struct {
	Refresh   RefreshResult      `json:"refresh"`
	Tokens    DeleteResult       `json:"tokens"`
	Sessions  DeleteResult       `json:"sessions"`
	Reconcile syncjob.Reconciled `json:"reconcile"`
	// Replay is what the run did to the replay: "probed", and "resumed" or
	// "paused" when the safety net fixed the worker's delivery.
	Replay []string `json:"replay,omitempty"`
	// Journal is nil when the run has no journal to purge.
	Journal  *DeleteResult `json:"journal,omitempty"`
	Gauges   Gauges        `json:"gauges"`
	Duration time.Duration `json:"duration"`
	// Errors lists the steps that failed, by name; the other steps ran.
	Errors []string `json:"errors,omitempty"`
}

// Done reports whether every step finished within its bounds.
func (r Result) Done() bool {
	return r.Refresh.Done && r.Tokens.Done && r.Sessions.Done && r.Reconcile.Done && (r.Journal == nil || r.Journal.Done)
}

func (c *Cleaner) settings() Settings { return c.Settings.withDefaults() }

func (c *Cleaner) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// step runs fn under the step timeout and what is left of the run's budget.
func (c *Cleaner) step(ctx context.Context, name string, r *Result, fn func(context.Context) error) {
	sctx, cancel := context.WithTimeout(ctx, c.settings().StepTimeout)
	defer cancel()
	if err := fn(sctx); err != nil {
		r.Errors = append(r.Errors, name)
		c.log().ErrorContext(ctx, "cleanup step failed", "step", name, "err", err)
	}
}

// GaugeReserve bounds step 5 (gauges), which runs even when the other
// steps used up the run's time budget: a run takes at most TimeBudget plus
// GaugeReserve, which must stay below the function's timeout.
const GaugeReserve = 15 * time.Second

// Run is one scheduled run at now. Steps run in order; a failing step is
// logged and the rest still run. It returns an error only when a step
// failed (after logging and publishing what it did).
func (c *Cleaner) Run(ctx context.Context, now time.Time) (Result, error) {
	set := c.settings()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, set.TimeBudget)
	defer cancel()
	var r Result
	c.step(ctx, "replay", &r, func(ctx context.Context) error { return c.replay(ctx, &r) })
	c.step(ctx, "refresh", &r, func(ctx context.Context) (err error) {
		r.Refresh, err = c.RefreshExpiring(ctx, now, set.RefreshLimit)
		return err
	})
	c.step(ctx, "tokens", &r, func(ctx context.Context) (err error) {
		r.Tokens, err = purge(ctx, c.Tokens.DeleteExpired, now, set.DeleteLimit)
		return err
	})
	c.step(ctx, "sessions", &r, func(ctx context.Context) (err error) {
		r.Sessions, err = purge(ctx, c.Sessions.DeleteExpired, now, set.DeleteLimit)
		return err
	})
	oldest := &oldestSeen{}
	c.step(ctx, "reconcile", &r, func(ctx context.Context) (err error) {
		if st := c.Breaker.State(ctx); st.State == breaker.StateOpen || st.State == breaker.StateHalfOpen {
			r.Reconcile = syncjob.Reconciled{Skipped: "breaker " + string(st.State), Done: true}
			return nil
		}
		r.Reconcile, err = syncjob.ReconcileFrom(ctx, observed{c.Users, oldest}, c.Queue, c.Cursors, c.Packages, set.ReconcileLimit, now)
		return err
	})
	if c.Journal != nil {
		r.Journal = &DeleteResult{}
		c.step(ctx, "journal", &r, func(ctx context.Context) (err error) {
			*r.Journal, err = purge(ctx, c.Journal.Purge, now.Add(-set.JournalRetention), set.JournalLimit)
			return err
		})
	}
	// The gauges are what tell an operator a run is falling behind, so they
	// have a reserve of their own instead of what the other steps left.
	gctx, gcancel := context.WithTimeout(context.WithoutCancel(ctx), GaugeReserve)
	c.step(gctx, "gauges", &r, func(ctx context.Context) (err error) {
		r.Gauges, err = c.gauges(ctx, now, oldest.get())
		return err
	})
	gcancel()
	r.Duration = time.Since(start)

	// Publishing uses the caller's context: a run out of budget still reports.
	if err := c.publish(context.WithoutCancel(ctx), r); err != nil {
		r.Errors = append(r.Errors, "metrics")
		c.log().ErrorContext(ctx, "cleanup metrics not published", "err", err)
	}
	c.logResult(ctx, r)
	if len(r.Errors) > 0 {
		return r, fmt.Errorf("cleanup: steps failed: %v", r.Errors)
	}
	return r, nil
}

// replay is the safety net of the breaker-driven replay: probe an open
// breaker whose probe is due (nobody else may come by), then make the sync
// worker's delivery match the breaker, whatever a lost notification or a
// failed pause or resume left behind.
func (c *Cleaner) replay(ctx context.Context, r *Result) error {
	st := c.Breaker.State(ctx)
	if c.Probe != nil && st.State == breaker.StateOpen && !st.Forced && !st.Fallback &&
		!st.NextProbe.IsZero() && !time.Now().Before(st.NextProbe) {
		if done, err := c.Breaker.Allow(ctx); err == nil {
			err := c.Probe(ctx)
			done(err)
			r.Replay = append(r.Replay, "probed")
			st = c.Breaker.State(ctx)
		}
	}
	if c.SyncDelivery == nil {
		return nil
	}
	changed, err := syncjob.Ensure(ctx, c.SyncDelivery, st)
	if changed != "" && err == nil {
		r.Replay = append(r.Replay, changed)
		c.log().WarnContext(ctx, "sync worker delivery did not match the breaker; fixed", "event", "sync_delivery_fixed",
			"breaker", string(st.State), "action", changed)
	}
	return err
}

// purge runs a bounded delete. Done means it deleted fewer than its limit
// before its deadline, so nothing it could see is left; a deadline in the
// middle is a clean stop, not an error.
func purge(ctx context.Context, del func(context.Context, time.Time, int) (int, error), at time.Time, limit int) (DeleteResult, error) {
	n, err := del(ctx, at, limit)
	r := DeleteResult{Deleted: n, Done: err == nil && n < limit}
	if err != nil && ctx.Err() != nil {
		return r, nil
	}
	return r, err
}

// RefreshExpiring refreshes up to limit cached tokens whose access token
// expires before now+RefreshWindow, while the breaker is closed, using their
// refresh tokens with bounded concurrency. Keycloak refusing a refresh
// token (revoked, expired, user disabled) drops the entry; an outage keeps
// it and ends the step as soon as the breaker stops admitting calls.
func (c *Cleaner) RefreshExpiring(ctx context.Context, now time.Time, limit int) (RefreshResult, error) {
	set := c.settings()
	var r RefreshResult
	if st := c.Breaker.State(ctx); st.State != breaker.StateClosed && st.State != breaker.StateDisabled {
		r.Skipped = "breaker " + string(st.State)
		return r, nil
	}
	list, err := c.Tokens.ListExpiring(ctx, now.Add(set.RefreshWindow), limit)
	if err != nil {
		if ctx.Err() != nil {
			return r, nil
		}
		return r, err
	}
	r.Listed = len(list)
	var refreshed, dropped, failed, pastGrace atomic.Int64
	var stopped atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(set.RefreshConcurrency)
	for _, rec := range list {
		if stopped.Load() || gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			switch outcome := c.refreshOne(gctx, rec, now); outcome {
			case outcomeRefreshed:
				refreshed.Add(1)
			case outcomeDropped:
				dropped.Add(1)
			case outcomeStop:
				stopped.Store(true)
			case outcomePastGrace:
				pastGrace.Add(1)
			default:
				failed.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	r.Refreshed, r.Dropped, r.Failed, r.PastGrace = int(refreshed.Load()), int(dropped.Load()), int(failed.Load()), int(pastGrace.Load())
	r.Done = !stopped.Load() && ctx.Err() == nil && r.Refreshed+r.Dropped+r.Failed+r.PastGrace == r.Listed && r.Listed < limit
	return r, nil
}

type outcome int

const (
	outcomeFailed outcome = iota
	outcomeRefreshed
	outcomeDropped
	outcomeStop
	outcomePastGrace
)

func (c *Cleaner) refreshOne(ctx context.Context, rec tokencache.Record, now time.Time) outcome {
	log := c.log().With("package", rec.Package, "user", rec.Username)
	if !now.Before(rec.GraceUntil) {
		// Logins no longer use it; refreshing would revive an entry the
		// grace period has ended.
		return outcomePastGrace
	}
	if rec.RefreshToken == "" || (!rec.RefreshExpiresAt.IsZero() && !now.Before(rec.RefreshExpiresAt)) {
		// Keycloak would refuse it: drop without asking.
		return c.drop(ctx, rec, log, "no usable refresh token")
	}
	done, err := c.Breaker.Allow(ctx)
	if err != nil {
		return outcomeStop // breaker opened meanwhile (or the step ran out of time)
	}
	tok, err := c.Keycloak.Refresh(ctx, rec.Package, rec.RefreshToken)
	done(err)
	switch {
	case errors.Is(err, keycloak.ErrInvalidCredentials):
		// invalid_grant: revoked or expired refresh token, or a disabled
		// user. Other refusals (our client secret, a missing realm) are
		// configuration faults, not the token's: keep the entry.
		return c.drop(ctx, rec, log, "keycloak refused the refresh token")
	case err != nil:
		if ctx.Err() == nil {
			log.WarnContext(ctx, "token refresh failed", "err", err)
		}
		return outcomeFailed
	}
	next := tokencache.Record{
		Package: rec.Package, Username: rec.Username,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		AccessExpiresAt: tok.ExpiresAt, RefreshExpiresAt: tok.RefreshExpiresAt,
		// A refresh is a successful Keycloak login: it renews the grace period.
		CachedAt: now,
	}
	if next.RefreshToken == "" { // Keycloak may keep the old refresh token
		next.RefreshToken, next.RefreshExpiresAt = rec.RefreshToken, rec.RefreshExpiresAt
	}
	if err := c.Tokens.Put(ctx, next); err != nil {
		log.WarnContext(ctx, "refreshed token not stored", "err", err)
		return outcomeFailed
	}
	return outcomeRefreshed
}

func (c *Cleaner) drop(ctx context.Context, rec tokencache.Record, log *slog.Logger, why string) outcome {
	if err := c.Tokens.Delete(ctx, rec.Package, rec.Username); err != nil {
		log.WarnContext(ctx, "cached token not dropped", "reason", why, "err", err)
		return outcomeFailed
	}
	log.InfoContext(ctx, "cached token dropped", "reason", why)
	return outcomeDropped
}

// observed passes the reconciliation's reads through, noting the oldest
// pending change, so the gauge costs no read of its own.
type observed struct {
	syncjob.Unsynced
	oldest *oldestSeen
}

func (o observed) ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]users.User, string, error) {
	page, next, err := o.Unsynced.ListUnsynced(ctx, pkg, limit, cursor)
	for _, u := range page {
		o.oldest.see(u.UpdatedAt)
	}
	return page, next, err
}

type oldestSeen struct {
	mu sync.Mutex
	t  time.Time
}

func (o *oldestSeen) see(t time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !t.IsZero() && (o.t.IsZero() || t.Before(o.t)) {
		o.t = t
	}
}

func (o *oldestSeen) get() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.t
}

// BreakerValue maps a breaker state onto the published number.
func BreakerValue(s breaker.State) int {
	switch s {
	case breaker.StateClosed:
		return 0
	case breaker.StateHalfOpen:
		return 1
	case breaker.StateOpen:
		return 2
	}
	return -1
}

func (c *Cleaner) gauges(ctx context.Context, now, oldest time.Time) (Gauges, error) {
	st := c.Breaker.State(ctx)
	g := Gauges{Breaker: string(st.State), BreakerValue: BreakerValue(st.State)}
	if !oldest.IsZero() && now.After(oldest) {
		g.OldestPending = now.Sub(oldest)
	}
	var errs []error
	if c.QueueSize != nil {
		n, err := c.QueueSize.Depth(ctx)
		g.QueueDepth, errs = n, append(errs, err)
	}
	if c.DLQSize != nil {
		n, err := c.DLQSize.Depth(ctx)
		g.DLQDepth, errs = n, append(errs, err)
	}
	return g, errors.Join(errs...)
}

func (c *Cleaner) publish(ctx context.Context, r Result) error {
	if c.Metrics == nil {
		return nil
	}
	cnt := func(name string, v int) metrics.Value {
		return metrics.Value{Name: name, Value: float64(v), Unit: metrics.Count}
	}
	vals := []metrics.Value{
		cnt("TokensRefreshed", r.Refresh.Refreshed), cnt("TokensDropped", r.Refresh.Dropped),
		cnt("TokenRefreshFailures", r.Refresh.Failed),
		cnt("ExpiredTokensDeleted", r.Tokens.Deleted), cnt("ExpiredSessionsDeleted", r.Sessions.Deleted),
		cnt("UnsyncedUsersFound", r.Reconcile.Found), cnt("UnsyncedUsersQueued", r.Reconcile.Queued),
		cnt("SyncQueueDepth", r.Gauges.QueueDepth), cnt("SyncDLQDepth", r.Gauges.DLQDepth),
		{Name: "OldestPendingChangeAge", Value: r.Gauges.OldestPending.Seconds(), Unit: metrics.Seconds},
		{Name: "BreakerState", Value: float64(r.Gauges.BreakerValue), Unit: metrics.None},
		cnt("CleanupStepErrors", len(r.Errors)),
		{Name: "CleanupDuration", Value: float64(r.Duration.Milliseconds()), Unit: metrics.Milliseconds},
	}
	if r.Journal != nil {
		vals = append(vals, cnt("JournalEntriesPurged", r.Journal.Deleted))
	}
	set := c.settings()
	return c.Metrics.Publish(ctx, set.Namespace, set.Dimensions, vals)
}

func (c *Cleaner) logResult(ctx context.Context, r Result) {
	attrs := []any{
		slog.Group("refresh", "listed", r.Refresh.Listed, "refreshed", r.Refresh.Refreshed, "dropped", r.Refresh.Dropped,
			"failed", r.Refresh.Failed, "past_grace", r.Refresh.PastGrace, "skipped", r.Refresh.Skipped, "done", r.Refresh.Done),
		slog.Group("tokens", "deleted", r.Tokens.Deleted, "done", r.Tokens.Done),
		slog.Group("sessions", "deleted", r.Sessions.Deleted, "done", r.Sessions.Done),
		slog.Group("reconcile", "found", r.Reconcile.Found, "queued", r.Reconcile.Queued, "failed", r.Reconcile.Failed, "done", r.Reconcile.Done),
	}
	if r.Journal != nil {
		attrs = append(attrs, slog.Group("journal", "purged", r.Journal.Deleted, "done", r.Journal.Done))
	}
	attrs = append(attrs,
		slog.Group("gauges", "queue_depth", r.Gauges.QueueDepth, "dlq_depth", r.Gauges.DLQDepth,
			"oldest_pending_seconds", int64(r.Gauges.OldestPending.Seconds()), "breaker", r.Gauges.Breaker),
		"duration_ms", r.Duration.Milliseconds(), "done", r.Done(), "errors", r.Errors)
	level := slog.LevelInfo
	if len(r.Errors) > 0 {
		level = slog.LevelError
	}
	c.log().Log(ctx, level, "cleanup run", attrs...)
}
