package auth

import (
	"context"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Users is what the flows need from the local credential store.
type Users interface {
	// Lookup reads the user and its lockout state in one round trip.
	Lookup(ctx context.Context, key userkey.Key, now time.Time) (users.Entry, error)
	// UpdatePassword stores a new hash under an optimistic version check
	// and raises Version (also used with the same hash to mark drift).
	UpdatePassword(ctx context.Context, key userkey.Key, expectedVersion int64, h users.Hash, now time.Time) (users.User, error)
	// Create stores a user learnt from Keycloak (ErrAlreadyExists if taken).
	Create(ctx context.Context, u users.User, now time.Time) (users.User, error)
	// ApplyVerdict records what Keycloak decided, without raising Version.
	ApplyVerdict(ctx context.Context, key userkey.Key, expectedVersion int64, v users.Verdict) (users.User, error)
	// Reserve counts an attempt atomically before its password is checked
	// and refuses it while the key is locked (users.Store.Reserve).
	Reserve(ctx context.Context, key userkey.Key, maxFailures int, now time.Time) (users.Attempt, error)
	// Release clears the key's count after a check that passed, unless a
	// lock was set meanwhile; for outcomes that write no session.
	Release(ctx context.Context, key userkey.Key, now time.Time) (bool, error)
	// SourceFailures reads a request source's failure state.
	SourceFailures(ctx context.Context, source string, now time.Time) (users.Lockout, error)
}

// KeycloakAccounts explains a refused password grant through Keycloak's
// admin API. Only the rare path where Keycloak refuses a password the
// local store accepts uses it.
type KeycloakAccounts interface {
	keycloak.AccountReader
	FindUser(ctx context.Context, pkg, username string) (keycloak.User, error)
}

// LoginReader reads what a login needs before the password check, and the
// cached Keycloak token it may fall back on after, in one round trip where
// the store allows (the DynamoDB login record batches them). Optional: without
// one the service reads through Users and TokenCache.
type LoginReader interface {
	// ReadLogin reads the user (Entry.Lockout is not filled: the
	// reservation is the lockout's only authority) and, when source is not
	// empty, the source's failure state.
	ReadLogin(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.Read, error)
}

// FirstReserver reserves a key's first attempt on record and checks the
// request source's throttle in one atomic step, so a login can run it
// alongside ReadLogin: one round trip less before the password check for
// every user without failures on record. Optional: the LoginReader may
// offer it (the DynamoDB login record does); without it every attempt is
// reserved after the read (Users.Reserve).
type FirstReserver interface {
	ReserveFirst(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.FirstAttempt, error)
}

// PasswordHasher makes and checks local hashes (*credential.Hasher; tests
// count the checks at this seam).
type PasswordHasher interface {
	Hash(password string) (credential.Hash, error)
	Verify(stored credential.Hash, password string) (bool, error)
	VerifyDummy(password string) bool
	NeedsRehash(stored credential.Hash) bool
	Params() credential.Params
}

// PasswordGranter is the Keycloak tier of a login.
type PasswordGranter interface {
	PasswordGrant(ctx context.Context, pkg, username, password string) (keycloak.Token, error)
}

// Breaker guards Keycloak fleet-wide.
type Breaker interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// ClosedBreaker is a Breaker that can tell, cheaply, that it is closed
// (the fleet breaker can). Optional: without it the breaker counts as
// closed.
type ClosedBreaker interface {
	Closed(ctx context.Context) bool
}

// TokenCache holds the last Keycloak token of each user for outages.
type TokenCache interface {
	// Get returns the cached token if it is still within its grace period.
	Get(ctx context.Context, key userkey.Key, now time.Time) (keycloak.Token, bool, error)
	// Forget deletes the user's cached token (a password change ends it).
	Forget(ctx context.Context, key userkey.Key) error
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

// Recorder stores what an authentication attempt changed. Its DynamoDB
// implementation writes each outcome in ONE round trip (a transaction); the
// session cap's count rides in it (ReadLogin reads the user's session
// count), so every login path stays within three DynamoDB calls.
type Recorder interface {
	// LoginSucceeded creates the session (returning its token, which exists
	// nowhere else) and stores the audit event, caches a fresh Keycloak
	// token, and releases the attempt's reservation (never lifting a lock).
	// It stores nothing and returns loginrecord.ErrSuperseded when the user
	// moved past Success.UserVersion or the user's sessions were revoked at
	// or after the session's CreatedAt.
	LoginSucceeded(ctx context.Context, s loginrecord.Success) (token string, session sessions.Record, err error)
	// LoginFailed records a failed check (the attempt was counted when it
	// was reserved): the lock the policy derived from the attempt's
	// number, the source's failure, and the audit event.
	LoginFailed(ctx context.Context, f loginrecord.Failure) error
	// Audit stores an audit event on its own.
	Audit(ctx context.Context, e audit.Event) error
}

// storeReads is the LoginReader over the plain ports: one call each.
type storeReads struct {
	users  Users
	tokens TokenCache
}

func (r storeReads) ReadLogin(ctx context.Context, key userkey.Key, source string, now time.Time) (loginrecord.Read, error) {
	e, err := r.users.Lookup(ctx, key, now)
	if err != nil {
		return loginrecord.Read{}, err
	}
	e.Lockout = users.Lockout{} // the reservation decides, not this read
	read := loginrecord.Read{Entry: e, CachedToken: func(ctx context.Context) (keycloak.Token, bool, error) {
		return r.tokens.Get(ctx, key, now)
	}}
	if source != "" {
		if read.Source, err = r.users.SourceFailures(ctx, source, now); err != nil {
			return loginrecord.Read{}, err
		}
	}
	return read, nil
}
