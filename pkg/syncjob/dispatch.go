package syncjob

import (
	"context"
	"log/slog"
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
	if err := d.Queue.Enqueue(ctx, j); err != nil {
		d.Applier.logger().ErrorContext(ctx, "sync job not queued; reconciliation will re-queue it", "job", j.ID,
			"package", j.Package, "username", j.Username, "version", j.Version, "err", err)
	}
	return Queued
}

// Queued means the job waits in the sync queue (or for reconciliation).
const Queued Result = "queued"
