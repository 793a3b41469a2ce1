package auth

import (
	"context"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// Users is what the flows need from the local credential store.
type Users interface {
	// Lookup reads the user and its lockout state in one round trip.
	Lookup(ctx context.Context, key users.Key, now time.Time) (users.Entry, error)
	// UpdatePassword stores a new hash under an optimistic version check
	// and raises Version (also used with the same hash to mark drift).
	UpdatePassword(ctx context.Context, key users.Key, expectedVersion int64, h users.Hash, now time.Time) (users.User, error)
}

// PasswordGranter is the Keycloak tier of a login.
type PasswordGranter interface {
	PasswordGrant(ctx context.Context, pkg, username, password string) (keycloak.Token, error)
}

// Breaker guards Keycloak fleet-wide.
type Breaker interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// TokenCache holds the last Keycloak token of each user for outages.
type TokenCache interface {
	// Get returns the cached token if it is still within its grace period.
	Get(ctx context.Context, key users.Key, now time.Time) (keycloak.Token, bool, error)
	// Forget deletes the user's cached token (a password change ends it).
	Forget(ctx context.Context, key users.Key) error
}

// Sync gets a change into Keycloak now or later.
type Sync interface {
	Dispatch(ctx context.Context, j syncjob.Job) syncjob.Result
	Enqueue(ctx context.Context, j syncjob.Job) error
}

// SessionRevoker ends a user's sessions after a password change.
type SessionRevoker interface {
	RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error)
}

// Ledger stores what an authentication attempt changed. Its DynamoDB
// implementation writes each outcome in ONE round trip (a transaction), which
// is what keeps every login path within three DynamoDB calls.
type Ledger interface {
	// LoginSucceeded creates the session (returning its token, which exists
	// nowhere else) and stores the audit event, caches a fresh Keycloak
	// token, and clears the failure counter when it was set. It stores
	// nothing and returns ErrLoginSuperseded when the user moved past
	// Success.UserVersion or the user's sessions were revoked at or after
	// the session's CreatedAt.
	LoginSucceeded(ctx context.Context, s Success) (token string, session sessions.Record, err error)
	// LoginFailed counts the failure (with the lockout deadline the policy
	// derived) and stores the audit event.
	LoginFailed(ctx context.Context, f Failure) error
	// Audit stores an audit event on its own.
	Audit(ctx context.Context, e audit.Event) error
}

// Success is everything a successful login writes.
type Success struct {
	// Session is the session to create; the ledger makes its token and id.
	Session sessions.Record
	Event   audit.Event
	// Token, when set, is a fresh Keycloak token to cache until GraceUntil.
	Token      *keycloak.Token
	GraceUntil time.Time
	// ResetLockout clears the key's failure counter.
	ResetLockout bool
	// UserVersion, when positive, is the user version the password was
	// checked against: the session is stored only if the user is still at
	// it (else ErrLoginSuperseded), so a login that raced a password change
	// leaves no session.
	UserVersion int64
}

// Failure is everything a failed password check writes.
type Failure struct {
	Key     users.Key
	Lockout users.Lockout // the new state: count, last failure, lock deadline
	Event   audit.Event
}
