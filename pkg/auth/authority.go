package auth

// Keycloak is the authority for everything an administrator or Keycloak
// itself decides: enabled/disabled, deletion, password resets, required
// actions, brute-force locks. The local store is authoritative only for a
// change made through kcguard that Keycloak has not received yet
// (Version > KeycloakSyncedVersion). This file applies that rule to the
// answers a login gets from Keycloak; docs/design.md explains it.

import (
	"context"
	"errors"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// keycloakDecides reports whether a login the local hash refused is put to
// Keycloak instead: a user Keycloak refused last time (it may have been
// re-enabled, or the user brings the new password), or, with LearnOnLogin,
// a username the local store does not know. A pending kcguard change keeps
// the local store in charge.
func (s *Service) keycloakDecides(entry users.Entry) bool {
	switch {
	case s.keycloak == nil:
		return false
	case !entry.Found:
		return s.s.LearnOnLogin
	default:
		return entry.User.KeycloakMustDecide() && !entry.User.Unsynced()
	}
}

// loginThroughKeycloak lets Keycloak alone judge the password. Success
// stores (learns) a hash of the verified password, so the user also works
// during the next outage. Keycloak down, breaker open or a wrong password
// all get the plain 401 and count as a failure, as a local refusal would.
//
// fail records the attempt as a failed password check (the lockout's
// bookkeeping, owned by Login).
func (s *Service) loginThroughKeycloak(ctx context.Context, in LoginInput, key userkey.Key, read loginrecord.Read,
	event audit.Event, fail func() error, now time.Time) (LoginResult, error) {
	entry := read.Entry
	g := s.grant(ctx, key, in.Password)
	switch {
	case g.allowed && g.err == nil:
		s.learn(ctx, key, entry, in.Password, g.tok, now)
		event.Username = key.Username // a known user now, whatever the audit trail called it before
		tier := tierResult{mode: ModeKeycloak, status: KeycloakAvailable, token: &g.tok}
		return s.succeed(ctx, in, key, event, tier, nil, entry.User.Version, read.NextSessionSeq, now)
	case ctx.Err() != nil:
		s.release(ctx, key, now)
		return LoginResult{}, ctx.Err()
	case g.allowed && (errors.Is(g.err, keycloak.ErrAccountDisabled) || errors.Is(g.err, keycloak.ErrActionRequired)):
		// The password was right: not a failed attempt.
		s.release(ctx, key, now)
		err := s.namedRefusal(ctx, entry, g.err, now)
		event.Outcome = outcomeOf(err)
		s.auditAlone(ctx, event)
		return LoginResult{}, err
	}
	return LoginResult{}, fail()
}

// learn stores what a Keycloak-verified login taught: a local hash of the
// password (pkg/credential's default, Keycloak-compatible) and Keycloak's
// id, marked synced because Keycloak has that password already. It is not
// a kcguard change and queues nothing. Best effort: the login stands.
func (s *Service) learn(ctx context.Context, key userkey.Key, entry users.Entry, password string, tok keycloak.Token, now time.Time) {
	h, err := s.hasher.Hash(password)
	if err != nil {
		s.log.WarnContext(ctx, "learn: hash failed", "package", key.Package, "err", err)
		return
	}
	sh := users.NewHash(h)
	if !entry.Found {
		_, err = s.users.Create(ctx, users.User{Package: key.Package, Username: key.Username, Enabled: true, Hash: sh,
			Version: 1, KeycloakSyncedVersion: 1, KeycloakID: tok.Subject(), KeycloakConfirmedAt: now}, now)
	} else {
		yes, no := true, false
		_, err = s.users.ApplyVerdict(ctx, key, entry.User.Version, users.Verdict{Hash: &sh, Enabled: &yes, HashStale: &no,
			RequiredActions: []string{}, ConfirmedAt: now, KeycloakID: tok.Subject()})
	}
	if err != nil {
		// A concurrent login learnt it first, or a kcguard change landed.
		s.log.InfoContext(ctx, "learn from keycloak skipped", "package", key.Package, "username", key.Username, "err", err)
		return
	}
	s.log.InfoContext(ctx, "learnt from keycloak", "event", "keycloak_learn", "package", key.Package,
		"username", key.Username, "new_user", !entry.Found)
}

// keycloakRefused judges Keycloak's refusal of a password the local store
// accepted (the user is enabled, not stale, no required actions locally).
func (s *Service) keycloakRefused(ctx context.Context, entry users.Entry, err error, now time.Time) (tierResult, error) {
	u := entry.User
	switch {
	case errors.Is(err, keycloak.ErrAccountDisabled), errors.Is(err, keycloak.ErrActionRequired):
		// Keycloak checked the password and named the reason.
		return tierResult{}, s.namedRefusal(ctx, entry, err, now)
	case u.Unsynced():
		// kcguard's own change that Keycloak has not received: local wins.
		s.log.WarnContext(ctx, "credential drift: keycloak lacks a kcguard change; the local store wins",
			"event", "credential_drift", "package", u.Package, "username", u.Username,
			"version", u.Version, "keycloak_synced_version", u.KeycloakSyncedVersion)
		return tierResult{mode: ModeLocal, status: KeycloakAvailable, drift: true}, nil
	}
	return tierResult{}, s.explainRefusal(ctx, u, now)
}

// namedRefusal records a refusal whose reason Keycloak named (only ever to
// the right password, so saying it reveals nothing to a guesser).
func (s *Service) namedRefusal(ctx context.Context, entry users.Entry, err error, now time.Time) error {
	if errors.Is(err, keycloak.ErrAccountDisabled) {
		no := false
		s.record(ctx, entry, users.Verdict{Enabled: &no, ConfirmedAt: now}, "account disabled in keycloak")
		return ErrAccountDisabled
	}
	if entry.Found && s.accounts != nil {
		// Store which actions, so operators and the next outage see them.
		ictx, cancel := context.WithTimeout(ctx, s.s.InspectTimeout)
		defer cancel()
		var (
			kc   keycloak.User
			kerr error
		)
		if id := entry.User.KeycloakID; id != "" {
			kc, kerr = s.accounts.GetUser(ictx, entry.User.Package, id)
		} else {
			kc, kerr = s.accounts.FindUser(ictx, entry.User.Package, entry.User.Username)
		}
		if kerr == nil && len(kc.RequiredActions) > 0 {
			s.record(ctx, entry, users.Verdict{ConfirmedAt: now, RequiredActions: kc.RequiredActions, KeycloakID: kc.ID},
				"keycloak requires an action")
		} else {
			s.log.WarnContext(ctx, "keycloak requires an action; which one not recorded", "package", entry.User.Package,
				"username", entry.User.Username, "err", kerr)
		}
	}
	return ErrActionRequired
}

// explainRefusal asks Keycloak's admin API why it refused a password the
// local store holds as current and synced: a brute-force lock (transient:
// refuse, change nothing), a deleted or disabled user, or else a password
// reset in Keycloak, which makes the local hash stale. One group of
// parallel admin calls; a FindUser before it when the local user has no
// Keycloak id yet. If Keycloak cannot say, the login is refused and
// nothing is recorded.
//
// A refusal of the password Keycloak last accepted from this user (no
// credential set since Keycloak last confirmed the user) is no reset:
// errParallelLogin, and nothing is recorded (retryParallel).
func (s *Service) explainRefusal(ctx context.Context, u users.User, now time.Time) error {
	if s.accounts == nil {
		return ErrInvalidCredentials
	}
	ictx, cancel := context.WithTimeout(ctx, s.s.InspectTimeout)
	defer cancel()
	var (
		a   keycloak.Account
		err error
	)
	id := u.KeycloakID
	if id == "" {
		var kc keycloak.User
		kc, err = s.accounts.FindUser(ictx, u.Package, u.Username)
		id = kc.ID
		if errors.Is(err, keycloak.ErrNotFound) {
			err = nil // deleted: a stays not found
		}
	}
	if err == nil && id != "" {
		a, err = keycloak.InspectAccount(ictx, s.accounts, u.Package, id)
	}
	if err != nil {
		s.log.WarnContext(ctx, "keycloak refused a locally valid password and could not say why; refused",
			"package", u.Package, "username", u.Username, "err", err)
		return ErrInvalidCredentials
	}
	entry := users.Entry{User: u, Found: true}
	no, yes := false, true
	switch {
	case !a.Found:
		s.record(ctx, entry, users.Verdict{Enabled: &no, ConfirmedAt: now}, "user deleted in keycloak")
		return ErrInvalidCredentials
	case a.BruteForce.Locked:
		retry := a.BruteForce.LockedUntil.Sub(now)
		if a.BruteForce.LockedUntil.IsZero() || retry > s.s.MaxFailureDelay {
			retry = s.s.MaxFailureDelay // until an administrator unlocks; ask again later
		}
		s.log.InfoContext(ctx, "keycloak brute-force lock; refused", "event", "keycloak_locked",
			"package", u.Package, "username", u.Username, "retry_after", retry)
		return &LockedError{RetryAfter: max(retry, time.Second)}
	case a.User.Enabled && len(a.User.RequiredActions) == 0 && !a.PasswordSetAt.IsZero() &&
		!u.KeycloakConfirmedAt.IsZero() && !a.PasswordSetAt.After(u.KeycloakConfirmedAt):
		s.log.InfoContext(ctx, "keycloak refused the password it last confirmed: a parallel login of the user",
			"event", "keycloak_parallel_login", "package", u.Package, "username", u.Username)
		return errParallelLogin
	}
	actions := a.User.RequiredActions
	if actions == nil {
		actions = []string{}
	}
	s.record(ctx, entry, users.Verdict{HashStale: &yes, Enabled: &a.User.Enabled, RequiredActions: actions,
		KeycloakID: id, ConfirmedAt: now},
		"password reset in keycloak: local hash stale", "keycloak_password_set_at", a.PasswordSetAt,
		"local_password_changed_at", u.PasswordChangedAt)
	return ErrInvalidCredentials
}

// errParallelLogin: Keycloak refused the password it last confirmed. With
// brute-force detection on, Keycloak 26 refuses a login of a user while
// another of theirs is in flight, or while it still books the previous one
// (asynchronously, after answering it), in the words of a wrong password:
// of 4 parallel right passwords it accepted 1, and back-to-back logins of
// one user were refused now and then on a loaded machine.
var errParallelLogin = errors.New("keycloak refused a parallel login of the user")

// parallelLoginPause is how long a login Keycloak refused as parallel waits
// before it asks once more: a grant's time, for the other login to end.
const parallelLoginPause = 150 * time.Millisecond

// retryParallel asks Keycloak once more, after a pause, for a login it
// refused as parallel (errParallelLogin), and judges the answer as the
// first. Refused again, the login is answered 429 for a second.
func (s *Service) retryParallel(ctx context.Context, key userkey.Key, entry users.Entry, password string,
	cached cachedToken, now time.Time) (tierResult, error) {
	s.s.Sleep(ctx, parallelLoginPause)
	g := s.grant(ctx, key, password)
	tier, err := s.keycloakTier(ctx, entry, &g, cached, now)
	if errors.Is(err, errParallelLogin) {
		return tier, &LockedError{RetryAfter: inFlightRetry}
	}
	return tier, err
}

// record stores Keycloak's verdict on a known user under the version the
// login read; a kcguard change that landed meanwhile wins and the verdict
// is dropped (the next login asks Keycloak again).
func (s *Service) record(ctx context.Context, entry users.Entry, v users.Verdict, what string, attrs ...any) {
	if !entry.Found {
		return
	}
	u := entry.User
	_, err := s.users.ApplyVerdict(ctx, u.Key(), u.Version, v)
	attrs = append([]any{"event", "keycloak_verdict", "package", u.Package, "username", u.Username}, attrs...)
	if err != nil {
		s.log.WarnContext(ctx, what+"; not recorded", append(attrs, "err", err)...)
		return
	}
	s.log.InfoContext(ctx, what, attrs...)
}

// confirmation is what a login through Keycloak adds to the login-record write:
// a fresh KeycloakConfirmedAt at most every users.ConfirmEvery, and the
// Keycloak id when still unknown. Nil when there is nothing to record.
func confirmation(u users.User, tier tierResult, now time.Time) *users.Verdict {
	if tier.mode != ModeKeycloak || tier.token == nil {
		return nil
	}
	var v users.Verdict
	if u.ConfirmDue(now) {
		v.ConfirmedAt = now
	}
	if u.KeycloakID == "" {
		v.KeycloakID = tier.token.Subject()
	}
	if v.ConfirmedAt.IsZero() && v.KeycloakID == "" {
		return nil
	}
	return &v
}

// offlineWindowExpired: the user's last Keycloak-confirmed state is older
// than the offline window, so Keycloak's absence must not let it in. A user
// Keycloak never confirmed counts as expired.
func (s *Service) offlineWindowExpired(u users.User, now time.Time) bool {
	return s.s.OfflineWindow > 0 && now.Sub(u.KeycloakConfirmedAt) > s.s.OfflineWindow
}
