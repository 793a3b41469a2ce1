package syncjob

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kcguard/kcguard/pkg/users"
)

// Reconciled counts one reconciliation run.
type Reconciled struct {
	Found, Queued, Failed int
	// Done is false when the run stopped at its limit or deadline; the next
	// run continues (the index still lists whoever was not synced).
	Done bool
	// Skipped says why the pass did not run ("breaker open": re-queuing
	// while Keycloak is down would only fill the queue with duplicates).
	Skipped string `json:",omitempty"`
}

// Reconcile is ReconcileFrom without a persisted cursor: every pass starts
// at the first username (`kcguard sync reconcile` without --limit).
func Reconcile(ctx context.Context, st Unsynced, q Queue, packages []string, limit int, now time.Time) (Reconciled, error) {
	return ReconcileFrom(ctx, st, q, nil, packages, limit, now)
}

// ReconcileFrom re-queues every user whose version is ahead of
// keycloak_synced_version, found through the sparse "unsynced" index (a
// Query, never a Scan), so a lost SQS send, a purged queue or a dead-lettered
// job loses nothing. Each pass's re-queues carry the pass (Job.Requeue) in
// their deduplication id, so SQS does not drop them as copies of the first
// send; one still queued is superseded by version.
//
// A pass is bounded: limit users in all (0: no limit), shared evenly by the
// packages so one package's backlog cannot starve another, and the context
// deadline. With cursors, each package continues after the last user the
// previous pass reached and wraps to the start when it reaches the end, so
// every unsynced user is re-queued at least once every
// ceil(unsynced / share) passes, however many stay stuck.
func ReconcileFrom(ctx context.Context, st Unsynced, q Queue, cur Cursors, packages []string, limit int, now time.Time) (Reconciled, error) {
	r := Reconciled{Done: true}
	// This pass's re-queues are new messages, not copies of the sends they
	// repeat (those may sit in the DLQ within SQS's deduplication window);
	// versions make a re-queue of a job still queued harmless.
	run := "reconcile-" + strconv.FormatInt(now.UnixMilli(), 10)
	share := 0
	if limit > 0 && len(packages) > 0 {
		share = max(1, (limit+len(packages)-1)/len(packages))
	}
	for _, pkg := range packages {
		cursor := ""
		if cur != nil {
			var err error
			if cursor, err = cur.Cursor(ctx, pkg); err != nil {
				return r, fmt.Errorf("reconciliation cursor of %s: %w", pkg, err)
			}
		}
		found := 0
		for {
			if share > 0 && found >= share || ctx.Err() != nil {
				r.Done = false
				break
			}
			page, next, err := st.ListUnsynced(ctx, pkg, min(100, max(1, share-found)), cursor)
			if err != nil {
				if ctx.Err() != nil {
					r.Done = false
					break
				}
				return r, fmt.Errorf("list unsynced users of %s: %w", pkg, err)
			}
			for _, u := range page {
				found++
				r.Found++
				j, err := CurrentPassword(u, now)
				if err == nil {
					j.Requeue = run
					err = q.Enqueue(ctx, j)
				}
				if err != nil {
					r.Failed++
					continue
				}
				r.Queued++
			}
			cursor = next
			if next == "" {
				break // the end: the next pass starts from the beginning
			}
		}
		if cur != nil {
			// Saved even when the pass ran out of time: that is when it
			// matters most.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			err := cur.SetCursor(sctx, pkg, cursor)
			cancel()
			if err != nil {
				return r, fmt.Errorf("save reconciliation cursor of %s: %w", pkg, err)
			}
		}
	}
	return r, nil
}

// CurrentPassword is the job that sends Keycloak the user's current local
// hash at the user's current version (drift repair, rehash, reconciliation).
func CurrentPassword(u users.User, now time.Time) (Job, error) {
	h, err := u.Hash.Verifier()
	if err != nil {
		return Job{}, fmt.Errorf("%w: local hash of %s: %v", ErrMalformed, u.Key(), err)
	}
	j := New(SetPassword, u.Package, u.Username, u.Version, now)
	j.Hash = &h
	return j, nil
}
