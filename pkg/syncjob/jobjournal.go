package syncjob

import (
	"context"
	"log/slog"
	"time"

	"github.com/kcguard/kcguard/pkg/journal"
)

// JobJournal writes what became of each sync job: pending when it is
// queued (JournaledQueue), then applied, superseded or failed (Worker). A
// failed write is logged and otherwise ignored: the journal never blocks
// the sync. A nil *JobJournal (tables.journal is empty) writes nothing.
type JobJournal struct {
	Journal Journal
	Log     *slog.Logger
	// Now is the clock of the entries (default time.Now).
	Now func() time.Time
}

// Write records e (status, reason, conflict) for job j.
func (jj *JobJournal) Write(ctx context.Context, j Job, e journal.Entry) {
	if jj == nil || jj.Journal == nil || j.ID == "" || j.Package == "" || j.Username == "" {
		return // no journal, or a job too broken to name
	}
	now := time.Now
	if jj.Now != nil {
		now = jj.Now
	}
	e.JobID, e.Type, e.Package, e.Username, e.Version = j.ID, string(j.Type), j.Package, j.Username, j.Version
	e.CreatedAt, e.UpdatedAt = j.CreatedAt, now()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	if err := jj.Journal.Record(ctx, e); err != nil && jj.Log != nil {
		jj.Log.WarnContext(ctx, "sync journal not written", "job", j.ID, "status", string(e.Status), "err", err)
	}
}

// JournaledQueue records a job as pending in the journal, then queues it
// (and records it failed if the send fails). The Dispatcher and
// reconciliation queue through it; the login path's drift jobs do not, so a
// login never pays for a journal write.
type JournaledQueue struct {
	Queue   Queue
	Journal *JobJournal
}

var _ Queue = JournaledQueue{}

// Enqueue implements Queue.
func (q JournaledQueue) Enqueue(ctx context.Context, j Job) error {
	q.Journal.Write(ctx, j, journal.Entry{Status: journal.Pending})
	err := q.Queue.Enqueue(ctx, j)
	if err != nil {
		q.Journal.Write(ctx, j, journal.Entry{Status: journal.Failed, Reason: "not queued (reconciliation re-queues the user): " + err.Error()})
	}
	return err
}
