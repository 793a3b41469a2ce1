package users

import (
	"context"
	"fmt"
	"github.com/kcguard/kcguard/pkg/userkey"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Store for unit tests and `kcguard serve` demos.
type Memory struct {
	opts     options
	mu       sync.Mutex
	users    map[string]User
	lockouts map[string]memLockout
	sources  map[string]memLockout
}

type memLockout struct {
	Lockout
	gate       int       // admit while FailedAttempts < max(gate, maxFailures)
	reservedAt time.Time // the last admitted attempt
	expires    time.Time // like the DynamoDB TTL attribute
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{opts: buildOptions(opts), users: map[string]User{}, lockouts: map[string]memLockout{}, sources: map[string]memLockout{}}
}

func clone(u User) User {
	u.Attributes = maps.Clone(u.Attributes)
	u.RequiredActions = slices.Clone(u.RequiredActions)
	return u
}

func (m *Memory) Get(_ context.Context, key userkey.Key) (User, error) {
	key, err := key.Normalize()
	if err != nil {
		return User{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	if !ok {
		return User{}, fmt.Errorf("get user %s: %w", key, ErrNotFound)
	}
	return clone(u), nil
}

func (m *Memory) Lookup(ctx context.Context, key userkey.Key, now time.Time) (Entry, error) {
	key, err := key.Normalize()
	if err != nil {
		return Entry{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	return Entry{User: clone(u), Found: ok, Lockout: m.lockoutLocked(key, now)}, nil
}

func (m *Memory) Create(_ context.Context, u User, now time.Time) (User, error) {
	u, err := prepareNew(u, now)
	if err != nil {
		return User{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := u.Key().String()
	if cur, ok := m.users[k]; ok {
		if sameWrite(cur, u) {
			return clone(u), nil
		}
		return User{}, fmt.Errorf("create user %s: %w", k, ErrAlreadyExists)
	}
	m.users[k] = clone(u)
	return clone(u), nil
}

// change applies fn under the version check all updates share.
func (m *Memory) change(key userkey.Key, expected int64, fn func(*User), mine func(User) bool) (User, error) {
	key, err := key.Normalize()
	if err != nil {
		return User{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	switch {
	case !ok:
		return User{}, fmt.Errorf("update user %s: %w", key, ErrNotFound)
	case u.Version == expected+1 && mine(u):
		return clone(u), nil
	case u.Version != expected:
		return User{}, fmt.Errorf("update user %s: have version %d, expected %d: %w", key, u.Version, expected, ErrVersionConflict)
	}
	u = clone(u)
	fn(&u)
	u.Version++
	m.users[key.String()] = u
	return clone(u), nil
}

func (m *Memory) UpdatePassword(_ context.Context, key userkey.Key, expected int64, h Hash, now time.Time) (User, error) {
	return m.change(key, expected, func(u *User) {
		u.Hash, u.HashStale = h, false
		u.UpdatedAt, u.PasswordChangedAt = utc(now), utc(now)
	}, samePassword(h, now))
}

func (m *Memory) UpdateProfile(_ context.Context, key userkey.Key, expected int64, p Profile, now time.Time) (User, error) {
	return m.change(key, expected, func(u *User) {
		u.Email, u.Attributes, u.Enabled = p.Email, maps.Clone(p.Attributes), p.Enabled
		if len(u.Attributes) == 0 {
			u.Attributes = nil
		}
		u.UpdatedAt = utc(now)
	}, sameProfile(p, now))
}

func (m *Memory) MarkSynced(_ context.Context, key userkey.Key, version int64) (bool, error) {
	key, err := key.Normalize()
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	switch {
	case !ok:
		return false, fmt.Errorf("mark synced %s: %w", key, ErrNotFound)
	case u.KeycloakSyncedVersion >= version:
		return false, nil
	case version > u.Version:
		return false, fmt.Errorf("mark synced %s: version %d above current %d: %w", key, version, u.Version, ErrVersionConflict)
	}
	u.KeycloakSyncedVersion = version
	m.users[key.String()] = u
	return true, nil
}

func (m *Memory) SetKeycloakID(_ context.Context, key userkey.Key, id string) error {
	key, err := key.Normalize()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	if !ok {
		return fmt.Errorf("set keycloak id %s: %w", key, ErrNotFound)
	}
	u.KeycloakID = id
	m.users[key.String()] = u
	return nil
}

func (m *Memory) ApplyVerdict(_ context.Context, key userkey.Key, expected int64, v Verdict) (User, error) {
	key, err := key.Normalize()
	if err != nil {
		return User{}, err
	}
	if err := v.check(key); err != nil {
		return User{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[key.String()]
	switch {
	case !ok:
		return User{}, fmt.Errorf("apply verdict %s: %w", key, ErrNotFound)
	case expected != AnyVersion && u.Version != expected:
		return User{}, fmt.Errorf("apply verdict %s: have version %d, expected %d: %w", key, u.Version, expected, ErrVersionConflict)
	case v.Hash != nil && u.Unsynced():
		return User{}, fmt.Errorf("apply verdict %s: unsynced change pending: %w", key, ErrVersionConflict)
	}
	u = clone(v.apply(u))
	m.users[key.String()] = u
	return clone(u), nil
}

func (m *Memory) Delete(_ context.Context, key userkey.Key) error {
	key, err := key.Normalize()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[key.String()]; !ok {
		return fmt.Errorf("delete user %s: %w", key, ErrNotFound)
	}
	delete(m.users, key.String())
	return nil
}

func (m *Memory) lockoutLocked(key userkey.Key, now time.Time) Lockout {
	return m.live(m.lockouts, key.String(), now).Lockout
}

// live is the stored counter, or zero once it has outlived its window.
func (m *Memory) live(items map[string]memLockout, k string, now time.Time) memLockout {
	l, ok := items[k]
	if !ok || !now.Before(l.expires) {
		return memLockout{}
	}
	return l
}

func (m *Memory) Reserve(_ context.Context, key userkey.Key, maxFailures int, now time.Time) (Attempt, error) {
	key, err := key.Normalize()
	if err != nil {
		return Attempt{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.live(m.lockouts, key.String(), now)
	if l.Locked(now) || (l.FailedAttempts >= max(l.gate, maxFailures) && now.Before(l.reservedAt.Add(LostReservation))) {
		return Attempt{LockedUntil: l.LockedUntil}, nil
	}
	l.FailedAttempts++
	l.reservedAt = now
	l.expires = now.Add(m.opts.failureWindow)
	m.lockouts[key.String()] = l
	return Attempt{Admitted: true, N: l.FailedAttempts}, nil
}

func (m *Memory) FailAttempt(_ context.Context, key userkey.Key, a Attempt, lockedUntil, now time.Time) error {
	key, err := key.Normalize()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.live(m.lockouts, key.String(), now)
	l.LastFailureAt = utc(now)
	if !lockedUntil.IsZero() {
		l.LockedUntil = laterLock(l.LockedUntil, utc(lockedUntil))
		l.gate = max(l.gate, a.N+1)
	}
	l.expires = lockExpiry(l.LockedUntil, now, m.opts.failureWindow)
	m.lockouts[key.String()] = l
	return nil
}

func (m *Memory) Release(_ context.Context, key userkey.Key, now time.Time) (bool, error) {
	key, err := key.Normalize()
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live(m.lockouts, key.String(), now).Locked(now) {
		return false, nil
	}
	delete(m.lockouts, key.String())
	return true, nil
}

func (m *Memory) SourceFailures(_ context.Context, source string, now time.Time) (Lockout, error) {
	if err := checkSource(source); err != nil {
		return Lockout{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live(m.sources, source, now).Lockout, nil
}

func (m *Memory) RecordSourceFailure(_ context.Context, source string, l Lockout, now time.Time) error {
	if err := checkSource(source); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.live(m.sources, source, now)
	cur.FailedAttempts++
	cur.LastFailureAt = utc(now)
	cur.LockedUntil = laterLock(cur.LockedUntil, utc(l.LockedUntil))
	cur.expires = lockExpiry(cur.LockedUntil, now, m.opts.sourceWindow)
	m.sources[source] = cur
	return nil
}

func (m *Memory) Lockout(_ context.Context, key userkey.Key, now time.Time) (Lockout, error) {
	key, err := key.Normalize()
	if err != nil {
		return Lockout{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lockoutLocked(key, now), nil
}

// lockExpiry keeps a lock item alive for the window after the later of now
// and the lock's end, so a long lock is never forgotten early.
func lockExpiry(until, now time.Time, window time.Duration) time.Time {
	if until.After(now) {
		return until.Add(window)
	}
	return now.Add(window)
}

func (m *Memory) ListUnsynced(_ context.Context, pkg string, limit int, cursor string) ([]User, string, error) {
	return m.list(pkg, limit, cursor, User.Unsynced)
}

func (m *Memory) List(_ context.Context, pkg string, f Filter, limit int, cursor string) ([]User, string, error) {
	return m.list(pkg, limit, cursor, f.Match)
}

func (m *Memory) list(pkg string, limit int, cursor string, keep func(User) bool) ([]User, string, error) {
	if err := userkey.CheckPackage(pkg); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = limitOrDefault(limit)
	m.mu.Lock()
	var all []User
	for _, u := range m.users {
		if u.Package == pkg && u.Username > after && keep(u) {
			all = append(all, clone(u))
		}
	}
	m.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].Username < all[j].Username })
	if len(all) <= limit {
		return all, "", nil
	}
	all = all[:limit]
	return all, encodeCursor(all[limit-1].Username), nil
}
