// Package journaltest is the conformance suite every journal.Store must
// pass, run against the in-memory fake and DynamoDB alike.
package journaltest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/journal"
)

// Run runs every case; newStore must return an empty store each call
// (counts and status lists span the whole store).
func Run(t *testing.T, newStore func(t *testing.T) journal.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s journal.Store)
	}{
		{"RecordAndListByUser", testRecordList},
		{"FinalStatusStands", testFinalStands},
		{"ByStatusAndCount", testByStatus},
		{"Purge", testPurge},
		{"Invalid", testInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func entry(user, job string, st journal.Status, at time.Time) journal.Entry {
	return journal.Entry{JobID: job, Type: "set_password", Package: "homechoice", Username: user, Version: 2,
		CreatedAt: t0, Status: st, UpdatedAt: at}
}

func record(t *testing.T, s journal.Store, e journal.Entry) {
	t.Helper()
	if err := s.Record(context.Background(), e); err != nil {
		t.Fatalf("record %+v: %v", e, err)
	}
}

func testRecordList(t *testing.T, s journal.Store) {
	ctx := context.Background()
	e := entry("Alice", "j1", journal.Pending, t0)
	record(t, s, e)
	later := entry("alice", "j2", journal.Pending, t0)
	later.CreatedAt = t0.Add(time.Second)
	record(t, s, later)
	failed := e
	failed.Status, failed.Reason, failed.UpdatedAt = journal.Failed, "keycloak unavailable", t0.Add(time.Minute)
	record(t, s, failed)
	got, err := s.ListByUser(ctx, "homechoice", "ALICE", 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("list: %+v %v", got, err)
	}
	if got[0].JobID != "j2" {
		t.Errorf("newest job first, got %s", got[0].JobID)
	}
	failed.Username = "alice"
	if fmt.Sprint(got[1]) != fmt.Sprint(failed) {
		t.Errorf("got  %+v\nwant %+v", got[1], failed)
	}
	if got, err := s.ListByUser(ctx, "homechoice", "nobody", 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("unknown user: %#v %v", got, err)
	}
}

func testFinalStands(t *testing.T, s journal.Store) {
	ctx := context.Background()
	record(t, s, entry("bob", "j1", journal.Pending, t0))
	record(t, s, entry("bob", "j1", journal.Applied, t0.Add(time.Second)))
	// A duplicate delivery must not rewrite history.
	for _, st := range []journal.Status{journal.Superseded, journal.Failed, journal.Pending} {
		record(t, s, entry("bob", "j1", st, t0.Add(time.Minute)))
	}
	got, _ := s.ListByUser(ctx, "homechoice", "bob", 0)
	if len(got) != 1 || got[0].Status != journal.Applied || !got[0].UpdatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("the first final status stands: %+v", got)
	}
}

func testByStatus(t *testing.T, s journal.Store) {
	ctx := context.Background()
	for i := range 5 {
		record(t, s, entry(fmt.Sprint("user", i), "p", journal.Pending, t0.Add(time.Duration(5-i)*time.Second)))
	}
	record(t, s, entry("user9", "a", journal.Applied, t0))
	if n, err := s.Count(ctx, journal.Pending); n != 5 || err != nil {
		t.Fatalf("count pending %d %v", n, err)
	}
	if n, _ := s.Count(ctx, journal.Failed); n != 0 {
		t.Fatalf("count failed %d", n)
	}
	var seen []string
	cursor := ""
	for range 10 {
		page, next, err := s.ListByStatus(ctx, journal.Pending, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.Username)
		}
		if cursor = next; next == "" {
			break
		}
	}
	if fmt.Sprint(seen) != "[user4 user3 user2 user1 user0]" {
		t.Fatalf("oldest status change first, all pages: %v", seen)
	}
}

func testPurge(t *testing.T, s journal.Store) {
	ctx := context.Background()
	record(t, s, entry("old1", "a", journal.Applied, t0.Add(-48*time.Hour)))
	record(t, s, entry("old2", "b", journal.Failed, t0.Add(-30*time.Hour)))
	record(t, s, entry("new", "c", journal.Pending, t0))
	n, err := s.Purge(ctx, t0.Add(-24*time.Hour), 0)
	if err != nil || n != 2 {
		t.Fatalf("purged %d %v", n, err)
	}
	if got, _ := s.ListByUser(ctx, "homechoice", "new", 0); len(got) != 1 {
		t.Fatal("a recent entry was purged")
	}
	if got, _ := s.ListByUser(ctx, "homechoice", "old1", 0); len(got) != 0 {
		t.Fatal("an old entry survived")
	}
	record(t, s, entry("old3", "d", journal.Applied, t0.Add(-48*time.Hour)))
	record(t, s, entry("old4", "e", journal.Applied, t0.Add(-48*time.Hour)))
	if n, _ := s.Purge(ctx, t0, 1); n != 1 {
		t.Fatalf("a limited purge deletes at most limit, got %d", n)
	}
}

func testInvalid(t *testing.T, s journal.Store) {
	for name, e := range map[string]journal.Entry{
		"no job id":   entry("x", "", journal.Pending, t0),
		"no username": entry("", "j", journal.Pending, t0),
		"bad status":  entry("x", "j", "lost", t0),
		"no time":     entry("x", "j", journal.Pending, time.Time{}),
	} {
		if err := s.Record(context.Background(), e); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
