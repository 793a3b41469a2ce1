package syncjob

import (
	"context"
	"log/slog"
	"time"
)

// Dispatcher syncs a change now when Keycloak is reachable and queues it
// otherwise, so a user-facing request never waits on a Keycloak that is down.
// It is the login and password flows' way into the sync (auth.Sync) and the
// session API's way to end Keycloak sessions.
type Dispatcher struct {
	Applier *Applier
	Queue   Queue
	// Journal (nil: none) records the jobs Dispatch queues as pending.
	Journal *JobJournal
	Breaker Breaker
	Log     *slog.Logger
}

// Dispatch applies j now if the breaker allows and Keycloak takes it, and
// queues it otherwise. It returns Applied or Queued. A queue failure is
// logged, not returned: the local change is already stored with
// version > keycloak_synced_version, and reconciliation re-queues it.
func (d *Dispatcher) Dispatch(ctx context.Context, j Job) Result {
	if done, err := d.Breaker.Allow(ctx); err == nil {
		_, err := d.Applier.Apply(ctx, j)
		done(err)
		if err == nil {
			return Applied
		}
		d.log().WarnContext(ctx, "sync now failed; queueing", "job", j.ID, "type", j.Type,
			"package", j.Package, "username", j.Username, "err", err)
	}
	if err := (JournaledQueue{Queue: d.Queue, Journal: d.Journal}).Enqueue(ctx, j); err != nil {
		d.log().ErrorContext(ctx, "sync job not queued; reconciliation will re-queue it", "event", "sync_enqueue_failed",
			"job", j.ID, "package", j.Package, "username", j.Username, "version", j.Version, "err", err)
	}
	return Queued
}

// Enqueue queues j without trying it now and without a journal entry (the
// login path's drift and rehash jobs: a login never pays for either).
func (d *Dispatcher) Enqueue(ctx context.Context, j Job) error {
	return d.Queue.Enqueue(ctx, j)
}

// LogoutEverywhere ends the user's Keycloak sessions now, or queues a
// logout_user job for when Keycloak is back; it returns Applied or Queued.
func (d *Dispatcher) LogoutEverywhere(ctx context.Context, pkg, username string) string {
	return string(d.Dispatch(ctx, New(LogoutUser, pkg, username, 0, time.Now())))
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log == nil {
		return d.Applier.logger()
	}
	return d.Log
}

// Queued means the job waits in the sync queue (or for reconciliation).
const Queued Result = "queued"
