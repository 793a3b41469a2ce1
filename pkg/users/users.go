// Package users is the local credential store: the primary password check
// while Keycloak is down, and the source of truth the sync replays into
// Keycloak.
//
// Every user item carries Version (raised on every credential or profile
// change) and KeycloakSyncedVersion (raised, never lowered, once Keycloak has
// that version). While Version > KeycloakSyncedVersion the user is "unsynced"
// and sits in a sparse index that reconciliation queries, so a change whose
// sync job was lost is found again without scanning the table.
//
// Users are keyed by userkey.Key: a package and a case-normalised username.
//
// Failed-login counters live in a separate lockout item under the same
// partition key, whether or not the user exists. Counting unknown usernames
// the same way as known ones means a lockout (429) never reveals which
// usernames exist. A login reserves its attempt on that item (Reserve: one
// atomic conditional write) before any password is hashed, so parallel
// requests cannot outrun the count. Request sources (client addresses,
// keyed-hashed by the caller) have failure counters of their own.
package users

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Sentinel errors; stores wrap them, so test with errors.Is.
var (
	ErrNotFound        = errors.New("users: not found")
	ErrAlreadyExists   = errors.New("users: already exists")
	ErrVersionConflict = errors.New("users: version conflict")
)

// DefaultFailureWindow is how long a failure counter lives after the last
// failure (Keycloak's brute-force failureResetTime default is 12 hours).
const DefaultFailureWindow = 12 * time.Hour

// Hash is a Keycloak-compatible password hash kept as the two JSON strings
// Keycloak's credential API takes, so the sync can import it without ever
// seeing a plaintext password. The store treats both as opaque.
type Hash struct {
	Algorithm      string // "argon2", "pbkdf2-sha512", ...
	SecretData     string
	CredentialData string
}

// NewHash is the stored form of a credential hash.
func NewHash(h credential.Hash) Hash {
	return Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}
}

// Verifier reads the stored hash back into one kcguard can verify a
// password against and import into Keycloak.
func (h Hash) Verifier() (credential.Hash, error) {
	return credential.ParseHash(h.SecretData, h.CredentialData)
}

// User is one local account.
type User struct {
	Package  string
	Username string
	Email    string
	// Attributes carry profile data migration filters work on
	// (e.g. "group" containing "ADMIN").
	Attributes map[string]string
	Enabled    bool
	Hash       Hash

	// Version is raised by one on every credential or profile change.
	Version int64
	// KeycloakSyncedVersion is the highest Version Keycloak is known to have.
	KeycloakSyncedVersion int64
	// KeycloakID is Keycloak's user id once known.
	KeycloakID string

	// Keycloak is the authority for what an administrator or Keycloak
	// itself decides (see docs/design.md); these fields record what
	// kcguard last learnt of it. Enabled=false above is Keycloak's disable.
	// They change through ApplyVerdict, never through Version.

	// HashStale: Keycloak reset the password, so Hash is an old password
	// that must not log anyone in offline; a Keycloak-verified login
	// replaces the hash and clears the flag.
	HashStale bool
	// RequiredActions are Keycloak's required actions last seen
	// (e.g. UPDATE_PASSWORD); Keycloak refuses logins until they are done.
	RequiredActions []string
	// KeycloakConfirmedAt is the last time Keycloak confirmed this user's
	// state (a login through Keycloak, a sync or a pull). The offline
	// window is measured from it. Logins refresh it coarsely (ConfirmEvery).
	KeycloakConfirmedAt time.Time

	CreatedAt         time.Time
	UpdatedAt         time.Time
	PasswordChangedAt time.Time
}

// Key returns the user's key.
func (u User) Key() userkey.Key { return userkey.Key{Package: u.Package, Username: u.Username} }

// KeycloakMustDecide reports whether Keycloak refused this user last time
// it was asked (disabled, password reset, required actions): then the
// local hash alone must log no one in, online or offline, until Keycloak
// accepts the user again.
func (u User) KeycloakMustDecide() bool {
	return !u.Enabled || u.HashStale || len(u.RequiredActions) > 0
}

// Unsynced reports whether Keycloak lags behind the local record.
func (u User) Unsynced() bool { return u.Version > u.KeycloakSyncedVersion }

// ConfirmEvery is how stale KeycloakConfirmedAt may get before a login
// through Keycloak refreshes it: the offline window is counted in days, so
// a coarse stamp keeps the normal login free of an extra write.
const ConfirmEvery = 5 * time.Minute

// ConfirmDue reports whether a Keycloak-confirmed login at now should
// refresh KeycloakConfirmedAt.
func (u User) ConfirmDue(now time.Time) bool {
	return now.Sub(u.KeycloakConfirmedAt) >= ConfirmEvery
}

// AnyVersion, as the expected version of ApplyVerdict, skips the version
// check: for facts that hold whatever kcguard changed meanwhile (Keycloak
// just confirmed the user is enabled).
const AnyVersion int64 = -1

// Verdict is what Keycloak decided about a user, to be recorded locally.
// Zero fields leave the stored value alone. It is not a kcguard change:
// applying it never raises Version and so never queues a sync.
type Verdict struct {
	Enabled   *bool
	HashStale *bool
	// RequiredActions, when non-nil, replaces the stored list (an empty
	// slice clears it).
	RequiredActions []string
	// ConfirmedAt, when not zero, becomes KeycloakConfirmedAt.
	ConfirmedAt time.Time
	// KeycloakID, when not empty, is recorded.
	KeycloakID string
	// Hash, when set, replaces the password hash with one of a password
	// Keycloak has just verified ("learn"); PasswordChangedAt becomes
	// ConfirmedAt. Only allowed on a user with no unsynced change, whose
	// Version Keycloak therefore already has.
	Hash *Hash
}

// apply returns u with the verdict recorded.
func (v Verdict) apply(u User) User {
	if v.Enabled != nil {
		u.Enabled = *v.Enabled
	}
	if v.HashStale != nil {
		u.HashStale = *v.HashStale
	}
	if v.RequiredActions != nil {
		u.RequiredActions = nil
		if len(v.RequiredActions) > 0 {
			u.RequiredActions = append([]string(nil), v.RequiredActions...)
		}
	}
	if !v.ConfirmedAt.IsZero() {
		u.KeycloakConfirmedAt = utc(v.ConfirmedAt)
	}
	if v.KeycloakID != "" {
		u.KeycloakID = v.KeycloakID
	}
	if v.Hash != nil {
		u.Hash = *v.Hash
		u.PasswordChangedAt, u.UpdatedAt = utc(v.ConfirmedAt), utc(v.ConfirmedAt)
	}
	return u
}

func (v Verdict) check(key userkey.Key) error {
	if v.Hash != nil && v.ConfirmedAt.IsZero() {
		return fmt.Errorf("users: verdict for %s: a learnt hash needs ConfirmedAt", key)
	}
	return nil
}

// Lockout is the failed-login state of a key, known user or not.
type Lockout struct {
	FailedAttempts int
	LastFailureAt  time.Time
	// LockedUntil is set by the caller from its delay policy.
	LockedUntil time.Time
}

// Locked reports whether logins must be refused at now.
func (l Lockout) Locked(now time.Time) bool { return now.Before(l.LockedUntil) }

// Attempt is a password check reserved before it runs (Store.Reserve).
//
// The reservation counts the attempt up front, so N parallel guesses are N
// counts before any of them is hashed, and a key admits at most its gate's
// worth of checks in flight: max_failures at first, then one more each time
// a lock has run out.
type Attempt struct {
	// Admitted reports whether the check may run. When false nothing was
	// counted and the caller refuses the attempt as locked.
	Admitted bool
	// N is the attempt's place in the key's unreleased count (1-based):
	// the caller's delay policy derives the lock from it when the check fails.
	N int
	// LockedUntil is the lock that refused the attempt. It is zero or past
	// when the refusal came from a check at the lock threshold still in
	// flight (its outcome decides the next lock).
	LockedUntil time.Time
}

// LostReservation is how long an admitted attempt at the gate may go
// without its outcome (FailAttempt, Release) before the next one is
// admitted: a crash or a dropped write between the reservation and the
// outcome must not leave the key refusing every login for the whole
// failure window. It outlasts any login function (timeouts of 10-20 s).
const LostReservation = 30 * time.Second

// Entry is what a login needs in one read: the user, if there is one, and
// the lockout state, which exists for unknown usernames as well.
type Entry struct {
	User    User
	Found   bool
	Lockout Lockout
}

// Profile is the non-credential part of a user a change may replace.
type Profile struct {
	Email      string
	Attributes map[string]string
	Enabled    bool
}

// Filter selects users in List. The zero Filter matches every user.
type Filter struct {
	// Attributes maps an attribute name to a substring its value must
	// contain, compared case-insensitively; every entry must match.
	Attributes map[string]string
	// EnabledOnly drops disabled users.
	EnabledOnly bool
}

// Match reports whether u passes the filter. Both stores filter with it, so
// they cannot disagree about what a filter means.
func (f Filter) Match(u User) bool {
	if f.EnabledOnly && !u.Enabled {
		return false
	}
	for name, want := range f.Attributes {
		got, ok := u.Attributes[name]
		if !ok || !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
			return false
		}
	}
	return true
}

// DefaultPageSize is used when a list call passes limit <= 0.
const DefaultPageSize = 100

// Store is the local credential store.
//
// List calls return at most limit users in username order and a cursor for
// the next page ("" when done). Cursors are opaque and interchangeable
// between stores.
type Store interface {
	// Get returns the user or ErrNotFound.
	Get(ctx context.Context, key userkey.Key) (User, error)
	// Lookup reads the user and the key's lockout state together (one round
	// trip). A missing user is not an error: Found is false.
	Lookup(ctx context.Context, key userkey.Key, now time.Time) (Entry, error)
	// Create stores a new user (ErrAlreadyExists if the key is taken).
	// Version 0 becomes 1; zero CreatedAt/UpdatedAt become now.
	//
	// Create, UpdatePassword and UpdateProfile treat an exact replay of a
	// write that already landed as success: that is what an SDK retry after
	// a lost response looks like, and it must not read as a conflict.
	Create(ctx context.Context, u User, now time.Time) (User, error)
	// UpdatePassword replaces the hash if the stored Version is still
	// expectedVersion (else ErrVersionConflict) and raises Version. A new
	// hash is no longer the stale one: HashStale is cleared.
	UpdatePassword(ctx context.Context, key userkey.Key, expectedVersion int64, h Hash, now time.Time) (User, error)
	// UpdateProfile replaces the profile under the same version check.
	UpdateProfile(ctx context.Context, key userkey.Key, expectedVersion int64, p Profile, now time.Time) (User, error)
	// MarkSynced records that Keycloak has version. It only ever raises
	// KeycloakSyncedVersion: an older or duplicate sync returns false, nil.
	// A version newer than the user's is ErrVersionConflict.
	MarkSynced(ctx context.Context, key userkey.Key, version int64) (bool, error)
	// SetKeycloakID records Keycloak's id; it is bookkeeping, not a change,
	// so Version stays.
	SetKeycloakID(ctx context.Context, key userkey.Key, id string) error
	// ApplyVerdict records Keycloak's decision about the user if the stored
	// Version is still expectedVersion (AnyVersion: unconditionally), else
	// ErrVersionConflict; ErrNotFound if the user is gone. Version and
	// KeycloakSyncedVersion stay, so nothing is queued for Keycloak. A
	// verdict with a Hash also fails with ErrVersionConflict on a user with
	// an unsynced change: kcguard's pending change wins over a learnt hash.
	ApplyVerdict(ctx context.Context, key userkey.Key, expectedVersion int64, v Verdict) (User, error)
	// Delete removes the user (ErrNotFound if absent). Its lockout state stays.
	Delete(ctx context.Context, key userkey.Key) error

	// Lockout returns the key's lockout state; counters older than the
	// failure window read as zero.
	Lockout(ctx context.Context, key userkey.Key, now time.Time) (Lockout, error)
	// Reserve counts one attempt for key before its password is checked, in
	// one atomic write, and admits it only while the key is not locked and
	// fewer than its gate (maxFailures at first) attempts are counted, or
	// the last admitted attempt is older than LostReservation (its outcome
	// was never written). A refusal counts nothing.
	Reserve(ctx context.Context, key userkey.Key, maxFailures int, now time.Time) (Attempt, error)
	// FailAttempt records that the reserved attempt a failed its check. A
	// non-zero lockedUntil locks the key (never shortening a longer lock)
	// and lets one more attempt through once it has run out.
	FailAttempt(ctx context.Context, key userkey.Key, a Attempt, lockedUntil, now time.Time) error
	// Release clears the key's count after a check that passed, unless the
	// key is locked at now: a success racing a lock never lifts it. It
	// reports whether it cleared.
	Release(ctx context.Context, key userkey.Key, now time.Time) (bool, error)

	// SourceFailures returns the failure state of a request source (an
	// opaque id, e.g. a keyed hash of the client IP); counters older than
	// the source window read as zero.
	SourceFailures(ctx context.Context, source string, now time.Time) (Lockout, error)
	// RecordSourceFailure counts a failed check from source and sets its
	// lock to l.LockedUntil when that is later than the stored one.
	RecordSourceFailure(ctx context.Context, source string, l Lockout, now time.Time) error

	// ListUnsynced lists the package's users with Version > KeycloakSyncedVersion.
	ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]User, string, error)
	// List lists the package's users that match f (for migration).
	List(ctx context.Context, pkg string, f Filter, limit int, cursor string) ([]User, string, error)
}

// Option configures a store.
type Option func(*options)

type options struct {
	failureWindow time.Duration
	sourceWindow  time.Duration
}

// DefaultSourceWindow is how long a source's failure counter lives after
// its last failure or lock.
const DefaultSourceWindow = time.Hour

// WithSourceWindow sets how long source failure counters live (default
// DefaultSourceWindow).
func WithSourceWindow(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.sourceWindow = d
		}
	}
}

// WithFailureWindow sets how long failure counters live after the last
// failure or lock (default DefaultFailureWindow). Lock delays must be
// shorter than the window.
func WithFailureWindow(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.failureWindow = d
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{failureWindow: DefaultFailureWindow, sourceWindow: DefaultSourceWindow}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// prepareNew fills the defaults of a user being created.
func prepareNew(u User, now time.Time) (User, error) {
	k, err := u.Key().Normalize()
	if err != nil {
		return u, err
	}
	u.Package, u.Username = k.Package, k.Username
	if u.Version == 0 {
		u.Version = 1
	}
	if u.KeycloakSyncedVersion > u.Version || u.KeycloakSyncedVersion < 0 {
		return u, fmt.Errorf("users: create %s: synced version %d above version %d", k, u.KeycloakSyncedVersion, u.Version)
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = now
	}
	if u.PasswordChangedAt.IsZero() && u.Hash.Algorithm != "" {
		u.PasswordChangedAt = now
	}
	u.CreatedAt, u.UpdatedAt, u.PasswordChangedAt = utc(u.CreatedAt), utc(u.UpdatedAt), utc(u.PasswordChangedAt)
	u.KeycloakConfirmedAt = utc(u.KeycloakConfirmedAt)
	u.Attributes = maps.Clone(u.Attributes)
	if len(u.RequiredActions) == 0 {
		u.RequiredActions = nil
	}
	return u, nil
}

// checkSource refuses an empty or oversize source id.
func checkSource(source string) error {
	if source == "" || len(source) > userkey.MaxNameLength {
		return fmt.Errorf("%w: source %.16q", userkey.ErrInvalid, source)
	}
	return nil
}

// laterLock is the later of a stored lock and a new one: locks only grow.
func laterLock(cur, next time.Time) time.Time {
	if next.After(cur) {
		return next
	}
	return cur
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func limitOrDefault(limit int) int {
	if limit <= 0 {
		return DefaultPageSize
	}
	return limit
}

// Cursors are the last username returned, base64url-encoded so callers treat
// them as opaque; both stores resume strictly after it.
func encodeCursor(username string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(username))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", fmt.Errorf("users: bad cursor: %w", err)
	}
	return string(b), nil
}

// A write whose response is lost is retried by the SDK; the retry then finds
// its own first attempt and fails its condition. These recognise that case
// so a replay of exactly the same change succeeds instead of reporting a
// conflict. A real conflict never matches: it carries another hash, another
// profile or another timestamp.
func sameWrite(cur, u User) bool {
	return reflect.DeepEqual(toItem(cur), toItem(u))
}

func samePassword(h Hash, now time.Time) func(User) bool {
	return func(cur User) bool { return cur.Hash == h && cur.PasswordChangedAt.Equal(now) }
}

func sameProfile(p Profile, now time.Time) func(User) bool {
	return func(cur User) bool {
		return cur.Email == p.Email && cur.Enabled == p.Enabled && maps.Equal(cur.Attributes, p.Attributes) && cur.UpdatedAt.Equal(now)
	}
}
