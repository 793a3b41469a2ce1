package tokencache

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/ddbitem"
)

// Memory is an in-memory Store for unit tests. It keeps tokens in plain
// memory: encryption at rest is the DynamoDB store's job.
type Memory struct {
	opts    options
	mu      sync.Mutex
	entries map[string]Record
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{opts: buildOptions(opts), entries: map[string]Record{}}
}

func (m *Memory) Put(_ context.Context, rec Record) error {
	rec, err := prepare(rec, m.opts)
	if err != nil {
		return err
	}
	k, _ := entryKey(rec.Package, rec.Username)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[k] = rec
	return nil
}

func (m *Memory) Get(_ context.Context, pkg, username string, now time.Time) (Record, error) {
	k, err := entryKey(pkg, username)
	if err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.entries[k]
	if !ok || !usable(r, now) {
		return Record{}, fmt.Errorf("cached token %s: %w", k, ErrNotFound)
	}
	return r, nil
}

func (m *Memory) Delete(_ context.Context, pkg, username string) error {
	k, err := entryKey(pkg, username)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, k)
	return nil
}

// inWindow mirrors the DynamoDB expiry index: the hour bucket of t within
// the lookback window and t at or before end, at second granularity.
func inWindow(t, end time.Time, lookback time.Duration) bool {
	return !t.IsZero() && ddbitem.HourBucket(t) >= ddbitem.HourBuckets(end, lookback)[0] && ddbitem.EpochCeil(t) <= end.Unix()
}

func (m *Memory) ListExpiring(_ context.Context, before time.Time, limit int) ([]Record, error) {
	m.mu.Lock()
	var out []Record
	for _, r := range m.entries {
		if inWindow(r.AccessExpiresAt, before, m.opts.lookback) {
			out = append(out, r)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].AccessExpiresAt.Before(out[j].AccessExpiresAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var expired []Record
	for _, r := range m.entries {
		if inWindow(r.GraceUntil, now, m.opts.lookback) {
			expired = append(expired, r)
		}
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].GraceUntil.Before(expired[j].GraceUntil) })
	if limit > 0 && len(expired) > limit {
		expired = expired[:limit]
	}
	for _, r := range expired {
		k, _ := entryKey(r.Package, r.Username)
		delete(m.entries, k)
	}
	return len(expired), nil
}
