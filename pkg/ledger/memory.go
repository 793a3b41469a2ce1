package ledger

import (
	"context"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// Stores is the ledger over any stores, one call each (no transaction):
// for the in-memory fakes in unit tests and local tools.
type Stores struct {
	Users    users.Store
	Sessions sessions.Store
	Tokens   tokencache.Store
	Trail    audit.Writer
}

var _ auth.Ledger = Stores{}

// LoginSucceeded implements auth.Ledger.
func (l Stores) LoginSucceeded(ctx context.Context, s auth.Success) (string, sessions.Record, error) {
	if s.ResetLockout {
		if err := l.Users.ResetFailures(ctx, keyOf(s.Event)); err != nil {
			return "", sessions.Record{}, err
		}
	}
	if s.Verdict != nil {
		if _, err := l.Users.ApplyVerdict(ctx, keyOf(s.Event), users.AnyVersion, *s.Verdict); err != nil {
			return "", sessions.Record{}, err
		}
	}
	if s.Token != nil {
		if err := l.Tokens.Put(ctx, tokenRecord(s)); err != nil {
			return "", sessions.Record{}, err
		}
	}
	if err := l.Trail.Record(ctx, s.Event); err != nil {
		return "", sessions.Record{}, err
	}
	return l.Sessions.Create(ctx, s.Session)
}

// LoginFailed implements auth.Ledger.
func (l Stores) LoginFailed(ctx context.Context, f auth.Failure) error {
	if _, err := l.Users.RecordFailure(ctx, f.Key, f.Lockout.LastFailureAt); err != nil {
		return err
	}
	if !f.Lockout.LockedUntil.IsZero() {
		if err := l.Users.SetLockedUntil(ctx, f.Key, f.Lockout.LockedUntil, f.Lockout.LastFailureAt); err != nil {
			return err
		}
	}
	return l.Trail.Record(ctx, f.Event)
}

// Audit implements auth.Ledger.
func (l Stores) Audit(ctx context.Context, e audit.Event) error { return l.Trail.Record(ctx, e) }
