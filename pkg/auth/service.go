package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Defaults for Settings; the configuration's defaults (config.Default) are
// these, so a zero here and a key left out of the configuration agree.
const (
	DefaultMaxFailures       = 5
	DefaultFailureDelay      = 30 * time.Second
	DefaultMaxFailureDelay   = 15 * time.Minute
	DefaultSourceMaxFailures = 20
	DefaultSourceDelay       = 10 * time.Second
	DefaultSourceMaxDelay    = 15 * time.Minute
	DefaultSessionIdle       = 30 * time.Minute
	DefaultSessionLifetime   = 12 * time.Hour
	DefaultInspectTimeout    = 2 * time.Second
)

// Settings tune the flows. Zero values take the documented defaults.
type Settings struct {
	// AllowOfflineMode permits local-only logins while Keycloak is down and
	// no cached token is left (the original allow_offline_mode).
	AllowOfflineMode bool
	// GracePeriod is how long a cached Keycloak token may stand in for
	// Keycloak (token_grace_period_hours). Zero means tokencache.DefaultGracePeriod.
	GracePeriod time.Duration
	// MaxFailures failed local checks are free; from then on each failure
	// locks the key for FailureDelay × (failures − MaxFailures + 1), at most
	// MaxFailureDelay (Keycloak's wait increment, SSSD's
	// offline_failed_login_delay). Zero values mean DefaultMaxFailures,
	// DefaultFailureDelay and DefaultMaxFailureDelay.
	//
	// Each attempt is reserved atomically before its password is hashed
	// (users.Store.Reserve), so parallel guesses cannot outrun the count:
	// at most MaxFailures checks run before the first lock, then one per
	// lock that has run out.
	MaxFailures     int
	FailureDelay    time.Duration
	MaxFailureDelay time.Duration
	// SourceMaxFailures failed checks from one source (client address),
	// whatever usernames they named, are free; from then on each refuses
	// the source for SourceDelay × (failures − SourceMaxFailures + 1), at
	// most SourceMaxDelay, with 429 too_many_requests. A source spraying
	// many usernames is slowed before it can lock the users it names.
	// Zero values mean DefaultSourceMaxFailures, DefaultSourceDelay and
	// DefaultSourceMaxDelay; a negative SourceMaxFailures turns the source
	// throttle off.
	SourceMaxFailures int
	SourceDelay       time.Duration
	SourceMaxDelay    time.Duration
	// SessionIdle and SessionLifetime bound a session. Zero means
	// DefaultSessionIdle and DefaultSessionLifetime.
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// RevokeOtherSessions ends the user's sessions after a password change.
	RevokeOtherSessions bool
	// ParallelKeycloak starts the Keycloak grant alongside the local hash
	// check for a known, enabled user whose reservation is the only one on
	// record (no failed or concurrent attempt): the login then costs the
	// larger of the two, not their sum. The configuration turns it on by
	// default (keycloak.parallel_grant); the zero value here runs them in
	// sequence. A wrong password it lets through reaches Keycloak as it
	// would from any direct client, once: the failure it leaves on record
	// puts the user's next attempts back in sequence until a success, so
	// Keycloak never sees two of kcguard's wrong passwords in a row (its
	// quick-login check needs two failures within
	// quickLoginCheckMilliSeconds). Keycloak's answer to a password the
	// local check refused is never used.
	ParallelKeycloak bool
	// LearnOnLogin checks a username unknown to the local store against
	// Keycloak (when the breaker allows) and, on success, stores the user
	// with a hash of the verified password, so users who exist only in
	// Keycloak can log in and keep working through the next outage. Off by
	// default: it makes a wrong password for an unknown username take a
	// Keycloak round trip, which timing can tell from a known username's
	// local refusal (see README, "Keycloak is the authority").
	LearnOnLogin bool
	// OfflineWindow refuses local and cached logins during an outage to a
	// user whose KeycloakConfirmedAt is older than this (SSSD's
	// offline_credentials_expiration). Zero means no limit.
	OfflineWindow time.Duration
	// InspectTimeout bounds the admin calls that explain a refused grant.
	// Zero means DefaultInspectTimeout.
	InspectTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Sleep waits out the padding that makes every failed check cost the
	// same (see checkCosts). Nil means a timer that ends with ctx.
	Sleep func(ctx context.Context, d time.Duration)
}

func (s Settings) withDefaults() Settings {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&s.GracePeriod, tokencache.DefaultGracePeriod)
	defInt(&s.MaxFailures, DefaultMaxFailures)
	def(&s.FailureDelay, DefaultFailureDelay)
	def(&s.MaxFailureDelay, DefaultMaxFailureDelay)
	def(&s.SessionIdle, DefaultSessionIdle)
	def(&s.SessionLifetime, DefaultSessionLifetime)
	defInt(&s.SourceMaxFailures, DefaultSourceMaxFailures)
	def(&s.SourceDelay, DefaultSourceDelay)
	def(&s.SourceMaxDelay, DefaultSourceMaxDelay)
	def(&s.InspectTimeout, DefaultInspectTimeout)
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Sleep == nil {
		s.Sleep = sleep
	}
	return s
}

// lockedUntil is the lockout deadline after the n-th consecutive failure.
func (s Settings) lockedUntil(n int, now time.Time) time.Time {
	return growingDelay(n, s.MaxFailures, s.FailureDelay, s.MaxFailureDelay, now)
}

// sourceLockedUntil is the source's deadline after its n-th failure.
func (s Settings) sourceLockedUntil(n int, now time.Time) time.Time {
	if s.SourceMaxFailures < 0 {
		return time.Time{}
	}
	return growingDelay(n, s.SourceMaxFailures, s.SourceDelay, s.SourceMaxDelay, now)
}

func growingDelay(n, free int, step, most time.Duration, now time.Time) time.Time {
	if n < free {
		return time.Time{}
	}
	d := step * time.Duration(n-free+1)
	if d > most || d <= 0 {
		d = most
	}
	return now.Add(d)
}

// Service runs the login and password-change flows.
type Service struct {
	users    Users
	hasher   PasswordHasher
	policy   credential.Policy
	keycloak PasswordGranter // nil: the Keycloak tier is disabled
	accounts KeycloakAccounts
	breaker  Breaker
	tokens   TokenCache
	recorder Recorder
	sessions SessionRevoker
	sync     Sync
	reads    LoginReader
	first    FirstReserver // nil: every attempt is reserved after the read
	names    audit.Pseudonyms
	costs    *checkCosts
	packages map[string]bool
	s        Settings
	log      *slog.Logger
}

// Deps are the Service's collaborators.
type Deps struct {
	Users    Users
	Hasher   PasswordHasher
	Policy   credential.Policy
	Keycloak PasswordGranter // nil disables the Keycloak tier
	// Accounts explains refused grants; nil means Keycloak's, when it
	// offers them (the real client and the fake both do).
	Accounts KeycloakAccounts
	Breaker  Breaker
	Tokens   TokenCache
	Recorder Recorder
	Sessions SessionRevoker
	Sync     Sync
	// Reads, when set, reads a login's user, source counter and cached
	// token in one round trip; nil reads them through Users and Tokens.
	Reads LoginReader
	// UsernameKey keys the HMAC that stands in the audit trail for unknown
	// usernames (and names request sources); empty takes a random key.
	UsernameKey []byte
	// Packages are the known packages (tenants).
	Packages []string
	Log      *slog.Logger
}

// New builds the Service; it reports missing collaborators instead of
// failing later on a nil.
func New(d Deps, s Settings) (*Service, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"Users": d.Users != nil, "Hasher": d.Hasher != nil, "Breaker": d.Breaker != nil || d.Keycloak == nil,
		"Tokens": d.Tokens != nil, "Recorder": d.Recorder != nil, "Sessions": d.Sessions != nil, "Sync": d.Sync != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("auth: missing %v", missing)
	}
	svc := &Service{
		users: d.Users, hasher: d.Hasher, policy: d.Policy, keycloak: d.Keycloak, breaker: d.Breaker,
		tokens: d.Tokens, recorder: d.Recorder, sessions: d.Sessions, sync: d.Sync, reads: d.Reads,
		names: audit.NewPseudonyms(d.UsernameKey), costs: &checkCosts{},
		packages: map[string]bool{}, s: s.withDefaults(), log: d.Log, accounts: d.Accounts,
	}
	if a, ok := d.Keycloak.(KeycloakAccounts); ok && svc.accounts == nil {
		svc.accounts = a
	}
	if svc.reads == nil {
		svc.reads = storeReads{users: d.Users, tokens: d.Tokens}
	}
	svc.first, _ = svc.reads.(FirstReserver)
	if svc.log == nil {
		svc.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range d.Packages {
		svc.packages[p] = true
	}
	return svc, nil
}

// Login authenticates locally first, then asks Keycloak.
//
// A session is only ever issued after the local check passed, or after
// Keycloak alone accepted a user the local store cannot judge (authority.go:
// a user Keycloak refused last time, or an unknown username with
// LearnOnLogin). By default the tiers run in sequence, so for a known,
// healthy user a password the local store refuses never reaches Keycloak:
// an attacker guessing through kcguard cannot touch Keycloak's brute-force
// counters, and without LearnOnLogin unknown usernames never reach
// Keycloak at all. With Settings.ParallelKeycloak, a known, enabled user
// with no failed attempts on record has the grant started alongside the
// local hash check (latency is the larger of the two, not their sum); any
// failure on record switches the user back to sequence, so Keycloak sees at
// most one wrong password between two good logins. A speculative grant whose
// local check fails is cancelled and does not count for the breaker.
func (s *Service) Login(ctx context.Context, in LoginInput) (LoginResult, error) {
	now := s.s.Now()
	key, err := s.key(in.Package, in.Username)
	if err != nil {
		return LoginResult{}, err
	}
	source := s.sourceOf(in.SourceIP)
	read, first, err := s.readLogin(ctx, key, source, now)
	if err != nil {
		return LoginResult{}, fmt.Errorf("%w: lookup: %v", ErrUnavailable, err)
	}
	entry := read.Entry
	event := audit.Event{Package: key.Package, Username: s.auditName(key, entry), Action: audit.ActionLogin,
		SourceIP: in.SourceIP, UserAgent: in.UserAgent, RequestID: in.RequestID, At: now}
	a := users.Attempt{Admitted: true, N: 1}
	if first != loginrecord.FirstReserved {
		src := read.Source
		if first == loginrecord.FirstSourceLocked && !src.Locked(now) {
			// The read ran alongside the check and missed the lock; the
			// Retry-After comes from a fresh read.
			if src, err = s.users.SourceFailures(ctx, source, now); err != nil {
				return LoginResult{}, fmt.Errorf("%w: source: %v", ErrUnavailable, err)
			}
		}
		if a, err = s.admit(ctx, key, src, event, now); err != nil {
			return LoginResult{}, err
		}
	}
	var (
		early  <-chan grant
		cancel context.CancelFunc = func() {}
	)
	if s.s.ParallelKeycloak && s.keycloak != nil && entry.Found && !entry.User.KeycloakMustDecide() && a.N == 1 &&
		s.breakerClosed(ctx) {
		var gctx context.Context
		gctx, cancel = context.WithCancel(ctx)
		early = s.startGrant(gctx, key, in.Password)
	}
	defer cancel()
	hash, ok := s.check(ctx, entry, in.Password)
	if !ok {
		if early != nil {
			// Never leave the grant running past the request: a Lambda
			// instance is frozen between invocations.
			cancel()
			<-early
		}
		fail := func() error { return s.countFailure(ctx, key, a, source, read.Source, event, now) }
		if s.keycloakDecides(entry) {
			return s.loginThroughKeycloak(ctx, in, key, read, event, fail, now)
		}
		return LoginResult{}, fail()
	}
	var g *grant
	switch {
	case early != nil:
		v := <-early // bounded by the grant's own timeout
		g = &v
	case s.keycloak != nil:
		v := s.grant(ctx, key, in.Password)
		g = &v
	}
	tier, err := s.keycloakTier(ctx, entry, g, read.CachedToken, now)
	if errors.Is(err, errParallelLogin) {
		tier, err = s.retryParallel(ctx, key, entry, in.Password, read.CachedToken, now)
	}
	if err != nil {
		s.release(ctx, key, now)
		event.Outcome = outcomeOf(err)
		s.auditAlone(ctx, event)
		return LoginResult{}, err
	}
	res, err := s.succeed(ctx, in, key, event, tier, confirmation(entry.User, tier, now), entry.User.Version, read.NextSessionSeq, now)
	if err != nil {
		return res, err
	}
	if tier.drift {
		s.markDrift(ctx, entry.User, now)
	}
	if s.hasher.NeedsRehash(hash) {
		s.rehash(ctx, entry.User, in.Password, now)
	}
	return res, nil
}

// succeed writes a successful login (session, audit record, cached token,
// Keycloak's verdict and the attempt's release, in one login-record write) and
// answers.
//
// userVersion (when positive) is the user version the password was checked
// against: a password change landing meanwhile leaves no session.
func (s *Service) succeed(ctx context.Context, in LoginInput, key userkey.Key, event audit.Event, tier tierResult,
	verdict *users.Verdict, userVersion, nextSessionSeq int64, now time.Time) (LoginResult, error) {
	event.AuthMode, event.Outcome = string(tier.mode), audit.OutcomeSuccess
	success := loginrecord.Success{Event: event, ResetLockout: true, Now: now, Verdict: verdict, Session: sessions.Record{
		Package: key.Package, Username: key.Username, AuthMode: sessions.AuthMode(tier.mode),
		CreatedAt: now, IdleExpiresAt: now.Add(s.s.SessionIdle), ExpiresAt: now.Add(s.s.SessionLifetime),
		SourceIP: in.SourceIP, UserAgent: in.UserAgent,
	}}
	// The session's place among the user's sessions (the cap), when the
	// read found it; stores that count themselves (sessions.Memory)
	// overwrite it.
	success.Session.Seq = nextSessionSeq
	if tier.mode == ModeKeycloak {
		success.Token, success.GraceUntil = tier.token, now.Add(s.s.GracePeriod)
	}
	success.UserVersion = userVersion
	token, sess, err := s.recorder.LoginSucceeded(ctx, success)
	if errors.Is(err, loginrecord.ErrSuperseded) {
		s.log.InfoContext(ctx, "login superseded by a concurrent account change", "package", key.Package, "err", err)
		return LoginResult{}, ErrLoginSuperseded
	}
	if err != nil {
		s.release(ctx, key, now)
		return LoginResult{}, fmt.Errorf("%w: store session: %v", ErrUnavailable, err)
	}
	return LoginResult{
		SessionToken: token, ExpiresAt: sess.ExpiresAt, Mode: tier.mode,
		KeycloakStatus: tier.status, Keycloak: tier.token,
	}, nil
}

// key checks the package and normalises the username.
func (s *Service) key(pkg, username string) (userkey.Key, error) {
	if !s.packages[pkg] {
		return userkey.Key{}, ErrUnknownPackage
	}
	key, err := userkey.New(pkg, username)
	if err != nil {
		return key, ErrInvalidCredentials
	}
	return key, nil
}

// sourceOf is the counter id of a client address ("" when unknown: the
// source throttle then does not apply).
func (s *Service) sourceOf(addr string) string {
	if addr == "" || s.s.SourceMaxFailures < 0 {
		return ""
	}
	return s.names.Source(addr)
}

// auditName is the username the audit trail and logs keep: a known user's
// own, or a keyed hash of what was typed, which may be a password.
func (s *Service) auditName(key userkey.Key, entry users.Entry) string {
	if entry.Found {
		return key.Username
	}
	return s.names.Username(key.Package, key.Username)
}

// readLogin reads what the login needs and, when the store offers it,
// reserves the key's first attempt at the same time (FirstReserver): for a
// user without attempts on record the reservation then costs no round
// trip of its own. The source's throttle is checked atomically with that
// reservation, so a throttled source still counts nothing against the
// users it names.
func (s *Service) readLogin(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.Read, loginrecord.FirstAttempt, error) {
	if s.first == nil {
		read, err := s.reads.ReadLogin(ctx, key, source, now)
		return read, loginrecord.FirstNotTried, err
	}
	var (
		first    loginrecord.FirstAttempt
		firstErr error
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		first, firstErr = s.first.ReserveFirst(ctx, key, source, now)
	}()
	read, err := s.reads.ReadLogin(ctx, key, source, now)
	<-done
	if firstErr != nil {
		s.log.WarnContext(ctx, "first attempt not reserved; reserving the usual way", "package", key.Package, "err", firstErr)
		first = loginrecord.FirstNotTried
	}
	if err != nil && first == loginrecord.FirstReserved {
		s.release(ctx, key, now)
	}
	return read, first, err
}

// admit lets an attempt's password be checked: the source must not be
// throttled, then the attempt is reserved (counted) before any hashing.
// A refusal is audited and answered without a hash.
func (s *Service) admit(ctx context.Context, key userkey.Key, src users.Lockout, event audit.Event, now time.Time) (users.Attempt, error) {
	if src.Locked(now) {
		event.Outcome = audit.OutcomeThrottled
		s.auditAlone(ctx, event)
		return users.Attempt{}, &ThrottledError{RetryAfter: src.LockedUntil.Sub(now)}
	}
	a, err := s.users.Reserve(ctx, key, s.s.MaxFailures, now)
	if err != nil {
		return a, fmt.Errorf("%w: reserve attempt: %v", ErrUnavailable, err)
	}
	if !a.Admitted {
		return a, s.refuseLocked(ctx, a.LockedUntil, event, now)
	}
	return a, nil
}

// release gives back a reservation whose check passed when no session is
// written (the session's transaction releases it otherwise). Best effort:
// an unreleased count only brings the next lock closer.
func (s *Service) release(ctx context.Context, key userkey.Key, now time.Time) {
	ctx, cancel := outcomeContext(ctx)
	defer cancel()
	if _, err := s.users.Release(ctx, key, now); err != nil {
		s.log.WarnContext(ctx, "attempt not released", "package", key.Package, "err", err)
	}
}

// check verifies the password and pads a failure to the cost of the
// dearest check seen, so a failure's timing does not depend on the stored
// algorithm or on whether the user exists.
func (s *Service) check(ctx context.Context, entry users.Entry, password string) (credential.Hash, bool) {
	start := s.s.Now()
	hash, ok, kind := s.verify(entry, password)
	elapsed := s.s.Now().Sub(start)
	s.costs.observe(kind, elapsed)
	if !ok {
		if d := s.costs.padding(elapsed); d > 0 {
			s.s.Sleep(ctx, d)
		}
	}
	return hash, ok
}

// verify checks password against the stored hash in constant time. Unknown
// and hash-less users, and users Keycloak refused last time (disabled, reset,
// required actions), cost one dummy verification of the same price and fail
// the same way, so neither timing nor answer tells them apart.
// The third result is the check's cost class (see checkCosts).
func (s *Service) verify(entry users.Entry, password string) (credential.Hash, bool, string) {
	dummy := paramsKind(s.hasher.Params())
	if !entry.Found || entry.User.KeycloakMustDecide() {
		return credential.Hash{}, s.hasher.VerifyDummy(password), dummy
	}
	h, err := entry.User.Hash.Verifier()
	if err != nil {
		s.log.Error("stored hash unreadable", "package", entry.User.Package, "username", entry.User.Username, "err", err)
		return h, s.hasher.VerifyDummy(password), dummy
	}
	ok, err := s.hasher.Verify(h, password)
	return h, ok && err == nil, hashKind(h)
}

// outcomeContext outlives the request for the write that settles a
// reserved attempt: a client that hangs up after its guess was checked
// must not leave the attempt unsettled (users.LostReservation bounds the
// harm if a write is lost all the same).
func outcomeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// inFlightRetry is the Retry-After of an attempt refused because a check at
// the lock threshold is still running: its outcome decides within moments.
const inFlightRetry = time.Second

func (s *Service) refuseLocked(ctx context.Context, until time.Time, event audit.Event, now time.Time) error {
	event.Outcome = audit.OutcomeLocked
	s.auditAlone(ctx, event)
	retry := until.Sub(now)
	if retry < inFlightRetry {
		retry = inFlightRetry
	}
	return &LockedError{RetryAfter: retry}
}

// countFailure records a failed check: the lock its reservation's number
// calls for, the source's failure, and the audit record, in one
// transaction. The attempt itself was counted when it was reserved.
func (s *Service) countFailure(ctx context.Context, key userkey.Key, a users.Attempt, source string, src users.Lockout, event audit.Event, now time.Time) error {
	event.Outcome = audit.OutcomeInvalidCredentials
	f := loginrecord.Failure{Key: key, Attempt: a, LockedUntil: s.s.lockedUntil(a.N, now), Event: event}
	if source != "" {
		n := src.FailedAttempts + 1
		f.Source = source
		f.SourceLockout = users.Lockout{FailedAttempts: n, LastFailureAt: now, LockedUntil: s.s.sourceLockedUntil(n, now)}
	}
	wctx, cancel := outcomeContext(ctx)
	defer cancel()
	if err := s.recorder.LoginFailed(wctx, f); err != nil {
		s.log.ErrorContext(ctx, "failed login not recorded", "package", key.Package, "username", event.Username, "err", err)
	}
	return ErrInvalidCredentials
}

type tierResult struct {
	mode   Mode
	status KeycloakStatus
	token  *keycloak.Token
	drift  bool
}

// grant is the outcome of one Keycloak password grant.
type grant struct {
	tok     keycloak.Token
	err     error
	allowed bool // false: the breaker refused, Keycloak was not called
}

// grant asks the breaker and, if allowed, Keycloak.
func (s *Service) grant(ctx context.Context, key userkey.Key, password string) grant {
	done, err := s.breaker.Allow(ctx)
	if err != nil {
		return grant{err: err}
	}
	tok, err := s.keycloak.PasswordGrant(ctx, key.Package, key.Username, password)
	done(err)
	return grant{tok: tok, err: err, allowed: true}
}

// breakerClosed: a speculative grant (one the login cancels when the local
// check fails) must never be the half-open breaker's probe, whose
// cancelled outcome would hold the probe's lease and keep every login from
// Keycloak until it expired.
func (s *Service) breakerClosed(ctx context.Context) bool {
	cb, ok := s.breaker.(ClosedBreaker)
	return !ok || cb.Closed(ctx)
}

// startGrant runs grant without blocking (ParallelKeycloak).
func (s *Service) startGrant(ctx context.Context, key userkey.Key, password string) <-chan grant {
	ch := make(chan grant, 1)
	go func() { ch <- s.grant(ctx, key, password) }()
	return ch
}

// keycloakTier judges the grant of a login whose local check passed, and
// falls back to a cached token or local mode when Keycloak cannot answer.
// g is nil when the Keycloak tier is disabled.
func (s *Service) keycloakTier(ctx context.Context, entry users.Entry, g *grant, cached cachedToken, now time.Time) (tierResult, error) {
	if g == nil {
		return s.fallback(ctx, entry, cached, KeycloakDisabled, now)
	}
	if !g.allowed {
		return s.fallback(ctx, entry, cached, KeycloakCircuitOpen, now)
	}
	tok, err := g.tok, g.err
	switch {
	case err == nil:
		return tierResult{mode: ModeKeycloak, status: KeycloakAvailable, token: &tok}, nil
	case ctx.Err() != nil:
		return tierResult{}, ctx.Err()
	case errors.Is(err, keycloak.ErrInvalidCredentials):
		// Keycloak answered and disagrees with the local store: who is
		// right is the authority rule's question (authority.go).
		return s.keycloakRefused(ctx, entry, err, now)
	default:
		s.log.WarnContext(ctx, "keycloak tier failed", "package", entry.User.Package, "err", err)
		return s.fallback(ctx, entry, cached, KeycloakUnavailable, now)
	}
}

// cachedToken is the cached Keycloak token read with the user.
type cachedToken func(ctx context.Context) (keycloak.Token, bool, error)

func (s *Service) fallback(ctx context.Context, entry users.Entry, cached cachedToken, status KeycloakStatus, now time.Time) (tierResult, error) {
	key := entry.User.Key()
	if status != KeycloakDisabled && s.offlineWindowExpired(entry.User, now) {
		return tierResult{}, ErrOfflineWindowExpired
	}
	tok, ok, err := cached(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "token cache read failed", "package", key.Package, "err", err)
	}
	if ok {
		return tierResult{mode: ModeCached, status: status, token: &tok}, nil
	}
	if !s.s.AllowOfflineMode {
		return tierResult{}, ErrOfflineDisabled
	}
	return tierResult{mode: ModeLocal, status: status}, nil
}

// markDrift queues again the kcguard change Keycloak has just shown it
// lacks (deduplicated by version; reconciliation would find it too, later).
// Only an unsynced change is ever pushed: a hash Keycloak has and decided
// against (an admin reset) must never be sent back (authority.go).
func (s *Service) markDrift(ctx context.Context, u users.User, now time.Time) {
	if !u.Unsynced() {
		return
	}
	s.enqueue(ctx, u, now)
}

// rehash replaces a hash made with outdated parameters after a successful
// login, the one moment the plaintext is at hand. Best effort.
func (s *Service) rehash(ctx context.Context, u users.User, password string, now time.Time) {
	h, err := s.hasher.Hash(password)
	if err != nil {
		return
	}
	nu, err := s.users.UpdatePassword(ctx, u.Key(), u.Version, users.NewHash(h), now)
	if err != nil {
		s.log.InfoContext(ctx, "rehash skipped", "package", u.Package, "username", u.Username, "err", err)
		return
	}
	s.enqueue(ctx, nu, now)
}

func (s *Service) enqueue(ctx context.Context, u users.User, now time.Time) {
	j, err := syncjob.CurrentPassword(u, now)
	if err == nil {
		err = s.sync.Enqueue(ctx, j)
	}
	if err != nil {
		s.log.WarnContext(ctx, "sync job not queued; reconciliation will re-queue it", "package", u.Package,
			"username", u.Username, "err", err)
	}
}

// ChangePassword verifies the old password locally, stores the new hash and
// syncs it to Keycloak now or through the queue.
func (s *Service) ChangePassword(ctx context.Context, in PasswordChangeInput) (PasswordChangeResult, error) {
	now := s.s.Now()
	key, err := s.key(in.Package, in.Username)
	if err != nil {
		return PasswordChangeResult{}, err
	}
	source := s.sourceOf(in.SourceIP)
	read, err := s.reads.ReadLogin(ctx, key, source, now)
	if err != nil {
		return PasswordChangeResult{}, fmt.Errorf("%w: lookup: %v", ErrUnavailable, err)
	}
	entry := read.Entry
	event := audit.Event{Package: key.Package, Username: s.auditName(key, entry), Action: audit.ActionPasswordChange,
		AuthMode: string(ModeLocal), SourceIP: in.SourceIP, UserAgent: in.UserAgent, RequestID: in.RequestID, At: now}
	a, err := s.admit(ctx, key, read.Source, event, now)
	if err != nil {
		return PasswordChangeResult{}, err
	}
	if _, ok := s.check(ctx, entry, in.OldPassword); !ok {
		return PasswordChangeResult{}, s.countFailure(ctx, key, a, source, read.Source, event, now)
	}
	// The old password was right: whatever follows, the attempt is given back.
	defer s.release(ctx, key, now)
	if err := s.policy.Check(key.Username, in.NewPassword); err != nil {
		event.Outcome = audit.OutcomePolicyRejected
		s.auditAlone(ctx, event)
		return PasswordChangeResult{}, &WeakPasswordError{Reason: policyReason(err)}
	}
	if in.NewPassword == in.OldPassword {
		event.Outcome = audit.OutcomePolicyRejected
		s.auditAlone(ctx, event)
		return PasswordChangeResult{}, &WeakPasswordError{Reason: "must differ from the current password"}
	}
	h, err := s.hasher.Hash(in.NewPassword)
	if err != nil {
		return PasswordChangeResult{}, fmt.Errorf("hash new password: %w", err)
	}
	u, err := s.users.UpdatePassword(ctx, key, entry.User.Version, users.NewHash(h), now)
	switch {
	case errors.Is(err, users.ErrVersionConflict):
		event.Outcome = audit.OutcomeConflict
		s.auditAlone(ctx, event)
		return PasswordChangeResult{}, ErrConflict
	case err != nil:
		return PasswordChangeResult{}, fmt.Errorf("%w: store new password: %v", ErrUnavailable, err)
	}
	event.Outcome = audit.OutcomeSuccess
	s.auditAlone(ctx, event)
	if s.s.RevokeOtherSessions {
		s.endLocalSessions(ctx, key)
	}
	j := syncjob.New(syncjob.SetPassword, key.Package, key.Username, u.Version, now)
	j.Hash = &h
	// The job carries the Keycloak logout, now or through the queue, so
	// Keycloak ends the old sessions once it has the new password.
	j.EndSessions = s.s.RevokeOtherSessions
	res := s.sync.Dispatch(ctx, j)
	return PasswordChangeResult{Synced: res == syncjob.Applied, Sync: string(res)}, nil
}

// endLocalSessions ends every session and the cached Keycloak token of a
// user whose password just changed. The revocation time is read after the
// new hash is stored: a login that read the old hash began before it, so
// its session is refused or dead (the login record's checks close the rest).
func (s *Service) endLocalSessions(ctx context.Context, key userkey.Key) {
	if n, err := s.sessions.RevokeAllForUser(ctx, key.Package, key.Username, s.s.Now()); err != nil {
		s.log.ErrorContext(ctx, "sessions not revoked after password change", "package", key.Package, "username", key.Username, "err", err)
	} else {
		s.log.InfoContext(ctx, "sessions revoked after password change", "package", key.Package, "count", n)
	}
	if err := s.tokens.Forget(ctx, key); err != nil {
		s.log.ErrorContext(ctx, "cached keycloak token not deleted after password change", "package", key.Package,
			"username", key.Username, "err", err)
	}
}

func (s *Service) auditAlone(ctx context.Context, e audit.Event) {
	if err := s.recorder.Audit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit record lost", "action", e.Action, "outcome", e.Outcome, "err", err)
	}
}

func outcomeOf(err error) audit.Outcome {
	var locked *LockedError
	switch {
	case errors.Is(err, ErrOfflineDisabled):
		return audit.OutcomeOfflineDisabled
	case errors.Is(err, ErrInvalidCredentials):
		return audit.OutcomeInvalidCredentials
	case errors.As(err, &locked):
		return audit.OutcomeLocked
	case errors.Is(err, ErrAccountDisabled):
		return audit.OutcomeAccountDisabled
	case errors.Is(err, ErrActionRequired):
		return audit.OutcomeActionRequired
	case errors.Is(err, ErrOfflineWindowExpired):
		return audit.OutcomeOfflineWindowExpired
	}
	return audit.OutcomeError
}

func policyReason(err error) string {
	var pe *credential.PolicyError
	if errors.As(err, &pe) {
		switch pe.Reason {
		case credential.ReasonTooShort:
			return fmt.Sprintf("must be at least %d characters", pe.Limit)
		case credential.ReasonTooLong:
			return fmt.Sprintf("must be at most %d bytes", pe.Limit)
		case credential.ReasonEqualsUsername:
			return "must not equal the username"
		}
	}
	return "does not meet the password policy"
}
