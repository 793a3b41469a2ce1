// Package loginrecordtest is the conformance suite every login record must
// pass: what one login writes (the session, the audit event, the cached
// token, the attempt's release, Keycloak's verdict on the user, the session
// cap), what a failed one writes, the first-attempt reservation, and the
// logins that must write nothing. It runs against the memory login record
// (loginrecord.Stores over the in-memory stores) and the DynamoDB login
// record alike, so the fake the auth tests use cannot drift from what
// production writes.
package loginrecordtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Recorder is what a login record under test offers: auth.Recorder and
// auth.FirstReserver.
type Recorder interface {
	LoginSucceeded(ctx context.Context, s loginrecord.Success) (string, sessions.Record, error)
	LoginFailed(ctx context.Context, f loginrecord.Failure) error
	Audit(ctx context.Context, e audit.Event) error
	ReserveFirst(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.FirstAttempt, error)
}

// Reader is auth.LoginReader, which a login record may offer (Dynamo does).
type Reader interface {
	ReadLogin(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.Read, error)
}

// Backend is a login record over empty stores, and the stores, to look.
type Backend struct {
	Recorder Recorder
	Users    users.Store
	Sessions sessions.Store // with the default session cap
	Tokens   tokencache.Store
	Audit    audit.Store
	// Retried, when not nil, is a login record over the same stores whose
	// every write lands and is then sent again, the caller seeing the second
	// answer: an SDK retry after a lost answer, where a store ignores the
	// idempotency token (moto). Only where writes travel (DynamoDB).
	Retried Recorder
}

// Run runs every case that applies, each on a fresh backend: the ReadLogin
// cases when the login record is a Reader, the retry case when the backend has
// Retried.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	type tc struct {
		name string
		fn   func(t *testing.T, b Backend)
	}
	cases := []tc{
		{"SuccessWritesEverythingOnce", testSuccess},
		{"SuccessWithoutTokenOrRelease", testPlainSuccess},
		{"ReleaseKeepsAParallelLock", testKeptLock},
		{"SupersededByPasswordChangeWritesNothing", testSupersededByChange},
		{"SupersededByRevocationWritesNothing", testSupersededByRevocation},
		{"SessionCapEvictsOldest", testCap},
		{"FailureWritesLockSourceAndAudit", testFailure},
		{"AuditAlone", testAudit},
		{"ReserveFirst", testReserveFirst},
		{"ReserveFirstThrottledSource", testReserveFirstThrottled},
		{"ReserveFirstOnceAmongConcurrentAttempts", testReserveFirstConcurrent},
		{"CancelledContextWritesNothing", testCancelled},
	}
	first := newBackend(t)
	if _, ok := first.Recorder.(Reader); ok {
		cases = append(cases,
			tc{"ReadLogin", testReadLogin},
			tc{"ReadLoginSessionSeqKeepsTheCap", testReadLoginCap},
			tc{"ReadLoginThenRevocationSupersedes", testReadThenRevoke})
	}
	if first.Retried != nil {
		cases = append(cases, tc{"RetryOfALandedLoginIsTheLogin", testRetriedLanded})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := first
			if i > 0 {
				b = newBackend(t)
			}
			c.fn(t, b)
		})
	}
}

var (
	t0   = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ctx  = context.Background()
	user = userkey.Key{Package: "homechoice", Username: "record.user"}
	// source is a request source's id (a keyed hash of its address).
	source = "5f1c0ffee5f1c0ffee5f1c0ffee5f1c0"
)

// newUser stores the user the logins are for.
func newUser(t *testing.T, b Backend) users.User {
	t.Helper()
	u, err := b.Users.Create(ctx, users.User{Package: user.Package, Username: user.Username, Enabled: true,
		Hash: users.Hash{SecretData: `{"value":"c2VjcmV0","salt":"c2FsdA=="}`,
			CredentialData: `{"hashIterations":1,"algorithm":"argon2"}`}}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func reserve(t *testing.T, b Backend, at time.Time) users.Attempt {
	t.Helper()
	a, err := b.Users.Reserve(ctx, user, 5, at)
	if err != nil || !a.Admitted {
		t.Fatalf("reserve: %+v %v", a, err)
	}
	return a
}

// success is a local login of user at `at`, releasing its reservation.
func success(at time.Time) loginrecord.Success {
	return loginrecord.Success{
		Session: sessions.Record{Package: user.Package, Username: user.Username, AuthMode: sessions.AuthLocal,
			CreatedAt: at, IdleExpiresAt: at.Add(30 * time.Minute), ExpiresAt: at.Add(8 * time.Hour),
			SourceIP: "203.0.113.7", UserAgent: "loginrecordtest/1.0"},
		Event: audit.Event{Package: user.Package, Username: user.Username, Action: audit.ActionLogin,
			AuthMode: string(sessions.AuthLocal), Outcome: audit.OutcomeSuccess, SourceIP: "203.0.113.7", At: at},
		ResetLockout: true, Now: at,
	}
}

func lockout(t *testing.T, b Backend, at time.Time) users.Lockout {
	t.Helper()
	l, err := b.Users.Lockout(ctx, user, at)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func trail(t *testing.T, b Backend) []audit.Event {
	t.Helper()
	events, err := b.Audit.ListByUser(ctx, user.Package, user.Username, 0)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func liveSessions(t *testing.T, b Backend, at time.Time) int {
	t.Helper()
	list, err := b.Sessions.ListByUser(ctx, user.Package, user.Username)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range list {
		if s.Active(at) {
			n++
		}
	}
	return n
}

func cached(t *testing.T, b Backend, at time.Time) (tokencache.Record, bool) {
	t.Helper()
	rec, err := b.Tokens.Get(ctx, user.Package, user.Username, at)
	if errors.Is(err, tokencache.ErrNotFound) {
		return rec, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return rec, true
}

// nothingWritten checks that a refused login left no trace but its
// reservation (its caller releases it).
func nothingWritten(t *testing.T, b Backend, u users.User, at time.Time) {
	t.Helper()
	if n := liveSessions(t, b, at); n != 0 {
		t.Errorf("%d live sessions", n)
	}
	if events := trail(t, b); len(events) != 0 {
		t.Errorf("audit events %+v", events)
	}
	if _, ok := cached(t, b, at); ok {
		t.Error("a token was cached")
	}
	if l := lockout(t, b, at); l.FailedAttempts != 1 {
		t.Errorf("reservation: %d attempts counted, want it kept (1)", l.FailedAttempts)
	}
	got, err := b.Users.Get(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if !got.KeycloakConfirmedAt.Equal(u.KeycloakConfirmedAt) || got.KeycloakID != u.KeycloakID || got.HashStale != u.HashStale {
		t.Errorf("the verdict was applied: confirmed %v, id %q, stale %v", got.KeycloakConfirmedAt, got.KeycloakID, got.HashStale)
	}
}

func testSuccess(t *testing.T, b Backend) {
	u := newUser(t, b)
	if _, err := b.Users.ApplyVerdict(ctx, user, users.AnyVersion, users.Verdict{HashStale: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	reserve(t, b, t0)
	s := success(t0)
	s.Session.AuthMode, s.Event.AuthMode = sessions.AuthMode("keycloak"), "keycloak"
	s.Token = &keycloak.Token{AccessToken: "access-1", RefreshToken: "refresh-1", TokenType: "Bearer",
		ExpiresAt: t0.Add(5 * time.Minute), RefreshExpiresAt: t0.Add(30 * time.Minute)}
	s.GraceUntil = t0.Add(24 * time.Hour)
	// What a login through Keycloak confirms (auth's confirmation), and
	// that the stale hash is no longer stale.
	s.Verdict = &users.Verdict{ConfirmedAt: t0, KeycloakID: "kc-4711", HashStale: ptr(false), Enabled: ptr(true)}
	s.UserVersion = u.Version

	token, rec, err := b.Recorder.LoginSucceeded(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Sessions.GetByToken(ctx, token, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("the session answered is not stored: %v", err)
	}
	if got.ID != rec.ID || got.Package != user.Package || got.Username != user.Username ||
		got.AuthMode != "keycloak" || !got.ExpiresAt.Equal(s.Session.ExpiresAt) || got.SourceIP != "203.0.113.7" {
		t.Errorf("session %+v, answered %+v", got, rec)
	}
	if events := trail(t, b); len(events) != 1 || events[0].Outcome != audit.OutcomeSuccess ||
		events[0].AuthMode != "keycloak" || !events[0].At.Equal(t0) {
		t.Errorf("audit trail %+v, want the one login", events)
	}
	tok, ok := cached(t, b, t0.Add(time.Hour))
	if !ok || tok.AccessToken != "access-1" || tok.RefreshToken != "refresh-1" || !tok.GraceUntil.Equal(s.GraceUntil) ||
		!tok.AccessExpiresAt.Equal(s.Token.ExpiresAt) || !tok.CachedAt.Equal(t0) {
		t.Errorf("cached token %+v %v", tok, ok)
	}
	if l := lockout(t, b, t0); l.FailedAttempts != 0 {
		t.Errorf("the reservation was not released: %+v", l)
	}
	after, err := b.Users.Get(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if !after.KeycloakConfirmedAt.Equal(t0) || after.KeycloakID != "kc-4711" || after.HashStale || !after.Enabled {
		t.Errorf("verdict not recorded: confirmed %v, id %q, stale %v, enabled %v",
			after.KeycloakConfirmedAt, after.KeycloakID, after.HashStale, after.Enabled)
	}
	if after.Version != u.Version || after.KeycloakSyncedVersion != u.KeycloakSyncedVersion || after.Hash != u.Hash {
		t.Errorf("a verdict changed the user's version or hash: %+v", after)
	}
}

func testPlainSuccess(t *testing.T, b Backend) {
	u := newUser(t, b)
	reserve(t, b, t0)
	s := success(t0)
	s.ResetLockout = false
	token, _, err := b.Recorder.LoginSucceeded(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sessions.GetByToken(ctx, token, t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := cached(t, b, t0); ok {
		t.Error("a token was cached without one")
	}
	if l := lockout(t, b, t0); l.FailedAttempts != 1 {
		t.Errorf("released without ResetLockout: %+v", l)
	}
	if got, _ := b.Users.Get(ctx, user); !got.KeycloakConfirmedAt.Equal(u.KeycloakConfirmedAt) {
		t.Errorf("confirmed without a verdict: %v", got.KeycloakConfirmedAt)
	}
	if events := trail(t, b); len(events) != 1 {
		t.Errorf("audit trail %+v", events)
	}
}

// A failure elsewhere locked the key while this login's right password was
// being checked: the session is written, the lock stands.
func testKeptLock(t *testing.T, b Backend) {
	newUser(t, b)
	a := reserve(t, b, t0)
	reserve(t, b, t0)
	if err := b.Users.FailAttempt(ctx, user, a, t0.Add(time.Minute), t0); err != nil {
		t.Fatal(err)
	}
	token, _, err := b.Recorder.LoginSucceeded(ctx, success(t0))
	if err != nil {
		t.Fatalf("the lock must not refuse the session: %v", err)
	}
	if _, err := b.Sessions.GetByToken(ctx, token, t0); err != nil {
		t.Fatal(err)
	}
	if l := lockout(t, b, t0); !l.Locked(t0) || !l.LockedUntil.Equal(t0.Add(time.Minute)) {
		t.Errorf("a success lifted a parallel lock: %+v", l)
	}
	if events := trail(t, b); len(events) != 1 {
		t.Errorf("audit trail %+v", events)
	}
}

func testSupersededByChange(t *testing.T, b Backend) {
	u := newUser(t, b)
	reserve(t, b, t0)
	if _, err := b.Users.UpdatePassword(ctx, user, u.Version, users.Hash{SecretData: `{"value":"bmV3"}`,
		CredentialData: u.Hash.CredentialData}, t0); err != nil {
		t.Fatal(err)
	}
	s := success(t0)
	s.UserVersion = u.Version // checked against the old password
	s.Token = &keycloak.Token{AccessToken: "access-old", ExpiresAt: t0.Add(time.Minute)}
	s.GraceUntil = t0.Add(time.Hour)
	s.Verdict = &users.Verdict{ConfirmedAt: t0, KeycloakID: "kc-4711"}
	if _, _, err := b.Recorder.LoginSucceeded(ctx, s); !errors.Is(err, loginrecord.ErrSuperseded) {
		t.Fatalf("%v, want ErrSuperseded", err)
	}
	nothingWritten(t, b, u, t0)
}

func testSupersededByRevocation(t *testing.T, b Backend) {
	u := newUser(t, b)
	reserve(t, b, t0)
	// The user's sessions are revoked after the login began.
	if _, err := b.Sessions.RevokeAllForUser(ctx, user.Package, user.Username, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	s := success(t0)
	s.UserVersion = u.Version
	s.Token = &keycloak.Token{AccessToken: "access-revoked", ExpiresAt: t0.Add(time.Minute)}
	s.GraceUntil = t0.Add(time.Hour)
	if _, _, err := b.Recorder.LoginSucceeded(ctx, s); !errors.Is(err, loginrecord.ErrSuperseded) {
		t.Fatalf("%v, want ErrSuperseded", err)
	}
	nothingWritten(t, b, u, t0.Add(2*time.Second))
	// A login that begins after the revocation is not superseded by it.
	if _, _, err := b.Recorder.LoginSucceeded(ctx, success(t0.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
}

// login writes n successful logins a second apart from at and returns
// their tokens; seq, when set, gives each its Seq (the login's read).
func logins(t *testing.T, b Backend, n int, at time.Time, seq func(time.Time) int64) []string {
	t.Helper()
	var tokens []string
	for i := range n {
		s := success(at.Add(time.Duration(i) * time.Second))
		if seq != nil {
			s.Session.Seq = seq(s.Now)
		}
		token, _, err := b.Recorder.LoginSucceeded(ctx, s)
		if err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
		tokens = append(tokens, token)
	}
	return tokens
}

// capped checks that the oldest two of DefaultMaxPerUser + 2 sessions were
// evicted and the rest live.
func capped(t *testing.T, b Backend, tokens []string, at time.Time) {
	t.Helper()
	for i, tok := range tokens {
		_, err := b.Sessions.GetByToken(ctx, tok, at)
		if evicted := i < len(tokens)-sessions.DefaultMaxPerUser; evicted != errors.Is(err, sessions.ErrRevoked) || !evicted && err != nil {
			t.Errorf("session %d of %d: %v (evicted: %v)", i+1, len(tokens), err, evicted)
		}
	}
}

func testCap(t *testing.T, b Backend) {
	newUser(t, b)
	tokens := logins(t, b, sessions.DefaultMaxPerUser+2, t0, nil)
	capped(t, b, tokens, t0.Add(time.Minute))
}

func testFailure(t *testing.T, b Backend) {
	newUser(t, b)
	a := reserve(t, b, t0)
	f := loginrecord.Failure{Key: user, Attempt: a, LockedUntil: t0.Add(30 * time.Second),
		Source: source, SourceLockout: users.Lockout{FailedAttempts: 1, LastFailureAt: t0, LockedUntil: t0.Add(time.Minute)},
		Event: audit.Event{Package: user.Package, Username: user.Username, Action: audit.ActionLogin,
			Outcome: audit.OutcomeInvalidCredentials, At: t0}}
	if err := b.Recorder.LoginFailed(ctx, f); err != nil {
		t.Fatal(err)
	}
	if l := lockout(t, b, t0); l.FailedAttempts != 1 || !l.LockedUntil.Equal(f.LockedUntil) || !l.LastFailureAt.Equal(t0) {
		t.Errorf("user lockout %+v", l)
	}
	src, err := b.Users.SourceFailures(ctx, source, t0)
	if err != nil {
		t.Fatal(err)
	}
	if src.FailedAttempts != 1 || !src.LockedUntil.Equal(t0.Add(time.Minute)) {
		t.Errorf("source %+v", src)
	}
	if events := trail(t, b); len(events) != 1 || events[0].Outcome != audit.OutcomeInvalidCredentials {
		t.Errorf("audit trail %+v", events)
	}
	if n := liveSessions(t, b, t0); n != 0 {
		t.Errorf("%d sessions after a failure", n)
	}
	// Without a source only the user's counter and the trail change.
	b2 := lockout(t, b, t0.Add(time.Minute)) // the lock has run out
	a2 := reserve(t, b, t0.Add(time.Minute))
	f2 := f
	f2.Attempt, f2.LockedUntil, f2.Source, f2.Event.At = a2, time.Time{}, "", t0.Add(time.Minute)
	if err := b.Recorder.LoginFailed(ctx, f2); err != nil {
		t.Fatal(err)
	}
	if l := lockout(t, b, t0.Add(time.Minute)); l.FailedAttempts != b2.FailedAttempts+1 || l.Locked(t0.Add(time.Minute)) {
		t.Errorf("second failure: %+v, before %+v", l, b2)
	}
	if src, _ := b.Users.SourceFailures(ctx, source, t0.Add(time.Minute)); src.FailedAttempts != 1 {
		t.Errorf("a failure without a source counted against one: %+v", src)
	}
}

func testAudit(t *testing.T, b Backend) {
	e := audit.Event{Package: user.Package, Username: user.Username, Action: audit.ActionLogin,
		Outcome: audit.OutcomeThrottled, SourceIP: "203.0.113.9", At: t0}
	if err := b.Recorder.Audit(ctx, e); err != nil {
		t.Fatal(err)
	}
	if events := trail(t, b); len(events) != 1 || events[0].Outcome != audit.OutcomeThrottled || events[0].SourceIP != e.SourceIP {
		t.Errorf("audit trail %+v", events)
	}
	if n := liveSessions(t, b, t0); n != 0 {
		t.Errorf("%d sessions", n)
	}
}

func testReserveFirst(t *testing.T, b Backend) {
	newUser(t, b)
	first := func(at time.Time, want loginrecord.FirstAttempt, counted int) {
		t.Helper()
		got, err := b.Recorder.ReserveFirst(ctx, user, source, at)
		if err != nil || got != want {
			t.Fatalf("ReserveFirst: %v %v, want %v", got, err, want)
		}
		if l := lockout(t, b, at); l.FailedAttempts != counted {
			t.Fatalf("%d attempts counted, want %d", l.FailedAttempts, counted)
		}
	}
	first(t0, loginrecord.FirstReserved, 1)
	// The reservation is N = 1: the usual one counts past it.
	if a := reserve(t, b, t0); a.N != 2 {
		t.Fatalf("the usual reservation after the first is N = %d, want 2", a.N)
	}
	first(t0, loginrecord.FirstNotFirst, 2) // counts nothing
	// A login's release makes the next attempt a first one again.
	if _, _, err := b.Recorder.LoginSucceeded(ctx, success(t0)); err != nil {
		t.Fatal(err)
	}
	first(t0.Add(time.Second), loginrecord.FirstReserved, 1)
	// A locked key has attempts on record.
	if err := b.Users.FailAttempt(ctx, user, users.Attempt{Admitted: true, N: 1}, t0.Add(time.Hour), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	first(t0.Add(2*time.Second), loginrecord.FirstNotFirst, 1)
	// Without a source the key alone decides.
	other := userkey.Key{Package: user.Package, Username: "record.other"}
	if got, err := b.Recorder.ReserveFirst(ctx, other, "", t0); err != nil || got != loginrecord.FirstReserved {
		t.Fatalf("ReserveFirst without a source: %v %v", got, err)
	}
}

// Attempts racing for a key's first reservation: exactly one is the first,
// so a burst of guesses cannot each be admitted as attempt 1.
func testReserveFirstConcurrent(t *testing.T, b Backend) {
	newUser(t, b)
	const n = 8
	got := make(chan loginrecord.FirstAttempt, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f, err := b.Recorder.ReserveFirst(ctx, user, source, t0)
			if err != nil {
				t.Error(err)
			}
			got <- f
		}()
	}
	close(start)
	wg.Wait()
	close(got)
	reserved := 0
	for f := range got {
		switch f {
		case loginrecord.FirstReserved:
			reserved++
		case loginrecord.FirstNotFirst, loginrecord.FirstNotTried: // the usual reservation counts it
		default:
			t.Errorf("answer %v", f)
		}
	}
	if reserved != 1 {
		t.Errorf("%d of %d racing attempts reserved as the first, want 1", reserved, n)
	}
	if l := lockout(t, b, t0); l.FailedAttempts != 1 {
		t.Errorf("%d attempts counted, want 1", l.FailedAttempts)
	}
}

func testReserveFirstThrottled(t *testing.T, b Backend) {
	newUser(t, b)
	if err := b.Users.RecordSourceFailure(ctx, source, users.Lockout{FailedAttempts: 40, LastFailureAt: t0,
		LockedUntil: t0.Add(time.Minute)}, t0); err != nil {
		t.Fatal(err)
	}
	got, err := b.Recorder.ReserveFirst(ctx, user, source, t0)
	if err != nil || got != loginrecord.FirstSourceLocked {
		t.Fatalf("%v %v, want FirstSourceLocked", got, err)
	}
	if l := lockout(t, b, t0); l.FailedAttempts != 0 {
		t.Fatalf("a throttled source counted %d attempts against the user", l.FailedAttempts)
	}
	// Once the source's lock has run out the attempt is reserved.
	if got, err := b.Recorder.ReserveFirst(ctx, user, source, t0.Add(time.Minute)); err != nil || got != loginrecord.FirstReserved {
		t.Fatalf("after the source lock: %v %v", got, err)
	}
}

// A hung-up request's context must not be what the service writes its
// outcomes with (auth detaches it); a login record given one fails as the
// DynamoDB client does, writing nothing.
func testCancelled(t *testing.T, b Backend) {
	u := newUser(t, b)
	a := reserve(t, b, t0)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := b.Recorder.LoginSucceeded(cctx, success(t0)); err == nil {
		t.Error("LoginSucceeded with a cancelled context succeeded")
	}
	if err := b.Recorder.LoginFailed(cctx, loginrecord.Failure{Key: user, Attempt: a, LockedUntil: t0.Add(time.Minute),
		Event: audit.Event{Package: user.Package, Username: user.Username, Action: audit.ActionLogin,
			Outcome: audit.OutcomeInvalidCredentials, At: t0}}); err == nil {
		t.Error("LoginFailed with a cancelled context succeeded")
	}
	if err := b.Recorder.Audit(cctx, audit.Event{Package: user.Package, Username: user.Username,
		Action: audit.ActionLogin, Outcome: audit.OutcomeThrottled, At: t0}); err == nil {
		t.Error("Audit with a cancelled context succeeded")
	}
	nothingWritten(t, b, u, t0)
	if l := lockout(t, b, t0); l.Locked(t0) {
		t.Errorf("locked by a failure that was not written: %+v", l)
	}
}

func reader(b Backend) Reader { return b.Recorder.(Reader) }

func testReadLogin(t *testing.T, b Backend) {
	r := reader(b)
	read, err := r.ReadLogin(ctx, user, source, t0)
	if err != nil {
		t.Fatal(err)
	}
	if read.Entry.Found || read.NextSessionSeq != 1 {
		t.Fatalf("unknown user: %+v", read)
	}
	if _, ok, err := read.CachedToken(ctx); ok || err != nil {
		t.Fatalf("unknown user's token: %v %v", ok, err)
	}
	u := newUser(t, b)
	if err := b.Users.RecordSourceFailure(ctx, source, users.Lockout{FailedAttempts: 1, LastFailureAt: t0}, t0); err != nil {
		t.Fatal(err)
	}
	reserve(t, b, t0)
	s := success(t0)
	s.ResetLockout = false
	s.Token = &keycloak.Token{AccessToken: "access-read", TokenType: "Bearer", ExpiresAt: t0.Add(5 * time.Minute)}
	s.GraceUntil = t0.Add(time.Hour)
	if _, _, err := b.Recorder.LoginSucceeded(ctx, s); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	if read, err = r.ReadLogin(ctx, user, source, at); err != nil {
		t.Fatal(err)
	}
	if !read.Entry.Found || read.Entry.User.Version != u.Version || read.Entry.User.Hash != u.Hash {
		t.Errorf("user %+v", read.Entry)
	}
	if read.Entry.Lockout != (users.Lockout{}) {
		t.Errorf("the read reports the lockout (the reservation is its only authority): %+v", read.Entry.Lockout)
	}
	if read.Source.FailedAttempts != 1 {
		t.Errorf("source %+v", read.Source)
	}
	if read.NextSessionSeq != 2 {
		t.Errorf("next session seq %d after one session, want 2", read.NextSessionSeq)
	}
	tok, ok, err := read.CachedToken(ctx)
	if err != nil || !ok || tok.AccessToken != "access-read" || tok.ExpiresIn != 240 {
		t.Errorf("cached token %+v %v %v", tok, ok, err)
	}
	// Past the grace period the token is not offered.
	if read, err = r.ReadLogin(ctx, user, "", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := read.CachedToken(ctx); ok || err != nil {
		t.Errorf("token past its grace period: %v %v", ok, err)
	}
}

func testReadLoginCap(t *testing.T, b Backend) {
	r := reader(b)
	newUser(t, b)
	tokens := logins(t, b, sessions.DefaultMaxPerUser+2, t0, func(at time.Time) int64 {
		read, err := r.ReadLogin(ctx, user, "", at)
		if err != nil {
			t.Fatal(err)
		}
		return read.NextSessionSeq
	})
	capped(t, b, tokens, t0.Add(time.Minute))
}

// A revocation landing between a login's read and its write supersedes it.
func testReadThenRevoke(t *testing.T, b Backend) {
	r := reader(b)
	u := newUser(t, b)
	reserve(t, b, t0)
	read, err := r.ReadLogin(ctx, user, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sessions.RevokeAllForUser(ctx, user.Package, user.Username, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	s := success(t0)
	s.Session.Seq, s.UserVersion = read.NextSessionSeq, u.Version
	if _, _, err := b.Recorder.LoginSucceeded(ctx, s); !errors.Is(err, loginrecord.ErrSuperseded) {
		t.Fatalf("%v, want ErrSuperseded", err)
	}
	nothingWritten(t, b, u, t0.Add(2*time.Second))
}

// The SDK retried a login's write that had landed (its first answer was
// lost) and the store refused the retry: the login is recorded, with the
// session the first attempt stored.
func testRetriedLanded(t *testing.T, b Backend) {
	newUser(t, b)
	reserve(t, b, t0)
	for _, c := range []struct {
		name string
		s    loginrecord.Success
	}{
		{"with the release", success(t0)},
		{"without", func() loginrecord.Success { s := success(t0.Add(time.Second)); s.ResetLockout = false; return s }()},
	} {
		token, rec, err := b.Retried.LoginSucceeded(ctx, c.s)
		if err != nil {
			t.Fatalf("%s: a retried write that had landed must count as written: %v", c.name, err)
		}
		got, err := b.Sessions.GetByToken(ctx, token, t0.Add(time.Minute))
		if err != nil || got.ID != rec.ID {
			t.Fatalf("%s: the session answered is not the one stored: %+v %v", c.name, got, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
