package sessions

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Memory is an in-memory Store for unit tests and `kcguard serve`.
type Memory struct {
	opts  options
	mu    sync.Mutex
	byID  map[string]memSession
	users map[string]userState // by userKey
}

type memSession struct {
	Record
	hash string
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{opts: buildOptions(opts), byID: map[string]memSession{}, users: map[string]userState{}}
}

func (m *Memory) Create(_ context.Context, rec Record) (string, Record, error) {
	rec, token, hash, err := prepare(rec, m.opts)
	if err != nil {
		return "", Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[rec.ID]; ok {
		return "", Record{}, fmt.Errorf("create session: %w", ErrAlreadyExists)
	}
	uk := userKey(rec.Package, rec.Username)
	st := m.users[uk]
	if !st.admits(rec.CreatedAt) {
		return "", Record{}, fmt.Errorf("create session: %w", ErrSuperseded)
	}
	st.Seq++
	m.users[uk] = st
	rec.Seq = st.Seq
	m.byID[rec.ID] = memSession{Record: rec, hash: hash}
	return token, rec, nil
}

// judged is the session as its user's state has it; m.mu must be held.
func (m *Memory) judged(r Record) Record {
	return normalize(m.users[userKey(r.Package, r.Username)].judge(r, m.opts))
}

func (m *Memory) GetByToken(_ context.Context, token string, now time.Time) (Record, error) {
	id, hash, hint, ok := derive(token)
	if !ok {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	m.mu.Lock()
	s, found := m.byID[id]
	r := m.judged(s.Record)
	m.mu.Unlock()
	if !found || !hashMatches(s.hash, hash) || userHint(s.Package, s.Username) != hint {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	if err := r.Status(now); err != nil {
		return Record{}, fmt.Errorf("session %s: %w", id, err)
	}
	return r, nil
}

func (m *Memory) GetByID(_ context.Context, id string) (Record, error) {
	if !validID(id) {
		return Record{}, fmt.Errorf("get session %.32q: %w", id, ErrNotFound)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok {
		return Record{}, fmt.Errorf("get session %s: %w", id, ErrNotFound)
	}
	return m.judged(s.Record), nil
}

func (m *Memory) ListByUser(_ context.Context, pkg, username string) ([]Record, error) {
	want := userKey(pkg, username)
	m.mu.Lock()
	var out []Record
	for _, s := range m.byID {
		if userKey(s.Package, s.Username) == want {
			out = append(out, m.judged(s.Record))
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return createdKey(out[i]) > createdKey(out[j]) })
	return out, nil
}

func (m *Memory) Revoke(_ context.Context, id string, now time.Time) error {
	if !validID(id) {
		return fmt.Errorf("revoke session %.32q: %w", id, ErrNotFound)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok {
		return fmt.Errorf("revoke session %s: %w", id, ErrNotFound)
	}
	if !s.Revoked {
		s.Revoked, s.RevokedAt = true, now.UTC()
		m.byID[id] = s
	}
	return nil
}

func (m *Memory) RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error) {
	if _, err := userkey.New(pkg, username); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	list, _ := m.ListByUser(ctx, pkg, username)
	n := 0
	for _, r := range list {
		if r.Active(now) {
			n++
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	uk := userKey(pkg, username)
	st := m.users[uk]
	if now.After(st.ValidAfter) { // only ever raised
		st.ValidAfter = now.UTC()
	}
	m.users[uk] = st
	return n, nil
}

func (m *Memory) Touch(_ context.Context, id string, now time.Time) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	// Like the DynamoDB condition, this sees the session's own state only.
	if !ok || s.Status(now) != nil || s.LastSeenAt.After(now.Add(-m.opts.touchInterval)) {
		return false, nil
	}
	s.LastSeenAt = now.UTC()
	if m.opts.idleTimeout > 0 {
		s.IdleExpiresAt = now.Add(m.opts.idleTimeout).UTC()
	}
	m.byID[id] = s
	return true, nil
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time, limit int) (int, error) {
	first := ddbitem.HourBuckets(now, m.opts.expiryLookback)[0]
	m.mu.Lock()
	defer m.mu.Unlock()
	var expired []memSession
	for _, s := range m.byID {
		// Same window and second granularity as the DynamoDB expiry index.
		if ddbitem.HourBucket(s.ExpiresAt) >= first && ddbitem.EpochCeil(s.ExpiresAt) <= now.Unix() {
			expired = append(expired, s)
		}
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].ExpiresAt.Before(expired[j].ExpiresAt) })
	if limit > 0 && len(expired) > limit {
		expired = expired[:limit]
	}
	for _, s := range expired {
		delete(m.byID, s.ID)
	}
	return len(expired), nil
}

// createdKey orders a user's sessions: creation time, then ID for ties.
func createdKey(r Record) string { return r.CreatedAt.UTC().Format(ddbitem.SortableTime) + "#" + r.ID }
