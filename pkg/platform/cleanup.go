package platform

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// CleanupSettings maps the cleanup section onto a run's bounds.
func CleanupSettings(cfg config.Config) cleanup.Settings {
	c := cfg.Cleanup
	return cleanup.Settings{
		RefreshWindow: c.RefreshWindow, RefreshLimit: c.RefreshLimit, RefreshConcurrency: c.RefreshConcurrency,
		DeleteLimit: c.DeleteLimit, ReconcileLimit: c.ReconcileLimit,
		JournalRetention: cfg.Sync.JournalRetention,
		StepTimeout:      c.StepTimeout, TimeBudget: c.TimeBudget,
	}
}

// Cleaner is the scheduled maintenance run (functions/cleanup, `kcguard
// cleanup run`); metrics go to w as EMF lines (os.Stdout in Lambda).
func (rt *Runtime) Cleaner(w io.Writer) *cleanup.Cleaner {
	if w == nil {
		w = os.Stdout
	}
	c := &cleanup.Cleaner{
		Tokens: rt.Tokens, Sessions: rt.Sessions, Keycloak: rt.Keycloak, Breaker: rt.Breaker,
		Users: rt.Users, Queue: rt.JournaledQueue, Packages: rt.Config.PackageNames(),
		QueueSize: QueueDepth{Queue: rt.Queue}, DLQSize: QueueDepth{Queue: rt.DLQ},
		Metrics: &metrics.EMF{W: w}, Log: rt.Log, Settings: CleanupSettings(rt.Config),
	}
	if rt.Journal != nil { // a nil *journal.Dynamo must stay a nil interface
		c.Journal = rt.Journal
	}
	if rt.SyncMapping != nil { // likewise
		c.SyncDelivery = rt.SyncMapping
	}
	c.Probe = rt.Keycloak.Ping
	c.Cursors = rt.ReconcileCursors()
	return c
}

// CleanupHandler is the EventBridge-scheduled Lambda handler: one run at
// the invocation time (the event's own time is when it was scheduled, which
// a retried invocation would repeat). A failed step fails the invocation,
// so Lambda's Errors metric and EventBridge's retry see it; the run is
// idempotent, so a retry only continues the work.
func (rt *Runtime) CleanupHandler() func(ctx context.Context, ev events.EventBridgeEvent) (cleanup.Result, error) {
	c := rt.Cleaner(os.Stdout)
	topic := rt.SNS()
	return func(ctx context.Context, _ events.EventBridgeEvent) (cleanup.Result, error) {
		r, _, err := rt.RunCleanup(ctx, c, topic)
		return r, err
	}
}

// RunCleanup is one scheduled run, in the function and in `kcguard cleanup
// run`: the run, its record in the run log, then the daily summary if it
// is due (summaries: the packages it was published for).
func (rt *Runtime) RunCleanup(ctx context.Context, c *cleanup.Cleaner, topic alerts.SNSAPI) (r cleanup.Result, summaries int, err error) {
	start := time.Now()
	r, err = c.Run(ctx, start)
	rt.RecordCleanup(ctx, start, r, err)
	summaries, serr := rt.DailySummary(ctx, topic, time.Now())
	if serr != nil {
		rt.Log.ErrorContext(ctx, "daily summary not published", "err", serr) // its run record says so too
	}
	return r, summaries, err
}

// QueueDepth reports an SQS queue's visible plus in-flight messages.
type QueueDepth struct{ Queue *syncjob.SQSQueue }

var _ cleanup.Depth = QueueDepth{}

// Depth implements cleanup.Depth.
func (q QueueDepth) Depth(ctx context.Context) (int, error) {
	waiting, inFlight, err := q.Queue.Depth(ctx)
	return waiting + inFlight, err
}

// SessionReporter builds the per-package session metrics (GET
// /admin/metrics, `kcguard sessions metrics`).
func (rt *Runtime) SessionReporter() metrics.SessionReporter {
	return metrics.SessionReporter{Audit: rt.Audit, Sessions: rt.Sessions, Lifetime: rt.Config.Sessions.MaxLifetime}
}
