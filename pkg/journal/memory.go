package journal

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Store for unit tests.
type Memory struct {
	mu      sync.Mutex
	entries map[string]map[string]Entry // user key → job key → entry
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store; nothing expires in memory.
func NewMemory(...Option) *Memory { return &Memory{entries: map[string]map[string]Entry{}} }

func (m *Memory) Record(_ context.Context, e Entry) error {
	e, k, err := prepare(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries[k] == nil {
		m.entries[k] = map[string]Entry{}
	}
	if old, ok := m.entries[k][jobKey(e)]; ok && old.Status.Final() {
		return nil
	}
	m.entries[k][jobKey(e)] = e
	return nil
}

func (m *Memory) ListByUser(_ context.Context, pkg, username string, limit int) ([]Entry, error) {
	_, k, err := prepare(Entry{Package: pkg, Username: username, JobID: "-", CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(1, 0), Status: Pending})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.entries[k]))
	for jk := range m.entries[k] {
		keys = append(keys, jk)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	out := []Entry{}
	for _, jk := range keys[:min(len(keys), limitOrDefault(limit))] {
		out = append(out, m.entries[k][jk])
	}
	return out, nil
}

func (m *Memory) byStatus(s Status) []Entry {
	var out []Entry
	for _, jobs := range m.entries {
		for _, e := range jobs {
			if e.Status == s {
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return statusKey(out[i]) < statusKey(out[j]) })
	return out
}

func (m *Memory) ListByStatus(_ context.Context, s Status, limit int, cursor string) ([]Entry, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Entry{}
	limit = limitOrDefault(limit)
	all := m.byStatus(s)
	for i, e := range all {
		if cursor != "" && statusKey(e) <= cursor {
			continue
		}
		out = append(out, e)
		if len(out) == limit {
			if i < len(all)-1 {
				return out, statusKey(e), nil
			}
			break
		}
	}
	return out, "", nil
}

func (m *Memory) Count(_ context.Context, s Status) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byStatus(s)), nil
}

func (m *Memory) Purge(_ context.Context, before time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, jobs := range m.entries {
		for jk, e := range jobs {
			if limit > 0 && n >= limit {
				return n, nil
			}
			if e.UpdatedAt.Before(before) {
				delete(jobs, jk)
				n++
			}
		}
		if len(jobs) == 0 {
			delete(m.entries, k)
		}
	}
	return n, nil
}
