package status_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/users"
)

func TestWaitingListsFailedThenPendingJobsAndUnsyncedUsers(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j := journal.NewMemory()
	for i, st := range []journal.Status{journal.Pending, journal.Failed, journal.Pending, journal.Applied} {
		if err := j.Record(ctx, journal.Entry{JobID: fmt.Sprint("job", i), Type: "set_password", Package: "homechoice",
			Username: fmt.Sprint("u", i), Version: 2, Status: st, CreatedAt: now, UpdatedAt: now.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	us := users.NewMemory()
	for _, u := range []struct {
		pkg, name string
		synced    bool
	}{{"homechoice", "a", false}, {"homechoice", "b", true}, {"janee", "c", false}, {"janee", "d", false}} {
		c, err := us.Create(ctx, users.User{Package: u.pkg, Username: u.name, Enabled: true}, now)
		if err != nil {
			t.Fatal(err)
		}
		if u.synced {
			if _, err := us.MarkSynced(ctx, c.Key(), c.Version); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := &status.Reader{Journal: j, Users: us, Packages: []string{"homechoice", "janee"}}
	w, err := r.Waiting(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Jobs) != 3 || w.Jobs[0].Status != string(journal.Failed) || w.Jobs[1].Status != string(journal.Pending) || w.JournalOff {
		t.Errorf("jobs = %+v (journal off %v), want the failed one, then the two pending, no applied", w.Jobs, w.JournalOff)
	}
	if len(w.Users) != 3 || w.Users[0].Username != "a" || w.Users[0].SyncedVersion != 0 || w.Users[0].Version != 1 {
		t.Errorf("users = %+v, want a, c and d (b is synced)", w.Users)
	}
	if w, _ := r.Waiting(ctx, 2); len(w.Users) != 2 || len(w.Jobs) != 3 {
		t.Errorf("limit 2: %d users, %d jobs; the limit is per job status and for users in all", len(w.Users), len(w.Jobs))
	}
	off := &status.Reader{Users: us, Packages: []string{"janee"}}
	if w, err := off.Waiting(ctx, 10); err != nil || !w.JournalOff || len(w.Jobs) != 0 || len(w.Users) != 2 {
		t.Errorf("journal off: %+v, %v", w, err)
	}
}
