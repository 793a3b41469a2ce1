// Package audit keeps the audit trail: one record per login or password
// change attempt, with the auth mode and outcome, kept for a retention
// period (DynamoDB TTL) and read back per user, newest first.
//
// Writing is one PutItem with no condition: the event ID is chosen before
// the call, so an SDK retry rewrites the same item instead of adding a
// duplicate.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// ErrInvalid means an event lacks what makes it findable.
var ErrInvalid = errors.New("audit: invalid event")

// Action is what was attempted.
type Action string

const (
	ActionLogin          Action = "login"
	ActionPasswordChange Action = "password_change"
	ActionLogout         Action = "logout"
	ActionSessionRevoke  Action = "session_revoke"
)

// Outcome is how it ended.
type Outcome string

const (
	OutcomeSuccess            Outcome = "success"
	OutcomeInvalidCredentials Outcome = "invalid_credentials"
	OutcomeLocked             Outcome = "locked"
	// OutcomeThrottled: the request's source had failed too often across
	// usernames; nothing was checked or counted for the user.
	OutcomeThrottled      Outcome = "throttled"
	OutcomePolicyRejected Outcome = "policy_rejected"
	OutcomeConflict       Outcome = "conflict"
	// OutcomeOfflineDisabled: Keycloak was unreachable and the package does
	// not allow offline (local or cached) logins.
	OutcomeOfflineDisabled Outcome = "offline_disabled"
	// Keycloak's decisions (docs/design.md, "Keycloak is the authority").
	OutcomeAccountDisabled      Outcome = "account_disabled"
	OutcomeActionRequired       Outcome = "action_required"
	OutcomeOfflineWindowExpired Outcome = "offline_window_expired"
	OutcomeError                Outcome = "error"
)

// Event is one audit record. It never holds a password or token.
type Event struct {
	// ID is unique per event; Record fills it when empty.
	ID        string
	Package   string
	Username  string // normalised like userkey.NormalizeUsername
	Action    Action
	AuthMode  string // "keycloak", "cached", "local" or "" when no login happened
	Outcome   Outcome
	SourceIP  string
	UserAgent string
	At        time.Time
	RequestID string
}

// Writer records events; services depend on this alone.
type Writer interface {
	Record(ctx context.Context, e Event) error
}

// Store is a Writer that can also read a user's trail.
type Store interface {
	Writer
	// ListByUser returns up to limit of the user's events, newest first
	// (limit <= 0: DefaultListLimit). Events past retention may still show
	// until DynamoDB TTL removes them.
	ListByUser(ctx context.Context, pkg, username string, limit int) ([]Event, error)
}

// PackageReader reads a package's events over a time range (reports).
type PackageReader interface {
	// ListByPackage calls each for every event of pkg at or after from and
	// before to, oldest hour first (in time order within an hour).
	ListByPackage(ctx context.Context, pkg string, from, to time.Time, each func(Event) error) error
}

var (
	_ PackageReader = (*Dynamo)(nil)
	_ PackageReader = (*Memory)(nil)
)

// Defaults.
const (
	DefaultRetention = 90 * 24 * time.Hour
	DefaultListLimit = 50
)

// Option configures a store.
type Option func(*options)

type options struct{ retention time.Duration }

// WithRetention sets how long events are kept (default DefaultRetention).
func WithRetention(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.retention = d
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{retention: DefaultRetention}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// userKey is the partition of a user's trail, by the users package's key rule.
func userKey(pkg, username string) (string, error) {
	k, err := userkey.New(pkg, username)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return k.String(), nil
}

func prepare(e Event) (Event, string, error) {
	e.Username = userkey.NormalizeUsername(e.Username)
	k, err := userKey(e.Package, e.Username)
	if err != nil {
		return Event{}, "", err
	}
	if e.Action == "" || e.Outcome == "" || e.At.IsZero() {
		return Event{}, "", fmt.Errorf("%w: needs action, outcome and time", ErrInvalid)
	}
	if e.ID == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return Event{}, "", err
		}
		e.ID = hex.EncodeToString(b)
	}
	e.At = e.At.UTC()
	return e, k, nil
}

// sortKey orders a user's events by time, the ID breaking ties.
func sortKey(e Event) string { return e.At.Format(ddbitem.SortableTime) + "#" + e.ID }

// packageHour is the by-package index partition: the package and UTC hour.
func packageHour(pkg string, t time.Time) string { return pkg + "#" + t.UTC().Format("2006-01-02T15") }

// hours lists the UTC hours that [from, to) touches.
func hours(from, to time.Time) []time.Time {
	var out []time.Time
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		out = append(out, h)
	}
	return out
}

func limitOrDefault(limit int) int {
	if limit <= 0 {
		return DefaultListLimit
	}
	return limit
}
