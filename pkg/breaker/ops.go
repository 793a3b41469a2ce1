package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Event is one transition, reported once, by the instance that won it.
type Event struct {
	Breaker    string
	From, To   State
	Generation uint64
	At         time.Time
	Reason     string
	// Failures is the fleet's consecutive failure count that opened it.
	Failures int
	// OpenedAt is when the outage began (on open, re-open and close).
	OpenedAt time.Time
	// NextProbe is when a probe may next be made (open, half-open).
	NextProbe time.Time
}

// Notifiers fans one transition out to several notifiers, in order.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, ev Event) {
	for _, n := range ns {
		if n != nil {
			n.Notify(ctx, ev)
		}
	}
}

// Notifier receives transitions (a later issue wires SNS and metrics). It
// is called synchronously by the winning instance; keep it quick.
type Notifier interface {
	Notify(ctx context.Context, ev Event)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, ev Event)

// Notify implements Notifier.
func (f NotifierFunc) Notify(ctx context.Context, ev Event) { f(ctx, ev) }

// Status is what operators and /status see.
type Status struct {
	Breaker    string
	State      State
	Generation uint64
	Since      time.Time
	// Failures is the fleet's count of consecutive failures (closed only).
	Failures int
	// NextProbe is when a probe may next be made: the end of the cooldown
	// while open, the end of the probe lease while half-open; zero when
	// closed or forced open.
	NextProbe   time.Time
	Reopens     int
	LeaseHolder string
	Reason      string
	// Forced: an operator opened it; it stays open until ForceClose/Reset.
	Forced bool
	// Fallback: the store is unreachable and this instance's in-process
	// breaker decides; State then is that breaker's state and the shared
	// fields are the last ones seen. StoreError says why.
	Fallback   bool
	StoreError string
}

func (b *Breaker) statusOf(rec Record) Status {
	st := Status{
		Breaker: b.s.Name, State: rec.State, Generation: rec.Generation, Since: rec.Since,
		Failures: rec.Failures, NextProbe: nextProbe(rec), Reopens: rec.Reopens,
		LeaseHolder: rec.LeaseHolder, Reason: rec.Reason, Forced: rec.Forced,
	}
	if b.s.Disabled {
		st.State = StateDisabled
	}
	return st
}

// State is the cheap view for reporting keycloak_status: the cached record,
// re-read only when the cache has expired. It never errors: a store outage
// shows as Fallback.
func (b *Breaker) State(ctx context.Context) Status {
	if b.s.Disabled {
		return Status{Breaker: b.s.Name, State: StateDisabled}
	}
	if b.useFallback(ctx) {
		return b.fallbackStatus()
	}
	rec, err := b.view(ctx)
	if err != nil {
		b.enterFallback(ctx, err)
		return b.fallbackStatus()
	}
	return b.statusOf(rec)
}

// Closed reports, from the cached view, whether calls go through freely
// (closed, or the breaker disabled): not open, and no probe being chosen.
// The login starts a speculative Keycloak grant only then, so a grant it
// may cancel is never the half-open probe.
func (b *Breaker) Closed(ctx context.Context) bool {
	st := b.State(ctx).State
	return st == StateClosed || st == StateDisabled
}

// Status reads the shared record afresh (for `kcguard breaker status`).
// When the store is unreachable it reports the fallback, not an error.
func (b *Breaker) Status(ctx context.Context) (Status, error) {
	if b.s.Disabled {
		return Status{Breaker: b.s.Name, State: StateDisabled}, nil
	}
	b.invalidate()
	rec, err := b.refresh(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Status{}, err
		}
		b.enterFallback(ctx, err)
		return b.fallbackStatus(), nil
	}
	b.mu.Lock()
	fallback := !b.fallbackSince.IsZero()
	b.mu.Unlock()
	if fallback {
		// The store answers again; let the next call switch back.
		b.mu.Lock()
		b.nextStoreTry = time.Time{}
		b.mu.Unlock()
	}
	return b.statusOf(rec), nil
}

func (b *Breaker) fallbackStatus() Status {
	b.mu.Lock()
	st := b.statusOf(b.rec)
	st.Fallback, st.StoreError = true, b.storeErr
	fb := b.fallback
	b.mu.Unlock()
	st.State = fromGobreaker(fb.State())
	return st
}

// ForceOpen opens the breaker for the whole fleet until ForceClose or
// Reset: no instance calls Keycloak and no probe is made.
func (b *Breaker) ForceOpen(ctx context.Context) (Status, error) {
	return b.force(ctx, "forced open by operator", func(old Record, now time.Time) Record {
		opened := old.OpenedAt
		if old.State == StateClosed || old.State == "" {
			opened = now
		}
		return Record{State: StateOpen, Generation: old.Generation + 1, Since: now, Forced: true,
			Reopens: old.Reopens, Reason: "forced open by operator", OpenedAt: opened}
	})
}

// ForceClose closes the breaker for the whole fleet now (releasing a forced
// open): failures and back-off start from zero, as after a successful probe.
func (b *Breaker) ForceClose(ctx context.Context) (Status, error) {
	return b.force(ctx, "forced closed by operator", func(old Record, now time.Time) Record {
		return Record{State: StateClosed, Generation: old.Generation + 1, Since: now, Reason: "forced closed by operator",
			OpenedAt: old.OpenedAt}
	})
}

// Reset writes a fresh closed record (also over a corrupt one) and resets
// this instance's in-process fallback, as if the breaker were new. The
// generation still rises so stale writers lose.
func (b *Breaker) Reset(ctx context.Context) (Status, error) {
	st, err := b.force(ctx, "reset by operator", func(old Record, now time.Time) Record {
		return Record{State: StateClosed, Generation: old.Generation + 1, Since: now, Reason: "reset by operator"}
	})
	if err == nil {
		b.mu.Lock()
		b.fallback = newFallback(b)
		b.fallbackSince, b.storeErr = time.Time{}, ""
		b.mu.Unlock()
	}
	return st, err
}

// force applies an operator's change with the same conditional write as
// every other transition, retrying on conflict. Store errors are returned:
// an operator must know the change did not happen.
func (b *Breaker) force(ctx context.Context, what string, next func(old Record, now time.Time) Record) (Status, error) {
	for range 10 {
		sctx, cancel := b.storeCtx(ctx)
		old, err := b.store.Get(sctx, b.s.Name)
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
			cancel()
			return Status{}, fmt.Errorf("%s: %w", what, err)
		}
		from := old.State
		// Above anything this instance has seen, in case the record was
		// lost or corrupted and comes back from a lower generation.
		base := old
		base.Generation = max(old.Generation, b.knownGeneration())
		rec := next(base, b.s.Now())
		err = b.store.Swap(sctx, b.s.Name, old.Generation, rec)
		cancel()
		switch {
		case err == nil:
			b.rememberOwn(rec)
			if from == "" {
				from = StateClosed
			}
			b.emit(ctx, from, rec)
			if from == rec.State {
				b.log.InfoContext(ctx, "breaker "+what, "generation", rec.Generation)
			}
			return b.statusOf(rec), nil
		case errors.Is(err, ErrConflict):
			continue
		default:
			return Status{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	return Status{}, fmt.Errorf("%s: %w", what, ErrConflict)
}
