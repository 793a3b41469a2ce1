// Package sessionstest is the conformance suite every sessions.Store must
// pass, run against the in-memory fake and DynamoDB alike.
package sessionstest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/sessions"
)

// IdleTimeout is the idle timeout the store under test must be built with
// (sessions.WithIdleTimeout), keeping the default one-minute touch interval.
const IdleTimeout = 30 * time.Minute

// Run runs every case; newStore must return an empty store each call
// (DeleteExpired works on the whole table).
func Run(t *testing.T, newStore func(t *testing.T) sessions.Store) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s sessions.Store)
	}{
		{"CreateGetByToken", testCreateGet},
		{"WrongTokens", testWrongTokens},
		{"CreateValidates", testCreateValidates},
		{"Expiry", testExpiry},
		{"TouchThrottledAndSliding", testTouch},
		{"Revoke", testRevoke},
		{"ListByUserNewestFirst", testList},
		{"RevokeAllForUser", testRevokeAll},
		{"RevokeAllBeatsLoginInFlight", testRevokeBeatsLogin},
		{"CapEvictsOldest", testCap},
		{"ForgedUserHint", testForgedHint},
		{"DeleteExpired", testDeleteExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func rec(user string, created time.Time) sessions.Record {
	return sessions.Record{
		Package: "homechoice", Username: user, AuthMode: sessions.AuthLocal,
		CreatedAt: created, ExpiresAt: created.Add(12 * time.Hour),
		SourceIP: "203.0.113.7", UserAgent: "kcguard-test/1.0",
	}
}

func create(t *testing.T, s sessions.Store, r sessions.Record) (string, sessions.Record) {
	t.Helper()
	tok, got, err := s.Create(context.Background(), r)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return tok, got
}

func same(t *testing.T, got, want sessions.Record) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("record differs\n got %+v\nwant %+v", got, want)
	}
}

func testCreateGet(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	tok, created := create(t, s, rec("Alice.HC", t0))
	random, hint, _ := strings.Cut(tok, ".")
	if b, err := base64.RawURLEncoding.DecodeString(random); err != nil || len(b) != 32 || len(hint) != 16 {
		t.Errorf("token %q is not 256 bits of base64url and a user hint", tok)
	}
	if created.ID == "" || created.ID == tok || len(created.ID) > 24 {
		t.Errorf("public id %q", created.ID)
	}
	want := rec("alice.hc", t0)
	want.ID, want.LastSeenAt, want.IdleExpiresAt, want.Seq = created.ID, t0, t0.Add(IdleTimeout), 1
	same(t, created, want)

	got, err := s.GetByToken(ctx, tok, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, want)
	got, err = s.GetByID(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, want)

	tok2, second := create(t, s, rec("alice.hc", t0))
	if tok2 == tok || second.ID == created.ID {
		t.Error("two sessions share a token or id")
	}
	if second.Seq != 2 {
		t.Errorf("second session of the user has seq %d, want 2", second.Seq)
	}
}

func testWrongTokens(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	tok, _ := create(t, s, rec("bob", t0))
	other := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, bad := range []string{"", "garbage", tok + "x", tok[:len(tok)-1], other} {
		if _, err := s.GetByToken(ctx, bad, t0); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("token %q: %v, want ErrNotFound", bad, err)
		}
	}
	for _, id := range []string{"nope", "", strings.Repeat("a", 4096), "AAAAAAAAAAAAAAAA"} {
		if _, err := s.GetByID(ctx, id); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("GetByID %.20q: %v, want ErrNotFound", id, err)
		}
		if err := s.Revoke(ctx, id, t0); !errors.Is(err, sessions.ErrNotFound) {
			t.Errorf("Revoke %.20q: %v, want ErrNotFound", id, err)
		}
		if ok, err := s.Touch(ctx, id, t0); ok || err != nil {
			t.Errorf("Touch %.20q: %v %v", id, ok, err)
		}
	}
}

func testCreateValidates(t *testing.T, s sessions.Store) {
	bad := []sessions.Record{
		{Package: "homechoice", Username: "x", CreatedAt: t0},                               // no expiry
		{Package: "homechoice", Username: "x", CreatedAt: t0, ExpiresAt: t0},                // empty lifetime
		{Package: "", Username: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},           // no package
		{Package: "homechoice", Username: " ", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, // no user
	}
	for i, r := range bad {
		if _, _, err := s.Create(context.Background(), r); !errors.Is(err, sessions.ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i, err)
		}
	}
}

func testExpiry(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	r := rec("carol", t0)
	r.ExpiresAt = t0.Add(time.Hour)
	tok, _ := create(t, s, r)
	for _, c := range []struct {
		at   time.Time
		want error
	}{
		{t0.Add(IdleTimeout - time.Second), nil},
		{t0.Add(IdleTimeout), sessions.ErrExpired}, // idle
	} {
		if _, err := s.GetByToken(ctx, tok, c.at); !errors.Is(err, c.want) {
			t.Errorf("at +%v: %v, want %v", c.at.Sub(t0), err, c.want)
		}
	}
	// Without an idle limit only the absolute expiry counts.
	r.IdleExpiresAt = r.ExpiresAt.Add(time.Hour) // reported capped at ExpiresAt
	tok, created := create(t, s, r)
	if !created.IdleExpiresAt.Equal(r.ExpiresAt) {
		t.Errorf("idle expiry %v not capped at %v", created.IdleExpiresAt, r.ExpiresAt)
	}
	if _, err := s.GetByToken(ctx, tok, r.ExpiresAt.Add(-time.Second)); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	if _, err := s.GetByToken(ctx, tok, r.ExpiresAt); !errors.Is(err, sessions.ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
}

func testTouch(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	tok, created := create(t, s, rec("dave", t0))
	steps := []struct {
		name  string
		at    time.Duration
		wrote bool
	}{
		{"within a minute of creation", 30 * time.Second, false},
		{"after a minute", 61 * time.Second, true},
		{"again at once", 62 * time.Second, false},
		{"a minute later", 2*time.Minute + 2*time.Second, true},
	}
	for _, st := range steps {
		ok, err := s.Touch(ctx, created.ID, t0.Add(st.at))
		if err != nil || ok != st.wrote {
			t.Errorf("%s: wrote %v, %v; want %v", st.name, ok, err, st.wrote)
		}
	}
	last := t0.Add(2*time.Minute + 2*time.Second)
	got, err := s.GetByToken(ctx, tok, last.Add(IdleTimeout-time.Second))
	if err != nil {
		t.Fatalf("idle expiry did not slide: %v", err)
	}
	if !got.LastSeenAt.Equal(last) || !got.IdleExpiresAt.Equal(last.Add(IdleTimeout)) {
		t.Errorf("after touches: last seen %v, idle until %v", got.LastSeenAt, got.IdleExpiresAt)
	}
	// Idle-expired, revoked and unknown sessions are not revived.
	if ok, err := s.Touch(ctx, created.ID, last.Add(IdleTimeout)); ok || err != nil {
		t.Errorf("touch idle-expired: %v %v", ok, err)
	}
	if ok, err := s.Touch(ctx, "nope", last); ok || err != nil {
		t.Errorf("touch unknown: %v %v", ok, err)
	}
	_, other := create(t, s, rec("dave", t0))
	if err := s.Revoke(ctx, other.ID, t0); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Touch(ctx, other.ID, t0.Add(time.Hour/4)); ok || err != nil {
		t.Errorf("touch revoked: %v %v", ok, err)
	}
}

func testRevoke(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	tok, created := create(t, s, rec("erin", t0))
	t1 := t0.Add(time.Minute)
	if err := s.Revoke(ctx, created.ID, t1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetByToken(ctx, tok, t1); !errors.Is(err, sessions.ErrRevoked) {
		t.Errorf("revoked token: %v, want ErrRevoked", err)
	}
	if err := s.Revoke(ctx, created.ID, t1.Add(time.Minute)); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	got, err := s.GetByID(ctx, created.ID)
	if err != nil || !got.Revoked || !got.RevokedAt.Equal(t1) || got.Active(t1) {
		t.Errorf("revoked record: %+v, %v", got, err)
	}
	if err := s.Revoke(ctx, "nope", t1); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
}

func testList(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		_, r := create(t, s, rec("frank", t0.Add(time.Duration(i)*time.Minute)))
		ids = append(ids, r.ID)
	}
	create(t, s, rec("frankie", t0))
	other := rec("frank", t0)
	other.Package = "janee"
	create(t, s, other)

	list, err := s.ListByUser(ctx, "homechoice", "FRANK")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	want := []string{ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("list %v, want newest first %v", got, want)
	}
	if list, _ := s.ListByUser(ctx, "homechoice", "nobody"); len(list) != 0 {
		t.Errorf("unknown user: %v", list)
	}
}

func testRevokeAll(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	var toks []string
	for i := range 3 {
		tok, _ := create(t, s, rec("gina", t0.Add(time.Duration(i)*time.Second)))
		toks = append(toks, tok)
	}
	old := rec("gina", t0.Add(-24*time.Hour)) // already expired
	create(t, s, old)
	otherTok, _ := create(t, s, rec("hank", t0))

	now := t0.Add(time.Minute)
	n, err := s.RevokeAllForUser(ctx, "homechoice", "Gina", now)
	if err != nil || n != 3 {
		t.Fatalf("revoked %d, %v; want 3 live before", n, err)
	}
	for i, tok := range toks {
		if _, err := s.GetByToken(ctx, tok, now); !errors.Is(err, sessions.ErrRevoked) {
			t.Errorf("session %d after revocation: %v, want ErrRevoked", i, err)
		}
	}
	if n, _ := s.RevokeAllForUser(ctx, "homechoice", "gina", now); n != 0 {
		t.Errorf("second revocation found %d live", n)
	}
	// An older revocation time never lowers the line.
	if _, err := s.RevokeAllForUser(ctx, "homechoice", "gina", t0); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListByUser(ctx, "homechoice", "gina")
	for _, r := range list {
		if r.Active(now) || !r.Revoked {
			t.Errorf("session %s listed active after revocation: %+v", r.ID, r)
		}
	}
	if got, err := s.GetByID(ctx, list[0].ID); err != nil || !got.Revoked || !got.RevokedAt.Equal(now) {
		t.Errorf("GetByID after revocation: %+v %v", got, err)
	}
	if _, err := s.GetByToken(ctx, otherTok, now); err != nil {
		t.Errorf("another user's session: %v", err)
	}
	// A login after the revocation gets a live session.
	tok, _ := create(t, s, rec("gina", now.Add(time.Millisecond)))
	if _, err := s.GetByToken(ctx, tok, now.Add(time.Second)); err != nil {
		t.Errorf("session created after the revocation: %v", err)
	}
}

// testRevokeBeatsLogin: a login that began before a revocation and stores
// its session after it is refused, so no session of the old state survives.
func testRevokeBeatsLogin(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	began := t0
	if _, err := s.RevokeAllForUser(ctx, "homechoice", "ivy", began.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{began, began.Add(time.Millisecond)} {
		if _, _, err := s.Create(ctx, rec("ivy", at)); !errors.Is(err, sessions.ErrSuperseded) {
			t.Errorf("login begun at %v, revoked at +1ms: %v, want ErrSuperseded", at, err)
		}
	}
	if list, _ := s.ListByUser(ctx, "homechoice", "ivy"); len(list) != 0 {
		t.Errorf("refused logins left sessions: %v", list)
	}
}

func testCap(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	n := sessions.DefaultMaxPerUser + 2
	toks := make([]string, n)
	for i := range n {
		toks[i], _ = create(t, s, rec("jack", t0.Add(time.Duration(i)*time.Second)))
	}
	now := t0.Add(time.Minute)
	for i, tok := range toks {
		_, err := s.GetByToken(ctx, tok, now)
		if evicted := i < 2; evicted != errors.Is(err, sessions.ErrRevoked) || !evicted && err != nil {
			t.Errorf("session %d of %d: %v (evicted: %v)", i+1, n, err, evicted)
		}
	}
	list, _ := s.ListByUser(ctx, "homechoice", "jack")
	live := 0
	for _, r := range list {
		if r.Active(now) {
			live++
		}
	}
	if len(list) != n || live != sessions.DefaultMaxPerUser {
		t.Errorf("listed %d sessions, %d live; want %d, %d", len(list), live, n, sessions.DefaultMaxPerUser)
	}
}

// testForgedHint: a token whose user hint was swapped for another user's
// must not read that user's state (and so escape its revocation).
func testForgedHint(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	tok, _ := create(t, s, rec("kate", t0))
	other, _ := create(t, s, rec("kim", t0))
	random, _, _ := strings.Cut(tok, ".")
	_, hint, _ := strings.Cut(other, ".")
	if _, err := s.GetByToken(ctx, random+"."+hint, t0); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("token with another user's hint: %v, want ErrNotFound", err)
	}
}

func testDeleteExpired(t *testing.T, s sessions.Store) {
	ctx := context.Background()
	now := t0.Add(24 * time.Hour)
	var expired []string
	for i, ago := range []time.Duration{30 * time.Hour, 5 * time.Hour, 90 * time.Minute, time.Second} {
		r := rec(fmt.Sprint("ivan", i), now.Add(-ago-time.Hour))
		r.ExpiresAt = now.Add(-ago)
		_, c := create(t, s, r)
		expired = append(expired, c.ID)
	}
	_, live := create(t, s, rec("ivan-live", now.Add(-time.Hour)))
	idleOnly := rec("ivan-idle", now.Add(-2*time.Hour)) // idle-expired, not yet at its absolute expiry
	_, idle := create(t, s, idleOnly)

	n, err := s.DeleteExpired(ctx, now, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch: %d, %v; want 2", n, err)
	}
	// Oldest first.
	for i, id := range expired {
		_, err := s.GetByID(ctx, id)
		if gone := errors.Is(err, sessions.ErrNotFound); gone != (i < 2) {
			t.Errorf("expired #%d gone=%v after first batch (%v)", i, gone, err)
		}
	}
	if n, err := s.DeleteExpired(ctx, now, 0); err != nil || n != 2 {
		t.Errorf("second batch: %d, %v; want 2", n, err)
	}
	if n, _ := s.DeleteExpired(ctx, now, 0); n != 0 {
		t.Errorf("third batch: %d", n)
	}
	for _, id := range []string{live.ID, idle.ID} {
		if _, err := s.GetByID(ctx, id); err != nil {
			t.Errorf("session %s deleted before its absolute expiry: %v", id, err)
		}
	}
}
