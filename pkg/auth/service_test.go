package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// --- fakes -------------------------------------------------------------------

type fakeBreaker struct{ open bool }

func (b *fakeBreaker) Allow(context.Context) (func(error), error) {
	if b.open {
		return nil, breaker.ErrOpen
	}
	return func(error) {}, nil
}

type fakeTokens struct {
	byKey     map[userkey.Key]keycloak.Token
	forgotten []userkey.Key
}

func (f *fakeTokens) Forget(_ context.Context, k userkey.Key) error {
	delete(f.byKey, k)
	f.forgotten = append(f.forgotten, k)
	return nil
}

func (f *fakeTokens) Get(_ context.Context, k userkey.Key, _ time.Time) (keycloak.Token, bool, error) {
	t, ok := f.byKey[k]
	return t, ok, nil
}

type fakeSync struct {
	result     syncjob.Result
	dispatched []syncjob.Job
	enqueued   []syncjob.Job
}

func (f *fakeSync) Dispatch(_ context.Context, j syncjob.Job) syncjob.Result {
	f.dispatched = append(f.dispatched, j)
	return f.result
}

func (f *fakeSync) Enqueue(_ context.Context, j syncjob.Job) error {
	f.enqueued = append(f.enqueued, j)
	return nil
}

type fakeSessions struct{ revoked int }

func (f *fakeSessions) RevokeAllForUser(context.Context, string, string, time.Time) (int, error) {
	f.revoked++
	return 2, nil
}

// memRecorder is the memory login record (loginrecord.Stores over the
// harness's user store and in-memory sessions, token cache and trail; the
// loginrecordtest suite holds it to the DynamoDB login record) remembering
// what the service handed it.
type memRecorder struct {
	loginrecord.Stores
	mu        sync.Mutex
	successes []loginrecord.Success
	failures  []loginrecord.Failure
	audits    []audit.Event
}

func newMemRecorder(u *users.Memory) *memRecorder {
	return &memRecorder{Stores: loginrecord.Stores{Users: u, Sessions: sessions.NewMemory(),
		Tokens: tokencache.NewMemory(), Trail: audit.NewMemory()}}
}

func (l *memRecorder) LoginSucceeded(ctx context.Context, s loginrecord.Success) (string, sessions.Record, error) {
	l.mu.Lock()
	l.successes = append(l.successes, s)
	l.audits = append(l.audits, s.Event)
	l.mu.Unlock()
	return l.Stores.LoginSucceeded(ctx, s)
}

func (l *memRecorder) LoginFailed(ctx context.Context, f loginrecord.Failure) error {
	l.mu.Lock()
	l.failures = append(l.failures, f)
	l.audits = append(l.audits, f.Event)
	l.mu.Unlock()
	return l.Stores.LoginFailed(ctx, f)
}

func (l *memRecorder) Audit(ctx context.Context, e audit.Event) error {
	l.mu.Lock()
	l.audits = append(l.audits, e)
	l.mu.Unlock()
	return l.Stores.Audit(ctx, e)
}

type brokenUsers struct{ Users }

func (brokenUsers) Lookup(context.Context, userkey.Key, time.Time) (users.Entry, error) {
	return users.Entry{}, errors.New("dynamodb: connection refused")
}

// --- harness -------------------------------------------------------------------

const pkg = "homechoice"

type harness struct {
	svc      *Service
	users    *users.Memory
	kc       *keycloaktest.Fake
	breaker  *fakeBreaker
	tokens   *fakeTokens
	sync     *fakeSync
	sessions *fakeSessions
	recorder *memRecorder
	hasher   *credential.Hasher
	now      time.Time
}

// cheap hashing keeps the table fast; cost does not change the flow.
var testParams = credential.Params{Algorithm: credential.Argon2, Iterations: 1, Argon2MemoryKiB: 64}

func newHarness(t *testing.T, mutate ...func(*Deps, *Settings)) *harness {
	t.Helper()
	h := &harness{
		users: users.NewMemory(), kc: keycloaktest.New(), breaker: &fakeBreaker{},
		tokens: &fakeTokens{byKey: map[userkey.Key]keycloak.Token{}}, sync: &fakeSync{result: syncjob.Applied},
		sessions: &fakeSessions{}, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
	}
	h.recorder = newMemRecorder(h.users)
	var err error
	if h.hasher, err = credential.NewHasher(testParams); err != nil {
		t.Fatal(err)
	}
	d := Deps{Users: h.users, Hasher: h.hasher, Policy: credential.Policy{}, Keycloak: h.kc, Breaker: h.breaker,
		Tokens: h.tokens, Recorder: h.recorder, Sessions: h.sessions, Sync: h.sync, Packages: []string{pkg}}
	s := Settings{AllowOfflineMode: true, RevokeOtherSessions: true, Now: func() time.Time { return h.now }}
	for _, m := range mutate {
		m(&d, &s)
	}
	if h.svc, err = New(d, s); err != nil {
		t.Fatal(err)
	}
	return h
}

// addUser creates the user locally and, when kcPassword is not empty, in the fake Keycloak.
func (h *harness) addUser(t *testing.T, name, password, kcPassword string) {
	t.Helper()
	hash, err := h.hasher.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	u, err := h.users.Create(context.Background(), users.User{Package: pkg, Username: name, Enabled: true,
		Hash: users.NewHash(hash)}, h.now)
	if err != nil {
		t.Fatal(err)
	}
	if kcPassword != "" {
		h.kc.AddUser(pkg, name, kcPassword)
		if _, err := h.users.MarkSynced(context.Background(), u.Key(), u.Version); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) login(user, password string) (LoginResult, error) {
	return h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: user, Password: password, SourceIP: "192.0.2.1"})
}

var outage = keycloak.NewError("password grant", pkg, keycloak.ErrUnavailable, 0, "connection refused")

// --- login ---------------------------------------------------------------------

func TestLoginModes(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(*harness)
		wantMode   Mode
		wantStatus KeycloakStatus
		wantToken  bool // a Keycloak token in the answer
		wantCached bool // a fresh token handed to the login record for caching
		kcCalls    int
	}{
		{"keycloak healthy", func(*harness) {}, ModeKeycloak, KeycloakAvailable, true, true, 1},
		{"keycloak down, cached token", func(h *harness) {
			h.kc.Fail(keycloaktest.PasswordGrant, outage, 1)
			h.tokens.byKey[userkey.Key{Package: pkg, Username: "alice"}] = keycloak.Token{AccessToken: "cached", ExpiresAt: h.now.Add(-time.Hour)}
		}, ModeCached, KeycloakUnavailable, true, false, 1},
		{"keycloak down, no cached token", func(h *harness) {
			h.kc.Fail(keycloaktest.PasswordGrant, outage, 1)
		}, ModeLocal, KeycloakUnavailable, false, false, 1},
		{"circuit open, cached token", func(h *harness) {
			h.breaker.open = true
			h.tokens.byKey[userkey.Key{Package: pkg, Username: "alice"}] = keycloak.Token{AccessToken: "cached"}
		}, ModeCached, KeycloakCircuitOpen, true, false, 0},
		{"circuit open, no cached token", func(h *harness) { h.breaker.open = true }, ModeLocal, KeycloakCircuitOpen, false, false, 0},
		{"keycloak rejects the client (not an outage)", func(h *harness) {
			h.kc.Fail(keycloaktest.PasswordGrant, keycloak.NewError("password grant", pkg, keycloak.ErrRejected, 401, "unauthorized_client"), 1)
		}, ModeLocal, KeycloakUnavailable, false, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addUser(t, "alice", "alice-password-1", "alice-password-1")
			tc.setup(h)
			res, err := h.login("Alice", "alice-password-1")
			if err != nil {
				t.Fatal(err)
			}
			if res.Mode != tc.wantMode || res.KeycloakStatus != tc.wantStatus || (res.Keycloak != nil) != tc.wantToken {
				t.Fatalf("got mode=%s status=%s token=%v", res.Mode, res.KeycloakStatus, res.Keycloak != nil)
			}
			if got := h.kc.Calls(keycloaktest.PasswordGrant); got != tc.kcCalls {
				t.Fatalf("keycloak password grants = %d, want %d", got, tc.kcCalls)
			}
			s := h.recorder.successes[0]
			if (s.Token != nil) != tc.wantCached {
				t.Fatalf("token cached = %v, want %v", s.Token != nil, tc.wantCached)
			}
			if tc.wantCached && !s.GraceUntil.Equal(h.now.Add(24*time.Hour)) {
				t.Fatalf("grace until %s", s.GraceUntil)
			}
			rec, err := h.recorder.Sessions.GetByToken(context.Background(), res.SessionToken, h.now)
			if err != nil || rec.Username != "alice" || rec.AuthMode != sessions.AuthMode(tc.wantMode) {
				t.Fatalf("session for the returned token: %+v %v", rec, err)
			}
			if string(s.Session.AuthMode) != string(tc.wantMode) || s.Event.AuthMode != string(tc.wantMode) || s.Event.Outcome != audit.OutcomeSuccess {
				t.Fatalf("session/audit mode %s/%s outcome %s", s.Session.AuthMode, s.Event.AuthMode, s.Event.Outcome)
			}
			if len(res.SessionToken) != 60 { // 256 bits base64url, ".", the 16-character user hint
				t.Fatalf("session token length %d", len(res.SessionToken))
			}
		})
	}
}

func TestLoginKeycloakDisabled(t *testing.T) {
	h := newHarness(t, func(d *Deps, _ *Settings) { d.Keycloak = nil })
	h.addUser(t, "alice", "alice-password-1", "")
	res, err := h.login("alice", "alice-password-1")
	if err != nil || res.Mode != ModeLocal || res.KeycloakStatus != KeycloakDisabled {
		t.Fatalf("%+v %v", res, err)
	}
}

// Drift by kcguard: a password changed through kcguard that Keycloak has
// not received yet. Keycloak still has the old one; the local store wins.
func TestCredentialDrift(t *testing.T) {
	h := newHarness(t)
	h.addUser(t, "alice", "old-keycloak-password", "old-keycloak-password")
	h.breaker.open = true // the change is made during an outage and queued
	h.sync.result = syncjob.Queued
	if _, err := h.change("alice", "old-keycloak-password", "new-local-password"); err != nil {
		t.Fatal(err)
	}
	h.breaker.open = false
	res, err := h.login("alice", "new-local-password")
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != ModeLocal || res.KeycloakStatus != KeycloakAvailable || res.Keycloak != nil {
		t.Fatalf("drift: local stays authoritative; got %+v", res)
	}
	u, _ := h.users.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"})
	if u.Version != 2 || !u.Unsynced() || u.HashStale || !u.Enabled {
		t.Fatalf("drift changes nothing locally: %+v", u)
	}
	if len(h.sync.enqueued) != 1 || h.sync.enqueued[0].Version != 2 || h.sync.enqueued[0].Type != syncjob.SetPassword ||
		h.sync.enqueued[0].Hash == nil {
		t.Fatalf("drift must queue the pending change again, with its hash: %+v", h.sync.enqueued)
	}
	if n := h.kc.Calls(keycloaktest.GetUser) + h.kc.Calls(keycloaktest.BruteForceStatus) + h.kc.Calls(keycloaktest.FindUser); n != 0 {
		t.Fatalf("a pending kcguard change explains the refusal; %d admin calls made", n)
	}
}

func TestLoginFailures(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*Deps, *Settings)
		setup   func(*harness)
		user    string
		pw      string
		pkgName string
		want    error
	}{
		{"wrong password", nil, nil, "alice", "wrong-password", pkg, ErrInvalidCredentials},
		{"unknown user", nil, nil, "mallory", "whatever-password", pkg, ErrInvalidCredentials},
		{"unknown package", nil, nil, "alice", "alice-password-1", "nope", ErrUnknownPackage},
		{"disabled user", nil, func(h *harness) {
			u, _ := h.users.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"})
			h.users.UpdateProfile(context.Background(), u.Key(), u.Version, users.Profile{Enabled: false}, h.now)
		}, "alice", "alice-password-1", pkg, ErrInvalidCredentials},
		{"offline mode off, keycloak down", func(_ *Deps, s *Settings) { s.AllowOfflineMode = false }, func(h *harness) {
			h.breaker.open = true
		}, "alice", "alice-password-1", pkg, ErrOfflineDisabled},
		{"local store down", func(d *Deps, _ *Settings) { d.Users = brokenUsers{} }, nil, "alice", "alice-password-1", pkg, ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m []func(*Deps, *Settings)
			if tc.mutate != nil {
				m = append(m, tc.mutate)
			}
			h := newHarness(t, m...)
			h.addUser(t, "alice", "alice-password-1", "alice-password-1")
			if tc.setup != nil {
				tc.setup(h)
			}
			_, err := h.svc.Login(context.Background(), LoginInput{Package: tc.pkgName, Username: tc.user, Password: tc.pw})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, ErrInvalidCredentials) && h.kc.Calls(keycloaktest.PasswordGrant) != 0 {
				t.Fatal("a password the local store refused must never reach Keycloak")
			}
		})
	}
}

func TestWrongPasswordsNeverReachKeycloak(t *testing.T) {
	h := newHarness(t)
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	for i := 0; i < 4; i++ {
		h.login("alice", "guess-"+string(rune('a'+i)))
	}
	h.login("ghost", "guess")
	if n := h.kc.Calls(keycloaktest.PasswordGrant); n != 0 {
		t.Fatalf("%d refused passwords reached Keycloak", n)
	}
}

func TestParallelKeycloakLetsAtMostOneWrongPasswordThrough(t *testing.T) {
	h := newHarness(t, func(_ *Deps, s *Settings) { s.ParallelKeycloak = true })
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	for i := 0; i < 4; i++ {
		h.login("alice", "guess-"+string(rune('a'+i)))
	}
	if n := h.kc.Calls(keycloaktest.PasswordGrant); n > 1 {
		t.Fatalf("%d wrong passwords reached Keycloak; at most the first (speculative) one may", n)
	}
	h.login("ghost", "guess")
	if n := h.kc.Calls(keycloaktest.PasswordGrant); n > 1 {
		t.Fatal("an unknown username must never reach Keycloak")
	}
	// After a failure the checks run in sequence: the next good login
	// reaches Keycloak only after the local check.
	res, err := h.login("alice", "alice-password-1")
	if err != nil || res.Mode != ModeKeycloak {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestOfflineModeOffStillAllowsCachedTokens(t *testing.T) {
	h := newHarness(t, func(_ *Deps, s *Settings) { s.AllowOfflineMode = false })
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	h.breaker.open = true
	h.tokens.byKey[userkey.Key{Package: pkg, Username: "alice"}] = keycloak.Token{AccessToken: "cached"}
	res, err := h.login("alice", "alice-password-1")
	if err != nil || res.Mode != ModeCached {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestLockoutGrowsAndResets(t *testing.T) {
	h := newHarness(t)
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	for i := 1; i <= 4; i++ {
		if _, err := h.login("alice", "nope"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The fifth failure reaches max_failures: 30 s; the correct password is refused meanwhile.
	h.login("alice", "nope")
	_, err := h.login("alice", "alice-password-1")
	var locked *LockedError
	if !errors.As(err, &locked) || locked.RetryAfter != 30*time.Second {
		t.Fatalf("want locked for 30s, got %v", err)
	}
	if h.kc.Calls(keycloaktest.PasswordGrant) != 0 {
		t.Fatal("refused and locked attempts must not reach Keycloak")
	}
	h.now = h.now.Add(31 * time.Second)
	h.login("alice", "nope") // sixth failure: 60 s
	_, err = h.login("alice", "alice-password-1")
	if !errors.As(err, &locked) || locked.RetryAfter != 60*time.Second {
		t.Fatalf("want the delay to grow to 60s, got %v", err)
	}
	h.now = h.now.Add(61 * time.Second)
	if _, err := h.login("alice", "alice-password-1"); err != nil {
		t.Fatalf("after the delay the right password works: %v", err)
	}
	lo, _ := h.users.Lockout(context.Background(), userkey.Key{Package: pkg, Username: "alice"}, h.now)
	if lo.FailedAttempts != 0 {
		t.Fatalf("success must reset the counter, have %d", lo.FailedAttempts)
	}
}

func TestUnknownUsersLockLikeKnownOnes(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.login("ghost", "nope")
	}
	_, err := h.login("ghost", "nope")
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("an unknown username must lock like a known one (no username probing), got %v", err)
	}
}

func TestAuditRecordsEveryAttempt(t *testing.T) {
	h := newHarness(t)
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	h.login("alice", "alice-password-1")
	h.login("alice", "nope")
	var got []string
	for _, e := range h.recorder.audits {
		got = append(got, string(e.Action)+":"+e.AuthMode+":"+string(e.Outcome))
	}
	if strings.Join(got, ",") != "login:keycloak:success,login::invalid_credentials" {
		t.Fatalf("audit trail %v", got)
	}
}

// --- password change -----------------------------------------------------------

func (h *harness) change(user, old, new string) (PasswordChangeResult, error) {
	return h.svc.ChangePassword(context.Background(), PasswordChangeInput{Package: pkg, Username: user, OldPassword: old, NewPassword: new})
}

func TestPasswordChange(t *testing.T) {
	for _, result := range []syncjob.Result{syncjob.Applied, syncjob.Queued} {
		t.Run(string(result), func(t *testing.T) {
			h := newHarness(t)
			h.sync.result = result
			h.addUser(t, "alice", "alice-password-1", "alice-password-1")
			res, err := h.change("alice", "alice-password-1", "a-brand-new-password")
			if err != nil {
				t.Fatal(err)
			}
			if res.Sync != string(result) || res.Synced != (result == syncjob.Applied) {
				t.Fatalf("%+v", res)
			}
			j := h.sync.dispatched[0]
			if j.Type != syncjob.SetPassword || j.Version != 2 || j.Hash == nil {
				t.Fatalf("job %+v", j)
			}
			if ok, _ := credential.Verify(*j.Hash, "a-brand-new-password"); !ok {
				t.Fatal("the job must carry the new hash")
			}
			if _, err := h.login("alice", "alice-password-1"); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatal("old password still works locally")
			}
			h.breaker.open = true
			if res, err := h.login("alice", "a-brand-new-password"); err != nil || res.Mode != ModeLocal {
				t.Fatalf("new password must work at once locally: %+v %v", res, err)
			}
			if h.sessions.revoked != 1 {
				t.Fatal("other sessions must be revoked")
			}
			if len(h.tokens.forgotten) != 1 || h.tokens.forgotten[0] != (userkey.Key{Package: pkg, Username: "alice"}) {
				t.Fatalf("cached keycloak token not deleted: %v", h.tokens.forgotten)
			}
			// The job carries the Keycloak logout, now or through the queue.
			if !j.EndSessions || len(h.sync.dispatched) != 1 || len(h.sync.enqueued) != 0 {
				t.Fatalf("keycloak logout not carried by the job: dispatched %+v, enqueued %+v", h.sync.dispatched, h.sync.enqueued)
			}
		})
	}
}

func TestPasswordChangeRefusals(t *testing.T) {
	var weak *WeakPasswordError
	cases := []struct {
		name, user, old, new string
		check                func(error) bool
	}{
		{"wrong old password", "alice", "nope", "a-brand-new-password", func(e error) bool { return errors.Is(e, ErrInvalidCredentials) }},
		{"too short", "alice", "alice-password-1", "short", func(e error) bool { return errors.As(e, &weak) && strings.Contains(weak.Reason, "12") }},
		{"equals username", "alice", "alice-password-1", "ALICE", func(e error) bool { return errors.As(e, &weak) }},
		{"same as before", "alice", "alice-password-1", "alice-password-1", func(e error) bool { return errors.As(e, &weak) }},
		{"unknown user", "bob", "whatever-pw", "a-brand-new-password", func(e error) bool { return errors.Is(e, ErrInvalidCredentials) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.addUser(t, "alice", "alice-password-1", "alice-password-1")
			_, err := h.change(tc.user, tc.old, tc.new)
			if !tc.check(err) {
				t.Fatalf("unexpected %v", err)
			}
			if len(h.sync.dispatched) != 0 {
				t.Fatal("a refused change must not sync")
			}
		})
	}
}

// racingUsers lets another change land between the read and the write.
type racingUsers struct {
	*users.Memory
	race func()
}

func (r racingUsers) UpdatePassword(ctx context.Context, k userkey.Key, v int64, h users.Hash, now time.Time) (users.User, error) {
	r.race()
	return r.Memory.UpdatePassword(ctx, k, v, h, now)
}

func TestConcurrentPasswordChangeConflicts(t *testing.T) {
	h := newHarness(t)
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	raced := false
	h.svc.users = racingUsers{Memory: h.users, race: func() {
		if raced {
			return
		}
		raced = true // the other request wins between our read and our write
		if _, err := h.change("alice", "alice-password-1", "the-other-new-password"); err != nil {
			t.Errorf("the first change: %v", err)
		}
	}}
	_, err := h.change("alice", "alice-password-1", "a-brand-new-password")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("the losing change must get ErrConflict, got %v", err)
	}
	if _, err := h.login("alice", "the-other-new-password"); err != nil {
		t.Fatalf("the winner's password must stand: %v", err)
	}
}
