package syncjob

import (
	"context"
	"log/slog"

	"github.com/kcguard/kcguard/pkg/journal"
)

// Breaker is the circuit breaker guarding Keycloak.
type Breaker interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// Dispatcher syncs a change now when Keycloak is reachable and queues it
// otherwise, so a user-facing request never waits on a Keycloak that is down.
type Dispatcher struct {
	Applier *Applier
	Queue   Queue
	Breaker Breaker
	Log     *slog.Logger
}

// Dispatch applies j now if the breaker allows and Keycloak takes it, and
// queues it otherwise. It returns Applied or "queued". A queue failure is
// logged, not returned: the local change is already stored with
// version > keycloak_synced_version, and reconciliation re-queues it.
func (d *Dispatcher) Dispatch(ctx context.Context, j Job) Result {
	if done, err := d.Breaker.Allow(ctx); err == nil {
		_, err := d.Applier.Apply(ctx, j)
		done(err)
		if err == nil {
			return Applied
		}
		d.Applier.logger().WarnContext(ctx, "sync now failed; queueing", "job", j.ID, "type", j.Type,
			"package", j.Package, "username", j.Username, "err", err)
	}
	if err := (JournaledQueue{Queue: d.Queue, Applier: d.Applier}).Enqueue(ctx, j); err != nil {
		d.Applier.logger().ErrorContext(ctx, "sync job not queued; reconciliation will re-queue it", "event", "sync_enqueue_failed",
			"job", j.ID, "package", j.Package, "username", j.Username, "version", j.Version, "err", err)
	}
	return Queued
}

// JournaledQueue records a job as pending in the Applier's journal, then
// queues it (and records it failed if the send fails). The Dispatcher and
// reconciliation queue through it; the login path's drift jobs do not, so a
// login never pays for a journal write.
type JournaledQueue struct {
	Queue   Queue
	Applier *Applier
}

// Enqueue implements Queue.
func (q JournaledQueue) Enqueue(ctx context.Context, j Job) error {
	w := &Worker{Applier: q.Applier, Log: q.Applier.Log}
	if q.Applier.Journal != nil {
		w.journal(ctx, j, journal.Entry{Status: journal.Pending})
	}
	err := q.Queue.Enqueue(ctx, j)
	if err != nil && q.Applier.Journal != nil {
		w.journal(ctx, j, journal.Entry{Status: journal.Failed, Reason: "not queued (reconciliation re-queues the user): " + err.Error()})
	}
	return err
}

// Queued means the job waits in the sync queue (or for reconciliation).
const Queued Result = "queued"
