package ledger

import (
	"context"
	"errors"
	"fmt"

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
//
// The version check and the session are two calls here, not a
// transaction; the session store's own check against the user's last
// revocation is atomic, so a raced login still leaves no live session.
func (l Stores) LoginSucceeded(ctx context.Context, s auth.Success) (string, sessions.Record, error) {
	if s.UserVersion > 0 {
		u, err := l.Users.Get(ctx, keyOf(s.Event))
		if err != nil {
			return "", sessions.Record{}, err
		}
		if u.Version != s.UserVersion {
			return "", sessions.Record{}, fmt.Errorf("%w: user at version %d, checked %d", auth.ErrLoginSuperseded, u.Version, s.UserVersion)
		}
	}
	if s.ResetLockout {
		// Release keeps a lock a parallel failure set meanwhile.
		if _, err := l.Users.Release(ctx, keyOf(s.Event), s.Now); err != nil {
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
	token, rec, err := l.Sessions.Create(ctx, s.Session)
	if errors.Is(err, sessions.ErrSuperseded) {
		return "", sessions.Record{}, fmt.Errorf("%w: %v", auth.ErrLoginSuperseded, err)
	}
	return token, rec, err
}

// LoginFailed implements auth.Ledger.
func (l Stores) LoginFailed(ctx context.Context, f auth.Failure) error {
	if err := l.Users.FailAttempt(ctx, f.Key, f.Attempt, f.LockedUntil, f.Event.At); err != nil {
		return err
	}
	if f.Source != "" {
		if err := l.Users.RecordSourceFailure(ctx, f.Source, f.SourceLockout, f.Event.At); err != nil {
			return err
		}
	}
	return l.Trail.Record(ctx, f.Event)
}

// Audit implements auth.Ledger.
func (l Stores) Audit(ctx context.Context, e audit.Event) error { return l.Trail.Record(ctx, e) }
