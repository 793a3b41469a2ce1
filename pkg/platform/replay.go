package platform

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// ReconcileOnClose bounds the reconciliation pass the closing instance
// starts: the scheduled cleanup continues whatever it leaves.
const ReconcileOnClose = 30 * time.Second

// wireReplay builds what the breaker's transitions drive: the SNS alerts,
// and the replay (pause and resume of the sync worker, reconciliation).
// The breaker is built after this and notifies both.
func (rt *Runtime) wireReplay(cfg config.Config, awsCfg aws.Config, log *slog.Logger) {
	rt.Alerts = &alerts.Publisher{SNS: sns.NewFromConfig(awsCfg), TopicARN: cfg.Alerts.TopicARN,
		Backlog: QueueDepth{Queue: rt.Queue}, Log: log}
	rt.Replay = &syncjob.Replay{Log: log, Wake: rt.wakePoller, Reconcile: rt.reconcileOnClose}
	if cfg.Sync.WorkerFunction != "" {
		rt.SyncMapping = syncjob.NewEventSourceMapping(lambda.NewFromConfig(awsCfg), cfg.Sync.WorkerFunction,
			cfg.Sync.EventSourceMapping, rt.Queue)
		rt.Replay.Pauser = rt.SyncMapping
	}
}

// FlushAlerts gives breaker alerts still being published (or retried)
// up to d before the process exits, and logs any it has to leave.
func (rt *Runtime) FlushAlerts(d time.Duration) {
	if rt.Alerts != nil && !rt.Alerts.WaitFor(d) {
		rt.Log.Error("exiting with breaker alerts not yet published", "waited", d.String())
	}
}

func (rt *Runtime) wakePoller() {
	if rt.poller != nil {
		rt.poller.Wake()
	}
}

// DrainWait bounds how long the pass on close waits for the queue to drain.
const DrainWait = 2 * time.Minute

// reconcileOnClose re-queues users Keycloak has not caught up with once the
// breaker has closed and the queue has drained (or DrainWait passed): what
// is still unsynced then is what the queue does not hold (a lost send).
// Re-queuing earlier would only duplicate jobs the drain is about to apply.
// Bounded; in Lambda the instance may be frozen before it ends, and the
// scheduled cleanup finishes the work.
func (rt *Runtime) reconcileOnClose(ctx context.Context) {
	wait, cancelWait := context.WithTimeout(ctx, DrainWait)
	for wait.Err() == nil {
		if n, err := (QueueDepth{Queue: rt.Queue}).Depth(wait); err == nil && n == 0 {
			break
		}
		select {
		case <-wait.Done():
		case <-time.After(2 * time.Second):
		}
	}
	cancelWait()
	ctx, cancel := context.WithTimeout(ctx, ReconcileOnClose)
	defer cancel()
	r, err := syncjob.ReconcileFrom(ctx, rt.Users, rt.JournaledQueue, rt.ReconcileCursors(), rt.Config.PackageNames(), rt.Config.Cleanup.ReconcileLimit, time.Now())
	log := rt.Log.With("event", "reconcile_on_close", "found", r.Found, "queued", r.Queued, "failed", r.Failed, "done", r.Done)
	if err != nil {
		log.WarnContext(ctx, "reconciliation after the breaker closed failed; the scheduled cleanup retries", "err", err)
		return
	}
	log.InfoContext(ctx, "reconciliation after the breaker closed")
}

// ReconcileCursors keep where bounded reconciliation passes stopped.
func (rt *Runtime) ReconcileCursors() syncjob.Cursors {
	return syncjob.DynamoCursors{DB: rt.DynamoDB, Table: rt.Config.Tables.Breaker}
}
