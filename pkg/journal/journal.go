// Package journal is the sync journal: one entry per sync job with its
// status (pending, applied, superseded, failed and why), kept for a
// retention period (DynamoDB TTL), so operators can see what is waiting for
// Keycloak and what happened to each change.
//
// The journal is bookkeeping, never a gate: the sync is correct without it
// (users' version and keycloak_synced_version decide what Keycloak needs),
// so a journal write that fails is logged and the sync goes on. It is
// written on the sync worker's path and when a job is queued, never by a
// login.
package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// ErrInvalid means an entry lacks what identifies it.
var ErrInvalid = errors.New("journal: invalid entry")

// Status is where a job stands.
type Status string

const (
	Pending    Status = "pending"    // queued, not yet handled
	Applied    Status = "applied"    // Keycloak has this job's change
	Superseded Status = "superseded" // a newer change (or a policy) made it unnecessary
	Failed     Status = "failed"     // see Reason; retried unless dead-lettered
)

// Statuses lists every status, in the order operators read them.
var Statuses = []Status{Pending, Failed, Applied, Superseded}

// Final reports whether s is an outcome no later delivery may change:
// a duplicate delivery of an applied job must not turn it into superseded.
func (s Status) Final() bool { return s == Applied || s == Superseded }

// Entry is one job's journal record. It never holds a hash or password.
type Entry struct {
	JobID     string
	Type      string
	Package   string
	Username  string
	Version   int64
	CreatedAt time.Time // when the job was made
	Status    Status
	// Reason says why a job failed or was superseded.
	Reason string
	// Conflict is the policy applied when Keycloak's password was newer
	// than the change ("local_wins" or "keycloak_wins"), else empty.
	Conflict string
	// UpdatedAt is when the status was recorded; retention counts from it.
	UpdatedAt time.Time
}

// Store keeps the journal.
type Store interface {
	// Record writes e, replacing the job's earlier status unless that one
	// is final (Status.Final): the first final outcome of a job stands.
	Record(ctx context.Context, e Entry) error
	// ListByUser returns up to limit of the user's entries, newest job first.
	ListByUser(ctx context.Context, pkg, username string, limit int) ([]Entry, error)
	// ListByStatus returns up to limit entries with status s, oldest status
	// change first, and a cursor for the next page ("" when done).
	ListByStatus(ctx context.Context, s Status, limit int, cursor string) ([]Entry, string, error)
	// Count counts the entries with status s (entries past retention may
	// count until DynamoDB's TTL removes them).
	Count(ctx context.Context, s Status) (int, error)
	// Purge deletes up to limit entries whose last status change is before
	// before, through the status index (never a scan), and returns how many.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
}

// Defaults.
const (
	DefaultRetention = 7 * 24 * time.Hour
	DefaultListLimit = 100
)

// Option configures a store.
type Option func(*options)

type options struct{ retention time.Duration }

// WithRetention sets how long entries live after their last status change
// (default DefaultRetention).
func WithRetention(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.retention = d
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{retention: DefaultRetention}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func prepare(e Entry) (Entry, string, error) {
	k, err := userkey.New(e.Package, e.Username)
	if err != nil {
		return e, "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	e.Username = k.Username
	if e.JobID == "" || e.CreatedAt.IsZero() || e.UpdatedAt.IsZero() {
		return e, "", fmt.Errorf("%w: needs job id, created and updated time", ErrInvalid)
	}
	switch e.Status {
	case Pending, Applied, Superseded, Failed:
	default:
		return e, "", fmt.Errorf("%w: status %q", ErrInvalid, e.Status)
	}
	if len(e.Reason) > 1024 {
		e.Reason = e.Reason[:1024]
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, k.String(), nil
}

// jobKey orders a user's entries by the job's creation, the id breaking ties.
func jobKey(e Entry) string { return e.CreatedAt.Format(ddbitem.SortableTime) + "#" + e.JobID }

// statusKey orders one status's entries by their last change.
func statusKey(e Entry) string { return e.UpdatedAt.Format(ddbitem.SortableTime) + "#" + e.JobID }

func limitOrDefault(limit int) int {
	if limit <= 0 {
		return DefaultListLimit
	}
	return limit
}
