package loginrecord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Stores is the login record over any stores, one call each (no transaction):
// over the in-memory stores it is the memory login record of unit tests and
// local tools. The loginrecordtest suite holds it to what Dynamo does.
type Stores struct {
	Users    users.Store
	Sessions sessions.Store
	Tokens   tokencache.Store
	Trail    audit.Writer
}

// LoginSucceeded writes what Dynamo.LoginSucceeded writes, one store at a
// time.
//
// The version check and the session are two calls here, not a
// transaction; the session store's own check against the user's last
// revocation is atomic, so a raced login still leaves no live session.
// The session goes first: a superseded login writes nothing else.
func (l Stores) LoginSucceeded(ctx context.Context, s Success) (string, sessions.Record, error) {
	if err := ctx.Err(); err != nil { // as the DynamoDB client would
		return "", sessions.Record{}, err
	}
	if s.UserVersion > 0 {
		u, err := l.Users.Get(ctx, keyOf(s.Event))
		if err != nil {
			return "", sessions.Record{}, err
		}
		if u.Version != s.UserVersion {
			return "", sessions.Record{}, fmt.Errorf("%w: user at version %d, checked %d", ErrSuperseded, u.Version, s.UserVersion)
		}
	}
	token, rec, err := l.Sessions.Create(ctx, s.Session)
	if errors.Is(err, sessions.ErrSuperseded) {
		return "", sessions.Record{}, fmt.Errorf("%w: %v", ErrSuperseded, err)
	}
	if err != nil {
		return "", sessions.Record{}, err
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
	return token, rec, nil
}

// ReserveFirst reserves the key's first attempt unless the source is
// throttled or the key has attempts on record (Dynamo.ReserveFirst). The
// reservation itself is atomic: users.Store.Reserve with a gate of one
// admits only while nothing is counted.
func (l Stores) ReserveFirst(ctx context.Context, key userkey.Key, source string, now time.Time) (FirstAttempt, error) {
	if err := ctx.Err(); err != nil {
		return FirstNotTried, err
	}
	if source != "" {
		src, err := l.Users.SourceFailures(ctx, source, now)
		if err != nil {
			return FirstNotTried, err
		}
		if src.Locked(now) {
			return FirstSourceLocked, nil
		}
	}
	lock, err := l.Users.Lockout(ctx, key, now)
	if err != nil {
		return FirstNotTried, err
	}
	if lock.FailedAttempts > 0 || lock.Locked(now) {
		return FirstNotFirst, nil
	}
	a, err := l.Users.Reserve(ctx, key, 1, now)
	switch {
	case err != nil:
		return FirstNotTried, err
	case !a.Admitted:
		return FirstNotFirst, nil // another attempt was counted meanwhile
	case a.N != 1:
		return FirstNotTried, fmt.Errorf("reserve first attempt %s: counted as attempt %d", key, a.N)
	}
	return FirstReserved, nil
}

// LoginFailed writes what Dynamo.LoginFailed writes, one store at a time.
func (l Stores) LoginFailed(ctx context.Context, f Failure) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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

// Audit stores an audit event on its own.
func (l Stores) Audit(ctx context.Context, e audit.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.Trail.Record(ctx, e)
}
