package syncjob

import (
	"context"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/users"
)

// Unsynced lists users whose local version is ahead of Keycloak's.
type Unsynced interface {
	ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]users.User, string, error)
}

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

// Reconcile re-queues every user whose version is ahead of
// keycloak_synced_version, found through the sparse "unsynced" index (a
// Query, never a Scan), so a lost SQS send or a purged queue loses nothing.
// SQS deduplication (type, user, version) makes a re-queue of a job still in
// the queue a no-op. It stops after limit users or at the context deadline.
func Reconcile(ctx context.Context, st Unsynced, q Queue, packages []string, limit int, now time.Time) (Reconciled, error) {
	var r Reconciled
	for _, pkg := range packages {
		cursor := ""
		for {
			if limit > 0 && r.Found >= limit || ctx.Err() != nil {
				return r, nil
			}
			page, next, err := st.ListUnsynced(ctx, pkg, min(100, max(1, limit-r.Found)), cursor)
			if err != nil {
				return r, fmt.Errorf("list unsynced users of %s: %w", pkg, err)
			}
			for _, u := range page {
				r.Found++
				j, err := CurrentPassword(u, now)
				if err == nil {
					err = q.Enqueue(ctx, j)
				}
				if err != nil {
					r.Failed++
					continue
				}
				r.Queued++
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	r.Done = true
	return r, nil
}

// CurrentPassword is the job that sends Keycloak the user's current local
// hash at the user's current version (drift repair, rehash, reconciliation).
func CurrentPassword(u users.User, now time.Time) (Job, error) {
	h, err := credential.ParseHash(u.Hash.SecretData, u.Hash.CredentialData)
	if err != nil {
		return Job{}, fmt.Errorf("%w: local hash of %s: %v", ErrMalformed, u.Key(), err)
	}
	j := New(SetPassword, u.Package, u.Username, u.Version, now)
	j.Hash = &h
	return j, nil
}
