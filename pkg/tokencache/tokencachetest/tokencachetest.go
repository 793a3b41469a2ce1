// Package tokencachetest is the conformance suite every tokencache.Store
// must pass, run against the in-memory fake and DynamoDB alike.
package tokencachetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/tokencache"
)

// Grace is the grace period the store under test must be built with
// (tokencache.WithGracePeriod), keeping the default lookback.
const Grace = 24 * time.Hour

// Run runs every case; newStore must return an empty store each call
// (ListExpiring and DeleteExpired work on the whole table).
func Run(t *testing.T, newStore func(t *testing.T) tokencache.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s tokencache.Store)
	}{
		{"PutGet", testPutGet},
		{"PutReplaces", testPutReplaces},
		{"GracePeriod", testGrace},
		{"Delete", testDelete},
		{"Invalid", testInvalid},
		{"ListExpiring", testListExpiring},
		{"DeleteExpired", testDeleteExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func rec(user string, cached time.Time) tokencache.Record {
	return tokencache.Record{
		Package: "homechoice", Username: user,
		AccessToken: "eyJ.access." + user, RefreshToken: "eyJ.refresh." + user, TokenType: "Bearer",
		AccessExpiresAt: cached.Add(5 * time.Minute), RefreshExpiresAt: cached.Add(30 * time.Minute),
		CachedAt: cached,
	}
}

func put(t *testing.T, s tokencache.Store, r tokencache.Record) {
	t.Helper()
	if err := s.Put(context.Background(), r); err != nil {
		t.Fatalf("put %s: %v", r.Username, err)
	}
}

func testPutGet(t *testing.T, s tokencache.Store) {
	put(t, s, rec("Alice.HC", t0))
	got, err := s.Get(context.Background(), "homechoice", "alice.hc", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := rec("alice.hc", t0)
	want.AccessToken, want.RefreshToken = "eyJ.access.Alice.HC", "eyJ.refresh.Alice.HC"
	want.GraceUntil = t0.Add(Grace)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := s.Get(context.Background(), "janee", "alice.hc", t0); !errors.Is(err, tokencache.ErrNotFound) {
		t.Errorf("other package: %v", err)
	}
}

func testPutReplaces(t *testing.T, s tokencache.Store) {
	put(t, s, rec("bob", t0))
	r := rec("bob", t0.Add(time.Hour))
	r.AccessToken = "newer"
	put(t, s, r)
	got, err := s.Get(context.Background(), "homechoice", "bob", t0.Add(Grace+time.Minute))
	if err != nil || got.AccessToken != "newer" || !got.GraceUntil.Equal(t0.Add(time.Hour+Grace)) {
		t.Errorf("after refresh: %+v, %v", got, err)
	}
}

func testGrace(t *testing.T, s tokencache.Store) {
	put(t, s, rec("carol", t0))
	explicit := rec("dave", t0)
	explicit.GraceUntil = t0.Add(2 * time.Hour)
	put(t, s, explicit)
	for _, c := range []struct {
		user string
		at   time.Time
		ok   bool
	}{
		{"carol", t0.Add(Grace - time.Second), true},
		{"carol", t0.Add(Grace), false},
		{"dave", t0.Add(2*time.Hour - time.Nanosecond), true},
		{"dave", t0.Add(2 * time.Hour), false},
	} {
		_, err := s.Get(context.Background(), "homechoice", c.user, c.at)
		if c.ok && err != nil || !c.ok && !errors.Is(err, tokencache.ErrNotFound) {
			t.Errorf("%s at +%v: %v (want usable=%v)", c.user, c.at.Sub(t0), err, c.ok)
		}
	}
}

func testDelete(t *testing.T, s tokencache.Store) {
	ctx := context.Background()
	put(t, s, rec("erin", t0))
	for range 2 { // deleting twice is fine
		if err := s.Delete(ctx, "homechoice", "ERIN"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "homechoice", "erin", t0); !errors.Is(err, tokencache.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func testInvalid(t *testing.T, s tokencache.Store) {
	for i, r := range []tokencache.Record{
		{Package: "homechoice", Username: "x", CachedAt: t0},                  // no token
		{Package: "homechoice", Username: "x", AccessToken: "a"},              // no CachedAt
		{Package: "", Username: "x", AccessToken: "a", CachedAt: t0},          // no package
		{Package: "homechoice", Username: "", AccessToken: "a", CachedAt: t0}, // no user
	} {
		if err := s.Put(context.Background(), r); !errors.Is(err, tokencache.ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
}

func testListExpiring(t *testing.T, s tokencache.Store) {
	now := t0.Add(10 * time.Hour)
	// Access tokens expiring: 3h ago, 1m ago, in 2m, in 4m, in 1h.
	offsets := []time.Duration{-3 * time.Hour, -time.Minute, 2 * time.Minute, 4 * time.Minute, time.Hour}
	for i, off := range offsets {
		r := rec(fmt.Sprint("user", i), now.Add(-time.Hour))
		r.AccessExpiresAt = now.Add(off)
		put(t, s, r)
	}
	list, err := s.ListExpiring(context.Background(), now.Add(5*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.Username)
		if r.RefreshToken == "" {
			t.Errorf("%s listed without its refresh token", r.Username)
		}
	}
	if fmt.Sprint(got) != "[user0 user1 user2 user3]" {
		t.Errorf("expiring %v, want user0..user3 soonest first", got)
	}
	if list, _ := s.ListExpiring(context.Background(), now.Add(5*time.Minute), 2); len(list) != 2 || list[0].Username != "user0" {
		t.Errorf("limited list: %v", list)
	}
}

func testDeleteExpired(t *testing.T, s tokencache.Store) {
	ctx := context.Background()
	now := t0.Add(72 * time.Hour)
	// Grace ended 20h, 2h and 1s ago; one still usable.
	for i, ago := range []time.Duration{20 * time.Hour, 2 * time.Hour, time.Second, -time.Hour} {
		r := rec(fmt.Sprint("old", i), now.Add(-ago-Grace))
		put(t, s, r)
	}
	n, err := s.DeleteExpired(ctx, now, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch %d, %v; want 2", n, err)
	}
	if _, err := s.Get(ctx, "homechoice", "old2", now.Add(-2*time.Second)); err != nil {
		t.Errorf("newest expired entry went first: %v", err)
	}
	if n, err := s.DeleteExpired(ctx, now, 0); err != nil || n != 1 {
		t.Errorf("second batch %d, %v; want 1", n, err)
	}
	if _, err := s.Get(ctx, "homechoice", "old3", now); err != nil {
		t.Errorf("usable entry deleted: %v", err)
	}
	for i := range 3 {
		if _, err := s.Get(ctx, "homechoice", fmt.Sprint("old", i), now.Add(-Grace*2)); !errors.Is(err, tokencache.ErrNotFound) {
			t.Errorf("old%d still there: %v", i, err)
		}
	}
}
