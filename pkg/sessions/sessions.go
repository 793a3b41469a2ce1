// Package sessions stores kcguard login sessions.
//
// A session token is 256 random bits, base64url-encoded, followed by "." and
// the user hint (below); it is handed to the caller once by Create and never
// stored. Two values are derived from the whole token:
//
//   - the public session ID, base64url(SHA-256("kcguard-session-id\x00" || token)[:12]),
//     which is the table key and what DELETE /sessions/{id} and the session
//     list show; it never starts with '-', so it is never read as a flag;
//   - the token hash, hex(SHA-256(token)), stored in the item and compared in
//     constant time on every lookup.
//
// Deriving the ID from the token makes GetByID, Revoke and Touch
// single-item operations on the table key, with no ID index to keep. Knowing
// an ID reveals nothing about the token (it is a hash of it), and the stored
// hash is a different hash, so a table dump cannot be replayed as tokens
// either.
//
// Revocation is O(1): each user has one state item in the sessions table,
// "user#<hint>", holding ValidAfter and Seq. Revoking all of a user's
// sessions (password change, logout everywhere) is ONE write that raises
// ValidAfter: every session created at or before it is dead, however many
// there are, with no walk over the eventually consistent by_user index.
// Every login takes the next Seq, and a session more than MaxPerUser logins
// old is dead too, which caps the live sessions per user with no write at
// all. The user hint, base64url(SHA-256("kcguard-session-user\x00" ||
// "package#username")[:12]), is in the token so a lookup reads the session
// and its user's state in one BatchGetItem: the authorizer stays at one
// round trip. A hint that does not match the session's user is a forged
// token and reads as not found.
//
// A session is live until the earlier of its absolute expiry (ExpiresAt)
// and its idle expiry (IdleExpiresAt, slid forward by Touch). Items are
// purged at the absolute expiry: DynamoDB TTL and DeleteExpired both key on
// it, so storage is bounded by the absolute lifetime while reads refuse an
// idle-expired session at once.
package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/userkey"
)

// Sentinel errors; stores wrap them, so test with errors.Is.
var (
	ErrNotFound      = errors.New("sessions: not found")
	ErrExpired       = errors.New("sessions: expired")
	ErrRevoked       = errors.New("sessions: revoked")
	ErrAlreadyExists = errors.New("sessions: already exists")
	ErrInvalid       = errors.New("sessions: invalid session")
	// ErrSuperseded refuses a session whose login began before the user's
	// sessions were last revoked (a password change or logout everywhere
	// won the race): the login must be retried.
	ErrSuperseded = errors.New("sessions: the user's sessions were revoked after this login began")
)

// AuthMode says which tier authenticated the login that made the session.
type AuthMode string

const (
	AuthKeycloak AuthMode = "keycloak" // Keycloak accepted the password
	AuthCached   AuthMode = "cached"   // Keycloak down; a cached token within its grace period
	AuthLocal    AuthMode = "local"    // local credential store only
)

// Record is one session. It never holds the token.
type Record struct {
	ID       string
	Package  string
	Username string // normalised like userkey.NormalizeUsername
	AuthMode AuthMode

	CreatedAt  time.Time
	LastSeenAt time.Time
	// ExpiresAt is the absolute end of the session.
	ExpiresAt time.Time
	// IdleExpiresAt ends the session early unless Touch slides it; zero
	// means no idle limit. Never reported later than ExpiresAt.
	IdleExpiresAt time.Time

	SourceIP  string
	UserAgent string

	// Seq is the session's place among its user's logins (1, 2, ...),
	// given by the store at Create; 0 for sessions older than the cap.
	Seq int64

	// Revoked is set by Revoke, and on reading by the user's state: a
	// session created at or before the user's last revocation (RevokedAt is
	// then that revocation) or evicted by MaxPerUser newer sessions.
	Revoked   bool
	RevokedAt time.Time
}

// Status reports why the session cannot be used at now, or nil if it can.
func (r Record) Status(now time.Time) error {
	switch {
	case r.Revoked:
		return ErrRevoked
	case !now.Before(r.ExpiresAt):
		return ErrExpired
	case !r.IdleExpiresAt.IsZero() && !now.Before(r.IdleExpiresAt):
		return ErrExpired
	}
	return nil
}

// Active reports whether the session can be used at now.
func (r Record) Active(now time.Time) bool { return r.Status(now) == nil }

// EndsAt is when the session expires unless Touch slides its idle expiry:
// the earlier of the absolute and the idle expiry.
func (r Record) EndsAt() time.Time {
	if !r.IdleExpiresAt.IsZero() && r.IdleExpiresAt.Before(r.ExpiresAt) {
		return r.IdleExpiresAt
	}
	return r.ExpiresAt
}

// Store keeps sessions.
type Store interface {
	// Create stores rec under a fresh token and returns the token (the only
	// time it exists outside the caller) and the stored record. CreatedAt
	// and ExpiresAt are required; LastSeenAt defaults to CreatedAt and a
	// zero IdleExpiresAt to CreatedAt plus the store's idle timeout. It
	// gives the session the user's next Seq, and refuses with ErrSuperseded
	// when the user's sessions were revoked at or after CreatedAt.
	Create(ctx context.Context, rec Record) (token string, created Record, err error)
	// GetByToken returns the live session for token: ErrNotFound for an
	// unknown or malformed token, ErrRevoked or ErrExpired otherwise.
	GetByToken(ctx context.Context, token string, now time.Time) (Record, error)
	// GetByID returns the session whatever its state (ErrNotFound if purged).
	GetByID(ctx context.Context, id string) (Record, error)
	// ListByUser returns the user's stored sessions, newest first,
	// including revoked and expired ones not yet purged (see Record.Active).
	ListByUser(ctx context.Context, pkg, username string) ([]Record, error)
	// Revoke ends the session; revoking twice is not an error.
	Revoke(ctx context.Context, id string, now time.Time) error
	// RevokeAllForUser ends every session of the user created at or before
	// now, in one write to the user's state; a login that began before now
	// and has not stored its session yet gets ErrSuperseded. It returns
	// how many sessions were live just before (informational: read from
	// the by_user index, which may lag).
	RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error)
	// Touch records activity and slides the idle expiry, but writes only
	// when the last recorded activity is older than the touch interval, so
	// a busy client costs one write a minute, not one per request. It
	// reports whether it wrote; false also covers a session that is gone,
	// revoked or expired (callers have checked it with GetByToken).
	Touch(ctx context.Context, id string, now time.Time) (bool, error)
	// DeleteExpired purges up to limit sessions whose absolute expiry is
	// past, oldest first, and returns how many it deleted.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)
}

// Defaults for Options.
const (
	DefaultTouchInterval  = time.Minute
	DefaultExpiryLookback = 48 * time.Hour
	DefaultMaxPerUser     = 10
)

// Option configures a store.
type Option func(*options)

type options struct {
	idleTimeout    time.Duration
	touchInterval  time.Duration
	expiryLookback time.Duration
	maxPerUser     int
}

// WithMaxPerUser caps the live sessions of one user: a login evicts the
// user's oldest session beyond n. Zero means DefaultMaxPerUser, a negative
// n no cap.
func WithMaxPerUser(n int) Option {
	return func(o *options) {
		if n != 0 {
			o.maxPerUser = n
		}
	}
}

// WithIdleTimeout sets the sliding idle limit (default 0: none).
func WithIdleTimeout(d time.Duration) Option { return func(o *options) { o.idleTimeout = d } }

// WithTouchInterval sets how stale LastSeenAt must be before Touch writes
// (default DefaultTouchInterval).
func WithTouchInterval(d time.Duration) Option { return func(o *options) { o.touchInterval = d } }

// WithExpiryLookback sets how far back DeleteExpired looks (default
// DefaultExpiryLookback). Older sessions are left to DynamoDB TTL, which
// deletes within about two days; reads ignore them meanwhile.
func WithExpiryLookback(d time.Duration) Option { return func(o *options) { o.expiryLookback = d } }

func buildOptions(opts []Option) options {
	o := options{touchInterval: DefaultTouchInterval, expiryLookback: DefaultExpiryLookback, maxPerUser: DefaultMaxPerUser}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

const (
	tokenBytes = 32
	randomLen  = 43 // base64url of tokenBytes
	hintLen    = 16 // base64url of 12 bytes
)

// newToken returns a fresh token for the user's sessions with its ID and
// hash. IDs starting with '-' are drawn again (1 in 64): an operator passes
// IDs to the CLI, where they would read as flags.
func newToken(pkg, username string) (token, id, hash string, err error) {
	b := make([]byte, tokenBytes)
	for {
		if _, err := rand.Read(b); err != nil {
			return "", "", "", fmt.Errorf("session token: %w", err)
		}
		token = base64.RawURLEncoding.EncodeToString(b) + "." + userHint(pkg, username)
		id, hash, _, _ = derive(token)
		if id[0] != '-' {
			return token, id, hash, nil
		}
	}
}

// derive computes a token's ID, hash and user hint; ok is false for
// anything that is not a well-formed token, so garbage never reaches the table.
func derive(token string) (id, hash, hint string, ok bool) {
	random, hint, found := strings.Cut(token, ".")
	if !found || len(random) != randomLen || len(hint) != hintLen {
		return "", "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(random)
	if err != nil || len(b) != tokenBytes {
		return "", "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(hint); err != nil {
		return "", "", "", false
	}
	h := sha256.Sum256([]byte(token))
	idSum := sha256.Sum256(append([]byte("kcguard-session-id\x00"), token...))
	return base64.RawURLEncoding.EncodeToString(idSum[:12]), hex.EncodeToString(h[:]), hint, true
}

// userHint names a user's state item without putting the username in
// every token.
func userHint(pkg, username string) string {
	sum := sha256.Sum256([]byte("kcguard-session-user\x00" + userKey(pkg, username)))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// userState is what the user's state item holds.
type userState struct {
	// ValidAfter ends every session created at or before it.
	ValidAfter time.Time
	// Seq is the number of sessions the user was given.
	Seq int64
}

// judge applies the user's state to one of the user's sessions.
func (u userState) judge(r Record, o options) Record {
	switch {
	case r.Revoked:
	case !u.ValidAfter.IsZero() && !r.CreatedAt.After(u.ValidAfter):
		r.Revoked, r.RevokedAt = true, u.ValidAfter.UTC()
	case o.maxPerUser > 0 && r.Seq > 0 && u.Seq-r.Seq >= int64(o.maxPerUser):
		r.Revoked = true // evicted by newer logins; when is not recorded
	}
	return r
}

// admits reports whether a login that began at created may still store
// its session.
func (u userState) admits(created time.Time) bool {
	return u.ValidAfter.IsZero() || created.After(u.ValidAfter)
}

// idLength is the length of a public session ID (12 bytes, base64url).
const idLength = 16

// validID screens IDs from requests before they reach the table, where an
// empty or oversize key is a validation error rather than "not found".
func validID(id string) bool {
	if len(id) != idLength {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

func hashMatches(stored, computed string) bool {
	return subtle.ConstantTimeCompare([]byte(stored), []byte(computed)) == 1
}

// prepare checks a record for Create, fills its defaults and draws its
// token (returned with the ID set in the record).
func prepare(rec Record, o options) (Record, string, string, error) {
	rec.Username = userkey.NormalizeUsername(rec.Username)
	if _, err := userkey.New(rec.Package, rec.Username); err != nil {
		return Record{}, "", "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if rec.CreatedAt.IsZero() || !rec.ExpiresAt.After(rec.CreatedAt) {
		return Record{}, "", "", fmt.Errorf("%w: needs CreatedAt before ExpiresAt", ErrInvalid)
	}
	if rec.LastSeenAt.IsZero() {
		rec.LastSeenAt = rec.CreatedAt
	}
	if rec.IdleExpiresAt.IsZero() && o.idleTimeout > 0 {
		rec.IdleExpiresAt = rec.LastSeenAt.Add(o.idleTimeout)
	}
	rec.Revoked, rec.RevokedAt = false, time.Time{}
	token, id, hash, err := newToken(rec.Package, rec.Username)
	if err != nil {
		return Record{}, "", "", err
	}
	rec.ID = id
	return normalize(rec), token, hash, nil
}

// normalize makes records from both stores compare alike: UTC, and the
// idle expiry capped at the absolute one.
func normalize(r Record) Record {
	for _, t := range []*time.Time{&r.CreatedAt, &r.LastSeenAt, &r.ExpiresAt, &r.IdleExpiresAt, &r.RevokedAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	if r.IdleExpiresAt.After(r.ExpiresAt) {
		r.IdleExpiresAt = r.ExpiresAt
	}
	return r
}

// userKey is the by_user index partition: the users package's key rule.
func userKey(pkg, username string) string {
	return userkey.Key{Package: pkg, Username: userkey.NormalizeUsername(username)}.String()
}
