package breaker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Sentinel errors of a Store. Backends wrap them so callers use errors.Is.
var (
	// ErrNotFound: there is no record for the breaker yet.
	ErrNotFound = errors.New("breaker record not found")
	// ErrConflict: a conditional write lost, the record's generation or
	// state is no longer what the writer saw. Re-read and decide again.
	ErrConflict = errors.New("breaker record changed concurrently")
	// ErrCorrupt: a record exists but cannot be read back as a Record.
	// Get still returns the stored generation when it could be read (else
	// 0), so the caller can overwrite it with Swap.
	ErrCorrupt = errors.New("breaker record corrupt")
)

// Record is the fleet-wide state of one breaker, as stored.
type Record struct {
	State State
	// Generation is raised by every transition. Every write except failure
	// counting is conditional on it, so each transition has one winner.
	Generation uint64
	// Since is when State was entered.
	Since time.Time
	// Failures counts consecutive failures while closed.
	Failures int
	// OpenUntil is when an open breaker may be probed.
	OpenUntil time.Time
	// Reopens is the exponent n of the cooldown back-off (cooldown × 2ⁿ):
	// how many probes failed since the breaker last closed.
	Reopens int
	// LeaseUntil is when a half-open probe lease expires; after it another
	// instance may take the lease (the holder is assumed dead).
	LeaseUntil time.Time
	// LeaseHolder names the instance holding the probe lease (for operators).
	LeaseHolder string
	// Forced is set by an operator's ForceOpen: the breaker stays open and
	// no probe is made until ForceClose or Reset.
	Forced bool
	// Reason is why the last transition happened, for operators.
	Reason string
	// OpenedAt is when the current (or, once closed, the last) outage
	// began: set when the breaker opens from closed, carried through
	// probes and re-opens, so the close can report the outage's length.
	OpenedAt time.Time
}

// Store keeps breaker records. Implementations must make Swap, AddFailure
// and ClearFailures atomic and conditional as documented: the breaker's
// correctness across the fleet rests on them and nothing else.
type Store interface {
	// Get reads the record (strongly consistent). ErrNotFound if there is
	// none; ErrCorrupt (with the readable generation) if it is unreadable.
	Get(ctx context.Context, name string) (Record, error)
	// Swap replaces the record with next if the stored generation equals
	// expect. expect 0 means "no readable record": the item is absent or
	// corrupt without a readable generation. ErrConflict otherwise.
	Swap(ctx context.Context, name string, expect uint64, next Record) error
	// AddFailure adds one to Failures if the record is closed at generation
	// gen and returns the record after the increment. ErrConflict otherwise.
	// It is an atomic increment, not a read-modify-write, so concurrent
	// failures from many instances are all counted without retries.
	AddFailure(ctx context.Context, name string, gen uint64) (Record, error)
	// ClearFailures sets Failures to 0 if the record is closed at
	// generation gen. ErrConflict otherwise.
	ClearFailures(ctx context.Context, name string, gen uint64) error
}

// MemoryStore is an in-process Store, for tests and single-process use.
type MemoryStore struct {
	mu   sync.Mutex
	recs map[string]memRecord
}

type memRecord struct {
	rec     Record
	corrupt bool
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{recs: map[string]memRecord{}} }

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, name string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	switch {
	case !ok:
		return Record{}, ErrNotFound
	case r.corrupt:
		return Record{Generation: r.rec.Generation}, ErrCorrupt
	}
	return r.rec, nil
}

// Swap implements Store.
func (m *MemoryStore) Swap(ctx context.Context, name string, expect uint64, next Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	if ok && r.rec.Generation != expect {
		return ErrConflict
	}
	if !ok && expect != 0 {
		return ErrConflict
	}
	m.recs[name] = memRecord{rec: next}
	return nil
}

// AddFailure implements Store.
func (m *MemoryStore) AddFailure(ctx context.Context, name string, gen uint64) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	if !ok || r.corrupt || r.rec.Generation != gen || r.rec.State != StateClosed {
		return Record{}, ErrConflict
	}
	r.rec.Failures++
	m.recs[name] = r
	return r.rec, nil
}

// ClearFailures implements Store.
func (m *MemoryStore) ClearFailures(ctx context.Context, name string, gen uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[name]
	if !ok || r.corrupt || r.rec.Generation != gen || r.rec.State != StateClosed {
		return ErrConflict
	}
	r.rec.Failures = 0
	m.recs[name] = r
	return nil
}

// Corrupt makes the named record unreadable, as a half-written or
// hand-edited item would be. With keepGeneration false even the generation
// is lost. It exists for the conformance suite.
func (m *MemoryStore) Corrupt(name string, keepGeneration bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recs[name]
	r.corrupt = true
	if !keepGeneration {
		r.rec.Generation = 0
	}
	m.recs[name] = r
}
