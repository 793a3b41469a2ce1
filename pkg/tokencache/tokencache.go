// Package tokencache keeps the last Keycloak tokens of each user so logins
// can still hand out a token (auth_mode=cached) while Keycloak is down.
//
// An entry is usable until GraceUntil, which is the time of the last
// successful Keycloak login or refresh plus token_grace_period_hours.
// Reads refuse entries past it even before DynamoDB TTL removes them.
//
// Token material is encrypted at rest with envelope encryption (see
// Envelope): the table holds only ciphertext, the KMS-encrypted data key
// and non-secret timestamps. The ciphertext is bound to the entry's key and
// grace time, so an item copied to another user or given a longer grace
// does not decrypt.
package tokencache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/userkey"
)

// Sentinel errors; stores wrap them, so test with errors.Is.
var (
	ErrNotFound = errors.New("tokencache: not found")
	ErrInvalid  = errors.New("tokencache: invalid entry")
)

// Record is one user's cached Keycloak tokens.
type Record struct {
	Package  string
	Username string // normalised like userkey.NormalizeUsername

	AccessToken  string
	RefreshToken string
	TokenType    string

	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	// CachedAt is when Keycloak last issued these tokens.
	CachedAt time.Time
	// GraceUntil ends the entry's use; zero on Put means CachedAt plus the
	// store's grace period.
	GraceUntil time.Time
}

// Store keeps cached tokens.
type Store interface {
	// Put stores or replaces the user's entry.
	Put(ctx context.Context, rec Record) error
	// Get returns the entry, or ErrNotFound when there is none or it is
	// past its grace period at now.
	Get(ctx context.Context, pkg, username string, now time.Time) (Record, error)
	// Delete removes the entry; a missing entry is not an error.
	Delete(ctx context.Context, pkg, username string) error
	// ListExpiring lists up to limit entries whose access token expires at
	// or before before (within the lookback window), soonest first, for
	// refresh-ahead. The caller re-Puts a refreshed entry (which moves it
	// out of the list) or Deletes one Keycloak refuses, so failures cannot
	// starve the rest.
	ListExpiring(ctx context.Context, before time.Time, limit int) ([]Record, error)
	// DeleteExpired removes up to limit entries past their grace period,
	// oldest first, and returns how many it removed.
	DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error)
}

// Defaults for Options.
const (
	DefaultGracePeriod    = 24 * time.Hour
	DefaultExpiryLookback = 48 * time.Hour
)

// Option configures a store.
type Option func(*options)

type options struct {
	grace    time.Duration
	lookback time.Duration
}

// WithGracePeriod sets token_grace_period_hours (default DefaultGracePeriod).
func WithGracePeriod(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.grace = d
		}
	}
}

// WithExpiryLookback sets how far back ListExpiring and DeleteExpired look
// (default DefaultExpiryLookback); older entries are left to DynamoDB TTL.
func WithExpiryLookback(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lookback = d
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{grace: DefaultGracePeriod, lookback: DefaultExpiryLookback}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func entryKey(pkg, username string) (string, error) {
	k, err := userkey.New(pkg, username)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return k.String(), nil
}

func prepare(rec Record, o options) (Record, error) {
	rec.Username = userkey.NormalizeUsername(rec.Username)
	if _, err := entryKey(rec.Package, rec.Username); err != nil {
		return Record{}, err
	}
	if rec.AccessToken == "" || rec.CachedAt.IsZero() {
		return Record{}, fmt.Errorf("%w: needs an access token and CachedAt", ErrInvalid)
	}
	if rec.GraceUntil.IsZero() {
		rec.GraceUntil = rec.CachedAt.Add(o.grace)
	}
	return normalize(rec), nil
}

func normalize(r Record) Record {
	for _, t := range []*time.Time{&r.AccessExpiresAt, &r.RefreshExpiresAt, &r.CachedAt, &r.GraceUntil} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	return r
}

// usable reports whether the entry is within its grace period at now.
func usable(r Record, now time.Time) bool { return now.Before(r.GraceUntil) }
