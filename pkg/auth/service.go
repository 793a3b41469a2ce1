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
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// Settings tune the flows. Zero values take the documented defaults.
type Settings struct {
	// AllowOfflineMode permits local-only logins while Keycloak is down and
	// no cached token is left (the original allow_offline_mode).
	AllowOfflineMode bool
	// GracePeriod is how long a cached Keycloak token may stand in for
	// Keycloak (token_grace_period_hours). Zero means 24h.
	GracePeriod time.Duration
	// MaxFailures failed local checks are free; from then on each failure
	// locks the key for FailureDelay × (failures − MaxFailures + 1), at most
	// MaxFailureDelay (Keycloak's wait increment, SSSD's
	// offline_failed_login_delay). Zero values mean 5, 30s and 15m.
	MaxFailures     int
	FailureDelay    time.Duration
	MaxFailureDelay time.Duration
	// SessionIdle and SessionLifetime bound a session. Zero means 30m and 12h.
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// RevokeOtherSessions ends the user's sessions after a password change.
	RevokeOtherSessions bool
	// ParallelKeycloak starts the Keycloak grant alongside the local hash
	// check for users with no failed attempts on record. Off by default:
	// the one wrong password it can let through makes Keycloak's
	// brute-force detector refuse the user's next correct password for a
	// while (measured on 26.7.3), for a saving of one local hash (~16 ms).
	ParallelKeycloak bool
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

func (s Settings) withDefaults() Settings {
	if s.GracePeriod == 0 {
		s.GracePeriod = 24 * time.Hour
	}
	if s.MaxFailures == 0 {
		s.MaxFailures = 5
	}
	if s.FailureDelay == 0 {
		s.FailureDelay = 30 * time.Second
	}
	if s.MaxFailureDelay == 0 {
		s.MaxFailureDelay = 15 * time.Minute
	}
	if s.SessionIdle == 0 {
		s.SessionIdle = 30 * time.Minute
	}
	if s.SessionLifetime == 0 {
		s.SessionLifetime = 12 * time.Hour
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}

// lockedUntil is the lockout deadline after the n-th consecutive failure.
func (s Settings) lockedUntil(n int, now time.Time) time.Time {
	if n < s.MaxFailures {
		return time.Time{}
	}
	d := s.FailureDelay * time.Duration(n-s.MaxFailures+1)
	if d > s.MaxFailureDelay || d <= 0 {
		d = s.MaxFailureDelay
	}
	return now.Add(d)
}

// Service runs the login and password-change flows.
type Service struct {
	users    Users
	hasher   *credential.Hasher
	policy   credential.Policy
	keycloak PasswordGranter // nil: the Keycloak tier is disabled
	breaker  Breaker
	tokens   TokenCache
	ledger   Ledger
	sessions SessionRevoker
	sync     Sync
	packages map[string]bool
	s        Settings
	log      *slog.Logger
}

// Deps are the Service's collaborators.
type Deps struct {
	Users    Users
	Hasher   *credential.Hasher
	Policy   credential.Policy
	Keycloak PasswordGranter // nil disables the Keycloak tier
	Breaker  Breaker
	Tokens   TokenCache
	Ledger   Ledger
	Sessions SessionRevoker
	Sync     Sync
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
		"Tokens": d.Tokens != nil, "Ledger": d.Ledger != nil, "Sessions": d.Sessions != nil, "Sync": d.Sync != nil,
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
		tokens: d.Tokens, ledger: d.Ledger, sessions: d.Sessions, sync: d.Sync,
		packages: map[string]bool{}, s: s.withDefaults(), log: d.Log,
	}
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
// A session is only ever issued after the local check passed. By default
// the tiers run in sequence, so a password the local store refuses never
// reaches Keycloak: an attacker guessing through kcguard cannot touch
// Keycloak's brute-force counters, and unknown usernames never reach
// Keycloak at all. With Settings.ParallelKeycloak, a known, enabled user
// with no failed attempts on record has the grant started alongside the
// local hash check (latency is the larger of the two, not their sum); any
// failure on record switches the user back to sequence, so Keycloak sees at
// most one wrong password between two good logins. A speculative grant whose
// local check fails is cancelled and does not count for the breaker.
func (s *Service) Login(ctx context.Context, in LoginInput) (LoginResult, error) {
	now := s.s.Now()
	key, entry, err := s.lookup(ctx, in.Package, in.Username, now)
	if err != nil {
		return LoginResult{}, err
	}
	event := audit.Event{Package: key.Package, Username: key.Username, Action: audit.ActionLogin,
		SourceIP: in.SourceIP, UserAgent: in.UserAgent, RequestID: in.RequestID, At: now}
	if entry.Lockout.Locked(now) {
		return LoginResult{}, s.refuseLocked(ctx, entry, event, now)
	}
	var (
		early  <-chan grant
		cancel context.CancelFunc = func() {}
	)
	if s.s.ParallelKeycloak && s.keycloak != nil && entry.Found && entry.User.Enabled && entry.Lockout.FailedAttempts == 0 {
		var gctx context.Context
		gctx, cancel = context.WithCancel(ctx)
		early = s.startGrant(gctx, key, in.Password)
	}
	defer cancel()
	hash, ok := s.verify(entry, in.Password)
	if !ok {
		if early != nil {
			// Never leave the grant running past the request: a Lambda
			// instance is frozen between invocations.
			cancel()
			<-early
		}
		return LoginResult{}, s.countFailure(ctx, key, entry, event, now)
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
	tier, err := s.keycloakTier(ctx, key, g, now)
	if err != nil {
		event.Outcome = outcomeOf(err)
		s.auditAlone(ctx, event)
		return LoginResult{}, err
	}
	event.AuthMode, event.Outcome = string(tier.mode), audit.OutcomeSuccess
	success := Success{Event: event, ResetLockout: entry.Lockout.FailedAttempts > 0, Session: sessions.Record{
		Package: key.Package, Username: key.Username, AuthMode: sessions.AuthMode(tier.mode),
		CreatedAt: now, IdleExpiresAt: now.Add(s.s.SessionIdle), ExpiresAt: now.Add(s.s.SessionLifetime),
		SourceIP: in.SourceIP, UserAgent: in.UserAgent,
	}}
	if tier.mode == ModeKeycloak {
		success.Token, success.GraceUntil = tier.token, now.Add(s.s.GracePeriod)
	}
	if entry.Found {
		success.UserVersion = entry.User.Version
	}
	token, sess, err := s.ledger.LoginSucceeded(ctx, success)
	if errors.Is(err, ErrLoginSuperseded) {
		s.log.InfoContext(ctx, "login superseded by a concurrent account change", "package", key.Package, "err", err)
		return LoginResult{}, ErrLoginSuperseded
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("%w: store session: %v", ErrUnavailable, err)
	}
	if tier.drift {
		s.markDrift(ctx, entry.User, now)
	}
	if s.hasher.NeedsRehash(hash) {
		s.rehash(ctx, entry.User, in.Password, now)
	}
	return LoginResult{
		SessionToken: token, ExpiresAt: sess.ExpiresAt, Mode: tier.mode,
		KeycloakStatus: tier.status, Keycloak: tier.token,
	}, nil
}

// lookup checks the package and reads the user with its lockout state.
func (s *Service) lookup(ctx context.Context, pkg, username string, now time.Time) (users.Key, users.Entry, error) {
	if !s.packages[pkg] {
		return users.Key{}, users.Entry{}, ErrUnknownPackage
	}
	key, err := users.NewKey(pkg, username)
	if err != nil {
		return key, users.Entry{}, ErrInvalidCredentials
	}
	entry, err := s.users.Lookup(ctx, key, now)
	if err != nil {
		return key, entry, fmt.Errorf("%w: lookup: %v", ErrUnavailable, err)
	}
	return key, entry, nil
}

// verify checks password against the stored hash in constant time. Unknown,
// disabled and hash-less users cost one dummy verification of the same price
// and fail the same way, so neither timing nor answer tells them apart.
func (s *Service) verify(entry users.Entry, password string) (credential.Hash, bool) {
	if !entry.Found || !entry.User.Enabled {
		return credential.Hash{}, s.hasher.VerifyDummy(password)
	}
	h, err := credential.ParseHash(entry.User.Hash.SecretData, entry.User.Hash.CredentialData)
	if err != nil {
		s.log.Error("stored hash unreadable", "package", entry.User.Package, "username", entry.User.Username, "err", err)
		return h, s.hasher.VerifyDummy(password)
	}
	ok, err := s.hasher.Verify(h, password)
	return h, ok && err == nil
}

func (s *Service) refuseLocked(ctx context.Context, entry users.Entry, event audit.Event, now time.Time) error {
	event.Outcome = audit.OutcomeLocked
	s.auditAlone(ctx, event)
	return &LockedError{RetryAfter: entry.Lockout.LockedUntil.Sub(now)}
}

// countFailure records a failed check. The new count is derived from the
// state Lookup read, so the counter update and the audit record go out in
// one transaction; concurrent failures can make the lock deadline one step
// short, never the count wrong (the store adds atomically).
func (s *Service) countFailure(ctx context.Context, key users.Key, entry users.Entry, event audit.Event, now time.Time) error {
	n := entry.Lockout.FailedAttempts + 1
	event.Outcome = audit.OutcomeInvalidCredentials
	f := Failure{Key: key, Event: event,
		Lockout: users.Lockout{FailedAttempts: n, LastFailureAt: now, LockedUntil: s.s.lockedUntil(n, now)}}
	if err := s.ledger.LoginFailed(ctx, f); err != nil {
		s.log.ErrorContext(ctx, "failed login not recorded", "package", key.Package, "username", key.Username, "err", err)
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
func (s *Service) grant(ctx context.Context, key users.Key, password string) grant {
	done, err := s.breaker.Allow(ctx)
	if err != nil {
		return grant{err: err}
	}
	tok, err := s.keycloak.PasswordGrant(ctx, key.Package, key.Username, password)
	done(err)
	return grant{tok: tok, err: err, allowed: true}
}

// startGrant runs grant without blocking (ParallelKeycloak).
func (s *Service) startGrant(ctx context.Context, key users.Key, password string) <-chan grant {
	ch := make(chan grant, 1)
	go func() { ch <- s.grant(ctx, key, password) }()
	return ch
}

// keycloakTier judges the grant of a login whose local check passed, and
// falls back to a cached token or local mode when Keycloak cannot answer.
// g is nil when the Keycloak tier is disabled.
func (s *Service) keycloakTier(ctx context.Context, key users.Key, g *grant, now time.Time) (tierResult, error) {
	if g == nil {
		return s.fallback(ctx, key, KeycloakDisabled, now)
	}
	if !g.allowed {
		return s.fallback(ctx, key, KeycloakCircuitOpen, now)
	}
	tok, err := g.tok, g.err
	switch {
	case err == nil:
		return tierResult{mode: ModeKeycloak, status: KeycloakAvailable, token: &tok}, nil
	case ctx.Err() != nil:
		return tierResult{}, ctx.Err()
	case errors.Is(err, keycloak.ErrInvalidCredentials):
		// Keycloak answered and disagrees with the local store, which stays
		// authoritative: credential drift. Keycloak gets the local hash again.
		s.log.WarnContext(ctx, "credential drift: keycloak refused a password the local store accepted",
			"event", "credential_drift", "package", key.Package, "username", key.Username)
		return tierResult{mode: ModeLocal, status: KeycloakAvailable, drift: true}, nil
	default:
		s.log.WarnContext(ctx, "keycloak tier failed", "package", key.Package, "err", err)
		return s.fallback(ctx, key, KeycloakUnavailable, now)
	}
}

func (s *Service) fallback(ctx context.Context, key users.Key, status KeycloakStatus, now time.Time) (tierResult, error) {
	tok, ok, err := s.tokens.Get(ctx, key, now)
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

// markDrift raises the user's version (same hash) so Keycloak is sent the
// local hash: now through the queue, and by reconciliation if that send is lost.
//
// Keycloak also refuses a right password when its brute-force detector has
// the user temporarily disabled (concurrent logins can trip it) and says so
// only in its own log, so a refusal is "suspected drift": re-importing the
// local hash is harmless if it was not. A user with a sync already pending
// is not marked again.
func (s *Service) markDrift(ctx context.Context, u users.User, now time.Time) {
	if u.Unsynced() {
		return
	}
	nu, err := s.users.UpdatePassword(ctx, u.Key(), u.Version, u.Hash, now)
	if err != nil {
		s.log.WarnContext(ctx, "credential drift not recorded", "package", u.Package, "username", u.Username, "err", err)
		return
	}
	s.enqueue(ctx, nu, now)
}

// rehash replaces a hash made with outdated parameters after a successful
// login, the one moment the plaintext is at hand. Best effort.
func (s *Service) rehash(ctx context.Context, u users.User, password string, now time.Time) {
	h, err := s.hasher.Hash(password)
	if err != nil {
		return
	}
	nu, err := s.users.UpdatePassword(ctx, u.Key(), u.Version, storedHash(h), now)
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
	key, entry, err := s.lookup(ctx, in.Package, in.Username, now)
	if err != nil {
		return PasswordChangeResult{}, err
	}
	event := audit.Event{Package: key.Package, Username: key.Username, Action: audit.ActionPasswordChange,
		AuthMode: string(ModeLocal), SourceIP: in.SourceIP, UserAgent: in.UserAgent, RequestID: in.RequestID, At: now}
	if entry.Lockout.Locked(now) {
		return PasswordChangeResult{}, s.refuseLocked(ctx, entry, event, now)
	}
	if _, ok := s.verify(entry, in.OldPassword); !ok {
		return PasswordChangeResult{}, s.countFailure(ctx, key, entry, event, now)
	}
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
	u, err := s.users.UpdatePassword(ctx, key, entry.User.Version, storedHash(h), now)
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
	res := s.sync.Dispatch(ctx, j)
	if s.s.RevokeOtherSessions {
		s.endKeycloakSessions(ctx, key, res, now)
	}
	return PasswordChangeResult{Synced: res == syncjob.Applied, Sync: string(res)}, nil
}

// endLocalSessions ends every session and the cached Keycloak token of a
// user whose password just changed. The revocation time is read after the
// new hash is stored: a login that read the old hash began before it, so
// its session is refused or dead (the ledger's checks close the rest).
func (s *Service) endLocalSessions(ctx context.Context, key users.Key) {
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

// endKeycloakSessions logs the user out of Keycloak after a password change:
// now when the new hash went in now, else queued behind the set_password
// job in the user's FIFO group, so Keycloak ends the old sessions once it
// has the new password and not before.
func (s *Service) endKeycloakSessions(ctx context.Context, key users.Key, synced syncjob.Result, now time.Time) {
	j := syncjob.New(syncjob.LogoutUser, key.Package, key.Username, 0, now)
	if synced == syncjob.Applied {
		s.sync.Dispatch(ctx, j)
		return
	}
	if err := s.sync.Enqueue(ctx, j); err != nil {
		s.log.ErrorContext(ctx, "keycloak logout not queued after password change", "event", "logout_enqueue_failed",
			"package", key.Package, "username", key.Username, "err", err)
	}
}

func (s *Service) auditAlone(ctx context.Context, e audit.Event) {
	if err := s.ledger.Audit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit record lost", "action", e.Action, "outcome", e.Outcome, "err", err)
	}
}

func outcomeOf(err error) audit.Outcome {
	if errors.Is(err, ErrOfflineDisabled) {
		return audit.OutcomeOfflineDisabled
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

// storedHash is the store's opaque form of a credential hash.
func storedHash(h credential.Hash) users.Hash {
	return users.Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}
}

// StoredHash converts a credential hash for the local store (CLI seeding).
func StoredHash(h credential.Hash) users.Hash { return storedHash(h) }
