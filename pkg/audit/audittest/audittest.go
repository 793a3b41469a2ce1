// Package audittest is the conformance suite every audit.Store must pass,
// run against the in-memory fake and DynamoDB alike.
package audittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
)

// Run runs every case. newStore may share a table: each case uses its own
// package name.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s audit.Store, pkg string)
	}{
		{"RecordList", testRecordList},
		{"NewestFirstWithLimit", testNewestFirst},
		{"SameInstantKeepsBoth", testSameInstant},
		{"ReplayIsIdempotent", testReplay},
		{"Invalid", testInvalid},
		{"ListByPackage", testListByPackage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			c.fn(t, newStore(t), "pkg-"+hex.EncodeToString(b))
		})
	}
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func event(pkg, user string, at time.Time) audit.Event {
	return audit.Event{
		Package: pkg, Username: user, Action: audit.ActionLogin, AuthMode: "local",
		Outcome: audit.OutcomeSuccess, SourceIP: "203.0.113.9", UserAgent: "ua/1", At: at, RequestID: "req-1",
	}
}

func record(t *testing.T, s audit.Store, e audit.Event) {
	t.Helper()
	if err := s.Record(context.Background(), e); err != nil {
		t.Fatalf("record: %v", err)
	}
}

func testRecordList(t *testing.T, s audit.Store, pkg string) {
	e := event(pkg, "Alice", t0.Add(123*time.Millisecond))
	record(t, s, e)
	record(t, s, event(pkg, "bob", t0))
	got, err := s.ListByUser(context.Background(), pkg, "ALICE", 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("list: %v, %v", got, err)
	}
	if got[0].ID == "" {
		t.Error("no event id assigned")
	}
	e.ID, e.Username = got[0].ID, "alice"
	if fmt.Sprint(got[0]) != fmt.Sprint(e) {
		t.Errorf("got  %+v\nwant %+v", got[0], e)
	}
	if got, _ := s.ListByUser(context.Background(), pkg, "nobody", 0); got == nil || len(got) != 0 {
		t.Errorf("unknown user: %#v, want empty slice", got)
	}
}

func testNewestFirst(t *testing.T, s audit.Store, pkg string) {
	for i := range 5 {
		e := event(pkg, "carol", t0.Add(time.Duration(i)*time.Minute))
		e.RequestID = fmt.Sprint("req-", i)
		record(t, s, e)
	}
	got, err := s.ListByUser(context.Background(), pkg, "carol", 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.RequestID)
	}
	if fmt.Sprint(ids) != "[req-4 req-3 req-2]" {
		t.Errorf("newest three: %v", ids)
	}
}

func testSameInstant(t *testing.T, s audit.Store, pkg string) {
	record(t, s, event(pkg, "dave", t0))
	record(t, s, event(pkg, "dave", t0))
	if got, _ := s.ListByUser(context.Background(), pkg, "dave", 0); len(got) != 2 {
		t.Errorf("two events at one instant: %d kept", len(got))
	}
}

func testReplay(t *testing.T, s audit.Store, pkg string) {
	e := event(pkg, "erin", t0)
	e.ID = "fixed-id"
	record(t, s, e)
	record(t, s, e)
	if got, _ := s.ListByUser(context.Background(), pkg, "erin", 0); len(got) != 1 {
		t.Errorf("replayed event stored %d times", len(got))
	}
}

func testInvalid(t *testing.T, s audit.Store, pkg string) {
	for i, e := range []audit.Event{
		{Package: pkg, Username: "", Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess, At: t0},
		{Package: "", Username: "x", Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess, At: t0},
		{Package: pkg, Username: "x", Outcome: audit.OutcomeSuccess, At: t0},
		{Package: pkg, Username: "x", Action: audit.ActionLogin, At: t0},
		{Package: pkg, Username: "x", Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess},
	} {
		if err := s.Record(context.Background(), e); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
}

// testListByPackage runs for stores that implement audit.PackageReader.
func testListByPackage(t *testing.T, s audit.Store, pkg string) {
	r, ok := s.(audit.PackageReader)
	if !ok {
		t.Skip("store does not implement audit.PackageReader")
	}
	ats := []time.Duration{-90 * time.Minute, -30 * time.Minute, 0, 59 * time.Minute, 2 * time.Hour}
	for i, d := range ats {
		record(t, s, event(pkg, fmt.Sprintf("user%d", i), t0.Add(d)))
	}
	record(t, s, event(pkg+"-other", "user9", t0))
	var got []time.Time
	err := r.ListByPackage(context.Background(), pkg, t0.Add(-90*time.Minute), t0.Add(2*time.Hour), func(e audit.Event) error {
		if e.Package != pkg {
			t.Errorf("event of package %s", e.Package)
		}
		got = append(got, e.At)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// From is inclusive, to exclusive; oldest first.
	want := []time.Time{t0.Add(-90 * time.Minute), t0.Add(-30 * time.Minute), t0, t0.Add(59 * time.Minute)}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	stop := errors.New("stop")
	if err := r.ListByPackage(context.Background(), pkg, t0.Add(-2*time.Hour), t0.Add(3*time.Hour), func(audit.Event) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("the callback's error must end the listing: %v", err)
	}
}
