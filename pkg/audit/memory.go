package audit

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Store for unit tests.
type Memory struct {
	mu     sync.Mutex
	events map[string]map[string]Event // user key → sort key → event
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store. Retention options have no
// effect: nothing expires in memory.
func NewMemory(...Option) *Memory { return &Memory{events: map[string]map[string]Event{}} }

func (m *Memory) Record(_ context.Context, e Event) error {
	e, k, err := prepare(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events[k] == nil {
		m.events[k] = map[string]Event{}
	}
	m.events[k][sortKey(e)] = e
	return nil
}

func (m *Memory) ListByUser(_ context.Context, pkg, username string, limit int) ([]Event, error) {
	k, err := userKey(pkg, username)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.events[k]))
	for sk := range m.events[k] {
		keys = append(keys, sk)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	out := []Event{}
	for _, sk := range keys[:min(len(keys), limitOrDefault(limit))] {
		out = append(out, m.events[k][sk])
	}
	return out, nil
}

func (m *Memory) ListByPackage(_ context.Context, pkg string, from, to time.Time, each func(Event) error) error {
	m.mu.Lock()
	var out []Event
	for _, evs := range m.events {
		for _, e := range evs {
			if e.Package == pkg && !e.At.Before(from) && e.At.Before(to) {
				out = append(out, e)
			}
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return sortKey(out[i]) < sortKey(out[j]) })
	for _, e := range out {
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}
