package status

import (
	"context"
	"time"

	"github.com/kcguard/kcguard/pkg/journal"
)

// Waiting is what waits for Keycloak (`kcguard sync pending`): the failed
// and pending sync jobs of the journal, and the users whose local change
// Keycloak lacks (version above keycloak_synced_version), whether or not a
// job for it is still queued.
type Waiting struct {
	Jobs  []Job         `json:"jobs"`
	Users []WaitingUser `json:"users"`
	// JournalOff: tables.journal is empty, so Jobs cannot be listed.
	JournalOff bool `json:"-"`
}

// WaitingUser is one user whose change Keycloak has not received.
type WaitingUser struct {
	Package       string    `json:"package"`
	Username      string    `json:"username"`
	Version       int64     `json:"version"`
	SyncedVersion int64     `json:"keycloak_synced_version"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Waiting lists at most limit jobs of each status (failed first) and at
// most limit users, package by package.
func (r *Reader) Waiting(ctx context.Context, limit int) (Waiting, error) {
	w := Waiting{Jobs: []Job{}, Users: []WaitingUser{}, JournalOff: r.Journal == nil}
	if r.Journal != nil {
		for _, st := range []journal.Status{journal.Failed, journal.Pending} {
			list, _, err := r.Journal.ListByStatus(ctx, st, limit, "")
			if err != nil {
				return w, err
			}
			for _, j := range list {
				w.Jobs = append(w.Jobs, JobOf(j))
			}
		}
	}
	for _, pkg := range r.Packages {
		for cursor := ""; len(w.Users) < limit; {
			page, next, err := r.Users.ListUnsynced(ctx, pkg, min(100, limit-len(w.Users)), cursor)
			if err != nil {
				return w, err
			}
			for _, u := range page {
				w.Users = append(w.Users, WaitingUser{u.Package, u.Username, u.Version, u.KeycloakSyncedVersion, u.UpdatedAt})
			}
			if cursor = next; next == "" {
				break
			}
		}
	}
	return w, nil
}
