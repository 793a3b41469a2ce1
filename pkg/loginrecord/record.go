// Package loginrecord keeps the record of a login attempt: what one attempt
// writes to the local tables (the session, the audit event, the cached
// Keycloak token, the lockout counters, Keycloak's verdict on the user) and
// what it reads before its password check. Dynamo writes each outcome in
// one transaction; Stores writes it store by store for the in-memory
// stores. The login flow (pkg/auth) declares the ports; the records live
// here, beside the stores that keep them, as sessions.Record lives with
// the session stores.
package loginrecord

import (
	"context"
	"errors"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// ErrSuperseded: LoginSucceeded stored nothing because the user moved past
// Success.UserVersion or the user's sessions were revoked at or after the
// session's CreatedAt. A retry of the login is safe.
var ErrSuperseded = errors.New("superseded: the user changed or their sessions were revoked since the login began")

// Success is everything a successful login writes.
type Success struct {
	// Session is the session to create; the login record makes its token
	// and id.
	Session sessions.Record
	Event   audit.Event
	// Token, when set, is a fresh Keycloak token to cache until GraceUntil.
	Token      *keycloak.Token
	GraceUntil time.Time
	// ResetLockout releases the login's reservation: it clears the key's
	// count unless a parallel failure has locked the key meanwhile (the
	// lock stands and the session is still written).
	ResetLockout bool
	// Verdict, when set, records what Keycloak has just confirmed about the
	// user (KeycloakConfirmedAt, enabled again, hash no longer stale) in the
	// same write; it never carries a hash.
	Verdict *users.Verdict
	// Now is when the login happened (the release's "locked?" test).
	Now time.Time
	// UserVersion, when positive, is the user version the password was
	// checked against: the session is stored only if the user is still at
	// it (else ErrSuperseded), so a login that raced a password change
	// leaves no session.
	UserVersion int64
}

// Failure is everything a failed password check writes.
type Failure struct {
	Key userkey.Key
	// Attempt is the failed check's reservation; LockedUntil the lock its
	// failure sets (zero below the threshold).
	Attempt     users.Attempt
	LockedUntil time.Time
	// Source, when not empty, is the request source's id and SourceLockout
	// its new state (count + 1 from the read before the check, and the
	// source lock derived from it).
	Source        string
	SourceLockout users.Lockout
	Event         audit.Event
}

// Read is what a login reads before its password check (ReadLogin).
type Read struct {
	Entry  users.Entry
	Source users.Lockout
	// CachedToken returns the cached Keycloak token within its grace
	// period; it was read with the user and is decrypted only when called.
	CachedToken func(ctx context.Context) (keycloak.Token, bool, error)
	// NextSessionSeq is the Seq the login's session takes (one more than
	// the sessions the user was given when read; see sessions.Record.Seq).
	// Zero when the reader does not read session state: the login record then
	// asks the session store.
	NextSessionSeq int64
}

// FirstAttempt is what ReserveFirst did.
type FirstAttempt int

const (
	// FirstNotTried: nothing is known; the usual reservation decides.
	FirstNotTried FirstAttempt = iota
	// FirstReserved: the attempt is reserved as the key's only one on
	// record (users.Attempt N = 1).
	FirstReserved
	// FirstNotFirst: the key has attempts on record and nothing was
	// reserved; the usual reservation counts past them.
	FirstNotFirst
	// FirstSourceLocked: the source is throttled; nothing was reserved.
	FirstSourceLocked
)
