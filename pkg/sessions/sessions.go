// Package sessions stores kcguard login sessions.
//
// A session token is 256 random bits, base64url-encoded, handed to the
// caller once by Create and never stored. Two values are derived from it:
//
//   - the public session ID, base64url(SHA-256("kcguard-session-id\x00" || token)[:12]),
//     which is the table key and what DELETE /sessions/{id} and the session
//     list show;
//   - the token hash, hex(SHA-256(token)), stored in the item and compared in
//     constant time on every lookup.
//
// Deriving the ID from the token makes GetByToken, GetByID, Revoke and Touch
// single-item operations on the table key, with no ID index to keep and no
// extra round trip for the authorizer. Knowing an ID reveals nothing about
// the token (it is a hash of it), and the stored hash is a different hash,
// so a table dump cannot be replayed as tokens either.
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
	"time"

	"github.com/kcguard/kcguard/pkg/users"
)

// Sentinel errors; stores wrap them, so test with errors.Is.
var (
	ErrNotFound      = errors.New("sessions: not found")
	ErrExpired       = errors.New("sessions: expired")
	ErrRevoked       = errors.New("sessions: revoked")
	ErrAlreadyExists = errors.New("sessions: already exists")
	ErrInvalid       = errors.New("sessions: invalid session")
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
	Username string // normalised like users.NormalizeUsername
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

// Store keeps sessions.
type Store interface {
	// Create stores rec under a fresh token and returns the token (the only
	// time it exists outside the caller) and the stored record. CreatedAt
	// and ExpiresAt are required; LastSeenAt defaults to CreatedAt and a
	// zero IdleExpiresAt to CreatedAt plus the store's idle timeout.
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
	// RevokeAllForUser revokes the user's live sessions except exceptID
	// ("" for none) and returns how many it revoked.
	RevokeAllForUser(ctx context.Context, pkg, username, exceptID string, now time.Time) (int, error)
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
)

// Option configures a store.
type Option func(*options)

type options struct {
	idleTimeout    time.Duration
	touchInterval  time.Duration
	expiryLookback time.Duration
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
	o := options{touchInterval: DefaultTouchInterval, expiryLookback: DefaultExpiryLookback}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

const tokenBytes = 32

// newToken returns a fresh token with its ID and hash.
func newToken() (token, id, hash string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	id, hash, _ = derive(token)
	return token, id, hash, nil
}

// derive computes a token's ID and hash; ok is false for anything that is
// not a well-formed token, so garbage never reaches the table.
func derive(token string) (id, hash string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenBytes {
		return "", "", false
	}
	h := sha256.Sum256([]byte(token))
	idSum := sha256.Sum256(append([]byte("kcguard-session-id\x00"), token...))
	return base64.RawURLEncoding.EncodeToString(idSum[:12]), hex.EncodeToString(h[:]), true
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

// prepare checks a record for Create and fills its defaults.
func prepare(rec Record, id string, o options) (Record, error) {
	rec.ID = id
	rec.Username = users.NormalizeUsername(rec.Username)
	if _, err := users.NewKey(rec.Package, rec.Username); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if rec.CreatedAt.IsZero() || !rec.ExpiresAt.After(rec.CreatedAt) {
		return Record{}, fmt.Errorf("%w: needs CreatedAt before ExpiresAt", ErrInvalid)
	}
	if rec.LastSeenAt.IsZero() {
		rec.LastSeenAt = rec.CreatedAt
	}
	if rec.IdleExpiresAt.IsZero() && o.idleTimeout > 0 {
		rec.IdleExpiresAt = rec.LastSeenAt.Add(o.idleTimeout)
	}
	rec.Revoked, rec.RevokedAt = false, time.Time{}
	return normalize(rec), nil
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
	return users.Key{Package: pkg, Username: users.NormalizeUsername(username)}.String()
}
