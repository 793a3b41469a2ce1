// Package breaker is kcguard's fleet-wide circuit breaker in front of a
// Keycloak server.
//
// Every Lambda instance holds a Breaker for the same name (the Keycloak URL);
// their shared state is one record in a Store (one DynamoDB item) changed only
// by conditional writes on its generation. Failures anywhere in the fleet are
// counted with atomic increments; the closed→open transition, the probe lease
// (open→half-open) and the probe's verdict (half-open→closed/open) each have
// exactly one winner, and only the winner emits the event.
//
// No lock of any kind is held while Keycloak is called: Allow decides from a
// cached copy of the record (re-read every StateCacheTTL, and at once after a
// local failure), the caller calls Keycloak, then reports the outcome through
// done. A healthy closed breaker costs no store writes and about one read per
// StateCacheTTL per instance. This is why gobreaker's
// DistributedCircuitBreaker, which holds its distributed lock across the call
// and so serialises every login in the fleet, is not used; gobreaker's
// in-process TwoStepCircuitBreaker is the fallback when the store is down.
package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
)

// State of a breaker as callers and operators see it.
type State string

// States. StateDisabled is only reported, never stored.
const (
	StateClosed   State = "closed"
	StateOpen     State = "open"
	StateHalfOpen State = "half-open"
	StateDisabled State = "disabled"
)

// ErrOpen is returned by Allow and Execute when Keycloak must not be called.
// It is gobreaker's ErrOpenState, so errors.Is works with either name.
var ErrOpen = gobreaker.ErrOpenState

// Settings configure a Breaker. Zero values take the documented defaults,
// like gobreaker.Settings.
type Settings struct {
	// Name is the breaker's key in the store: the Keycloak server URL, so
	// packages (realms) on one server share one breaker.
	Name string
	// Disabled makes Allow always allow and never touch the store
	// (keycloak.resilience.enabled: false). The zero value is an enabled
	// breaker, so a forgotten field cannot silently remove protection.
	Disabled bool
	// FailureThreshold is how many consecutive failures, fleet-wide, open
	// the breaker (failure_threshold). Default DefaultFailureThreshold.
	FailureThreshold int
	// Cooldown is how long the breaker stays open before one probe
	// (cooldown_seconds). Default DefaultCooldown.
	Cooldown time.Duration
	// MaxCooldown caps the back-off after failed probes, Cooldown × 2ⁿ.
	// Default 16 × Cooldown; never below Cooldown.
	MaxCooldown time.Duration
	// StateCacheTTL is how long an instance trusts its cached copy of the
	// shared record (health_check_cache_seconds). Default
	// DefaultStateCacheTTL. The copy is dropped at once after a local
	// failure, when an open breaker's cooldown or a probe lease runs out,
	// and after a lost write.
	StateCacheTTL time.Duration
	// ProbeLease is how long a half-open probe may take before another
	// instance may probe (its holder is presumed dead). Default
	// DefaultProbeLease; keep it above the Keycloak call timeout.
	ProbeLease time.Duration
	// StoreTimeout bounds each store call; a store that does not answer in
	// time counts as unreachable and the in-process fallback takes over.
	// Default DefaultStoreTimeout.
	StoreTimeout time.Duration
	// IsSuccessful says whether a call's error means Keycloak is healthy.
	// Default: err == nil. For Keycloak calls pass !keycloak.IsOutage (the
	// adapter classified the error once), so a wrong password does not
	// count as an outage.
	IsSuccessful func(err error) bool
	// IsExcluded says whether an outcome should not count at all. Errors
	// wrapping context.Canceled (the caller gave up) are always excluded.
	IsExcluded func(err error) bool
	// Now is the clock. Default time.Now. The in-process fallback
	// (gobreaker) always uses the wall clock.
	Now func() time.Time
	// Notifier receives the transitions this instance won. Default: none.
	Notifier Notifier
	// Logger gets transitions and store trouble. Default slog.Default().
	Logger *slog.Logger
	// Instance names this instance in probe leases. Default: random.
	Instance string
}

// Defaults for Settings; keycloak.resilience's defaults (config.Default)
// are these.
const (
	DefaultFailureThreshold = 3
	DefaultCooldown         = 60 * time.Second
	DefaultStateCacheTTL    = 30 * time.Second
	DefaultProbeLease       = 30 * time.Second
	DefaultStoreTimeout     = 2 * time.Second
)

func (s Settings) withDefaults() Settings {
	if s.FailureThreshold <= 0 {
		s.FailureThreshold = DefaultFailureThreshold
	}
	if s.Cooldown <= 0 {
		s.Cooldown = DefaultCooldown
	}
	if s.MaxCooldown <= 0 {
		s.MaxCooldown = 16 * s.Cooldown
	}
	if s.MaxCooldown < s.Cooldown {
		s.MaxCooldown = s.Cooldown
	}
	if s.StateCacheTTL <= 0 {
		s.StateCacheTTL = DefaultStateCacheTTL
	}
	if s.ProbeLease <= 0 {
		s.ProbeLease = DefaultProbeLease
	}
	if s.StoreTimeout <= 0 {
		s.StoreTimeout = DefaultStoreTimeout
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Instance == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		s.Instance = hex.EncodeToString(b)
	}
	return s
}

// Breaker is one instance's handle on a fleet-wide breaker. It is safe for
// concurrent use; create one per Keycloak server per process.
type Breaker struct {
	store Store
	s     Settings
	log   *slog.Logger
	reads singleflight.Group

	// fallback is the in-process breaker used while the store is
	// unreachable. It lives as long as the Breaker so that its state carries
	// across store flaps.
	fallback *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu sync.Mutex
	// The cached copy of the shared record.
	rec    Record
	have   bool
	readAt time.Time
	// epoch is raised whenever the cache is invalidated; a read that
	// started in an older epoch may fill the cache but not mark it fresh.
	epoch      uint64
	freshEpoch uint64
	installs   uint64 // records installed in the cache so far
	probing    bool   // this instance is already trying to take the probe lease
	// suspectGen is the closed generation in which this instance last saw a
	// failure and no success since. While suspect, the instance lets one
	// call at a time through (trialOut), each recorded before the next, so
	// its concurrent callers cannot all pay for an outage the fleet is
	// about to declare. Lambda runs one call per instance, so there this
	// costs nothing; in a busy process the others get ErrOpen and take the
	// login's local path for the length of one Keycloak call.
	suspectGen uint64
	trialOut   bool
	// Store outage: zero fallbackSince means the store is in use.
	fallbackSince time.Time
	storeErr      string
	nextStoreTry  time.Time
	retrying      bool
	// unsure is a transition this instance wrote whose answer was lost (a
	// timeout after the write may have landed): announced once a read
	// shows it landed, so no transition goes unlogged and unalerted.
	unsure *unsureSwap
}

type unsureSwap struct {
	from State
	rec  Record
}

// New returns a Breaker over store. It does no I/O; the record is read (and
// created closed if missing) on first use.
func New(store Store, s Settings) *Breaker {
	s = s.withDefaults()
	b := &Breaker{store: store, s: s, log: s.Logger.With("breaker", s.Name)}
	b.fallback = newFallback(b)
	return b
}

func newFallback(b *Breaker) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	threshold := uint32(b.s.FailureThreshold)
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.s.Name,
		MaxRequests:  1,
		Timeout:      b.s.Cooldown,
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		IsSuccessful: b.successful,
		IsExcluded:   b.excluded,
		// Fallback transitions are this instance's alone: logged, not
		// notified, so a store outage does not page once per instance.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.log.Warn("in-process fallback breaker changed state", "from", from.String(), "to", to.String())
		},
	})
}

// Name is the breaker's key (the Keycloak server URL).
func (b *Breaker) Name() string { return b.s.Name }

func (b *Breaker) excluded(err error) bool {
	if errors.Is(err, context.Canceled) {
		return true
	}
	return b.s.IsExcluded != nil && b.s.IsExcluded(err)
}

// excludedIn also excludes a failure when the caller's own context was
// cancelled: adapters such as gocloak flatten the cause into a message, so
// errors.Is(err, context.Canceled) alone would count a user who closed the
// tab as a Keycloak outage. A caller deadline is not excluded: that is a
// timeout, and timeouts count.
func (b *Breaker) excludedIn(ctx context.Context, err error) bool {
	return b.excluded(err) || (err != nil && errors.Is(ctx.Err(), context.Canceled))
}

func (b *Breaker) successful(err error) bool {
	if b.s.IsSuccessful != nil {
		return b.s.IsSuccessful(err)
	}
	return err == nil
}

func noop(error) {}

// Allow asks whether Keycloak may be called now. On ErrOpen the caller must
// not call it. Otherwise it calls Keycloak (no lock is held) and then calls
// done exactly once with the call's error. Allow never waits on Keycloak;
// it may wait on one store read when the cached state has expired.
//
// ErrOpen also comes while the shared breaker is still closed when this
// instance has just seen a failure and its one trial call is out: until a
// call let through after that failure succeeds, the instance sends one call
// at a time, so its concurrent callers do not all pay for an outage the
// fleet is about to declare.
func (b *Breaker) Allow(ctx context.Context) (done func(err error), err error) {
	if b.s.Disabled {
		return noop, nil
	}
	if b.useFallback(ctx) {
		return b.allowFallback(ctx)
	}
	for attempt := 0; ; attempt++ {
		rec, err := b.view(ctx)
		if err != nil {
			b.enterFallback(ctx, err)
			return b.allowFallback(ctx)
		}
		now := b.s.Now()
		switch rec.State {
		case StateClosed:
			done, err, stale := b.admitClosed(ctx, rec.Generation)
			if !stale {
				return done, err
			}
			// What this caller saw went stale while it waited (a local
			// failure or a transition): decide again on fresh knowledge,
			// and give up rather than spin if it keeps changing.
			if attempt < 3 {
				continue
			}
			return nil, ErrOpen
		case StateOpen:
			if rec.Forced || now.Before(rec.OpenUntil) {
				return nil, ErrOpen
			}
		case StateHalfOpen:
			if now.Before(rec.LeaseUntil) {
				return nil, ErrOpen
			}
		}
		return b.tryProbe(ctx, rec)
	}
}

// admitClosed lets a call through a closed breaker at generation gen, in
// one critical section with the check that the cache still says so: a
// caller delayed between reading the cache and being admitted must not act
// on a closed state the instance has since learned is over.
func (b *Breaker) admitClosed(ctx context.Context, gen uint64) (done func(error), err error, stale bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.have || b.rec.Generation != gen || b.rec.State != StateClosed || b.freshEpoch != b.epoch {
		return nil, nil, true
	}
	if b.suspectGen != gen {
		return func(err error) { b.doneClosed(ctx, gen, false, err) }, nil, false
	}
	if b.trialOut {
		return nil, ErrOpen, false
	}
	b.trialOut = true
	return func(err error) {
		b.doneClosed(ctx, gen, true, err)
		b.mu.Lock()
		b.trialOut = false
		b.mu.Unlock()
	}, nil, false
}

// Execute calls fn if the breaker allows and reports its outcome. A panic
// in fn counts as a failure and is re-raised, so done is never skipped (a
// skipped done would leave a probe lease to expire or an instance's trial
// call outstanding).
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) (err error) {
	done, err := b.Allow(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			done(fmt.Errorf("panic: %v", p))
			panic(p)
		}
	}()
	err = fn(ctx)
	done(err)
	return err
}

// storeCtx detaches store calls from the caller's cancellation (an outcome
// must be recorded even if the login already answered) but bounds them.
func (b *Breaker) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), b.s.StoreTimeout)
}

// view returns the cached record while it may be trusted, else a fresh one.
func (b *Breaker) view(ctx context.Context) (Record, error) {
	now := b.s.Now()
	b.mu.Lock()
	if b.have && b.freshEpoch == b.epoch && now.Sub(b.readAt) < b.s.StateCacheTTL && !b.deadlinePassed(b.rec, now) {
		rec := b.rec
		b.mu.Unlock()
		return rec, nil
	}
	b.mu.Unlock()
	return b.refresh(ctx)
}

// deadlinePassed: an open breaker whose cooldown ended, or a lease that
// expired, must be re-read before anyone acts on it.
func (b *Breaker) deadlinePassed(rec Record, now time.Time) bool {
	switch rec.State {
	case StateOpen:
		return !rec.Forced && !now.Before(rec.OpenUntil)
	case StateHalfOpen:
		return !now.Before(rec.LeaseUntil)
	}
	return false
}

// refresh reads the record once per instance however many callers wait,
// creating it closed when missing or corrupt.
func (b *Breaker) refresh(ctx context.Context) (Record, error) {
	type read struct {
		rec             Record
		epoch, installs uint64
	}
	v, err, _ := b.reads.Do("read", func() (any, error) {
		// What the cache looked like when the read began decides below
		// whether its result is fresh; callers that join later share it.
		b.mu.Lock()
		r := read{epoch: b.epoch, installs: b.installs}
		b.mu.Unlock()
		sctx, cancel := b.storeCtx(ctx)
		defer cancel()
		var err error
		r.rec, err = b.getOrCreate(sctx)
		return r, err
	})
	if err != nil {
		return Record{}, err
	}
	r := v.(read)
	b.remember(r.rec, r.epoch, r.installs)
	b.settleUnsure(ctx, r.rec)
	return r.rec, nil
}

func (b *Breaker) getOrCreate(ctx context.Context) (Record, error) {
	for range 5 {
		rec, err := b.store.Get(ctx, b.s.Name)
		switch {
		case err == nil:
			return rec, nil
		case errors.Is(err, ErrNotFound):
			next := Record{State: StateClosed, Generation: b.knownGeneration() + 1, Since: b.s.Now(), Reason: "created"}
			if err := b.store.Swap(ctx, b.s.Name, 0, next); err == nil {
				b.log.Info("breaker record created closed", "generation", next.Generation)
				return next, nil
			} else if !errors.Is(err, ErrConflict) {
				return Record{}, err
			}
		case errors.Is(err, ErrCorrupt):
			next := Record{State: StateClosed, Generation: max(rec.Generation, b.knownGeneration()) + 1, Since: b.s.Now(), Reason: "recreated after corrupt record"}
			if serr := b.store.Swap(ctx, b.s.Name, rec.Generation, next); serr == nil {
				b.log.Error("breaker record was corrupt; recreated closed", "err", err, "generation", next.Generation)
				return next, nil
			} else if !errors.Is(serr, ErrConflict) {
				return Record{}, serr
			}
		default:
			return Record{}, err
		}
	}
	return Record{}, fmt.Errorf("breaker %s: record keeps changing: %w", b.s.Name, ErrConflict)
}

// knownGeneration is the highest generation this instance has seen. A
// record recreated after loss or corruption starts above it, so that the
// "never roll the cache back" rule below keeps working.
func (b *Breaker) knownGeneration() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rec.Generation
}

// remember caches rec, read (or written) when the cache was at epoch and
// had had installs records installed. A read that began before the cached
// record was installed and carries an older generation is stale and
// ignored; a newer read with an older generation is a recreated record
// and wins. The cache is fresh only if nothing invalidated it meanwhile.
func (b *Breaker) remember(rec Record, epoch, installs uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.have && rec.Generation < b.rec.Generation && installs < b.installs {
		return
	}
	b.rec, b.have, b.readAt = rec, true, b.s.Now()
	b.installs++
	if epoch == b.epoch {
		b.freshEpoch = epoch
	}
}

// rememberOwn caches a record this instance just wrote or got back from a
// write: it is as fresh as a read.
func (b *Breaker) rememberOwn(rec Record) {
	b.mu.Lock()
	epoch, installs := b.epoch, b.installs
	b.mu.Unlock()
	b.remember(rec, epoch, installs)
}

func (b *Breaker) invalidate() {
	b.mu.Lock()
	b.epoch++
	b.mu.Unlock()
}

func (b *Breaker) doneClosed(ctx context.Context, gen uint64, trial bool, callErr error) {
	if b.excludedIn(ctx, callErr) {
		return
	}
	if b.successful(callErr) {
		// Only write when this instance knows of failures to forget: a
		// healthy breaker costs no writes.
		b.mu.Lock()
		// Only a call let through after the failure proves recovery; one
		// that was already in flight proves nothing.
		if trial && b.suspectGen == gen {
			b.suspectGen = 0
		}
		clear := b.have && b.rec.Generation == gen && b.rec.State == StateClosed && b.rec.Failures > 0
		b.mu.Unlock()
		if !clear {
			return
		}
		sctx, cancel := b.storeCtx(ctx)
		defer cancel()
		switch err := b.store.ClearFailures(sctx, b.s.Name, gen); {
		case err == nil:
			b.mu.Lock()
			if b.rec.Generation == gen {
				b.rec.Failures = 0
			}
			b.mu.Unlock()
		case errors.Is(err, ErrConflict):
			b.invalidate()
		default:
			b.enterFallback(ctx, err)
		}
		return
	}
	// A local failure: stop trusting the cache before anything else, so
	// this instance's next callers wait for the fleet's verdict, and go
	// suspect.
	b.mu.Lock()
	b.epoch++
	b.suspectGen = gen
	b.mu.Unlock()
	sctx, cancel := b.storeCtx(ctx)
	defer cancel()
	rec, err := b.store.AddFailure(sctx, b.s.Name, gen)
	switch {
	case err == nil:
		b.rememberOwn(rec)
		if rec.Failures >= b.s.FailureThreshold {
			b.trip(sctx, rec)
		}
	case errors.Is(err, ErrConflict):
		// The generation moved on (most likely another instance opened
		// the breaker): learn the new state now.
		if _, err := b.refresh(ctx); err != nil {
			b.enterFallback(ctx, err)
		}
	default:
		b.enterFallback(ctx, err)
	}
}

func (b *Breaker) trip(ctx context.Context, rec Record) {
	now := b.s.Now()
	next := Record{
		State: StateOpen, Generation: rec.Generation + 1, Since: now,
		OpenUntil: now.Add(b.s.Cooldown), Failures: rec.Failures, OpenedAt: now,
		Reason: fmt.Sprintf("%d consecutive failures", rec.Failures),
	}
	if rec.OpenedAt.After(time.Time{}) && now.Sub(rec.Since) < b.capped(rec.Reopens) {
		// Hysteresis: re-opened sooner after closing than the cooldown it
		// had just served. A flapping Keycloak keeps its back-off growing
		// (cooldown × 2ⁿ up to MaxCooldown) instead of starting again at
		// one cooldown, which bounds alerts and probes to one pair per
		// back-off period however fast it flaps.
		n := rec.Reopens + 1
		next.Reopens, next.OpenUntil = n, now.Add(b.backoff(n))
		next.Reason += fmt.Sprintf("; flapping: re-opened %s after closing (back-off %d)", now.Sub(rec.Since).Round(time.Second), n)
	}
	switch err := b.swap(ctx, rec.Generation, rec.State, next); {
	case err == nil:
		b.rememberOwn(next)
		b.emit(ctx, rec.State, next)
	case errors.Is(err, ErrConflict):
		// Another instance won the transition; it reports it.
		if _, err := b.refresh(ctx); err != nil {
			b.enterFallback(ctx, err)
		}
	default:
		b.enterFallback(ctx, err)
	}
}

// tryProbe tries to win the probe lease on an open breaker whose cooldown
// ended, or on a half-open one whose lease expired. One attempt per instance
// at a time; across the fleet the conditional write picks one winner.
func (b *Breaker) tryProbe(ctx context.Context, rec Record) (func(error), error) {
	b.mu.Lock()
	if b.probing {
		b.mu.Unlock()
		return nil, ErrOpen
	}
	b.probing = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.probing = false
		b.mu.Unlock()
	}()
	now := b.s.Now()
	reason := "cooldown over; probing"
	if rec.State == StateHalfOpen {
		reason = "probe lease of " + rec.LeaseHolder + " expired; probing"
	}
	lease := Record{
		State: StateHalfOpen, Generation: rec.Generation + 1, Since: now,
		OpenUntil: rec.OpenUntil, Reopens: rec.Reopens, OpenedAt: rec.OpenedAt,
		LeaseUntil: now.Add(b.s.ProbeLease), LeaseHolder: b.s.Instance, Reason: reason,
	}
	sctx, cancel := b.storeCtx(ctx)
	defer cancel()
	switch err := b.swap(sctx, rec.Generation, rec.State, lease); {
	case err == nil:
		b.rememberOwn(lease)
		if rec.State == StateHalfOpen {
			// Not a transition (no event), but an operator wants to know
			// an instance died holding the lease.
			b.log.WarnContext(ctx, "probe lease expired; taken over", "previous_holder", rec.LeaseHolder, "generation", lease.Generation)
		}
		b.emit(ctx, rec.State, lease)
		return func(err error) { b.doneProbe(ctx, lease, err) }, nil
	case errors.Is(err, ErrConflict):
		b.invalidate()
		return nil, ErrOpen
	default:
		b.enterFallback(ctx, err)
		return b.allowFallback(ctx)
	}
}

func (b *Breaker) doneProbe(ctx context.Context, lease Record, callErr error) {
	if b.excludedIn(ctx, callErr) {
		// No verdict: the lease expires and another probe follows. Handing
		// the lease back would be a transition of its own to report.
		return
	}
	now := b.s.Now()
	var next Record
	if b.successful(callErr) {
		// Reopens stays: if the breaker re-opens within the back-off it
		// just served, the back-off goes on growing (see trip).
		next = Record{State: StateClosed, Generation: lease.Generation + 1, Since: now, Reason: "probe succeeded",
			OpenedAt: lease.OpenedAt, Reopens: lease.Reopens}
	} else {
		n := lease.Reopens + 1
		next = Record{
			State: StateOpen, Generation: lease.Generation + 1, Since: now,
			OpenUntil: now.Add(b.backoff(n)), Reopens: n, OpenedAt: lease.OpenedAt,
			Reason: fmt.Sprintf("probe failed (%d in a row)", n),
		}
	}
	sctx, cancel := b.storeCtx(ctx)
	defer cancel()
	switch err := b.swap(sctx, lease.Generation, StateHalfOpen, next); {
	case err == nil:
		b.rememberOwn(next)
		b.emit(ctx, StateHalfOpen, next)
	case errors.Is(err, ErrConflict):
		// Our lease expired and someone else probes, or an operator acted.
		b.log.Warn("probe verdict lost: the lease was taken over", "generation", lease.Generation)
		b.invalidate()
	default:
		b.enterFallback(ctx, err)
	}
}

// swap is the conditional write of a transition from state from, with
// its outcome made certain where it can be. A write whose answer was lost
// (a timeout, a dropped connection) may have landed: then this instance
// won the transition and must report it, or nobody will (finding 4 of
// RELIABILITY.md), and a probe lease it holds without knowing would block
// probes until it expires (finding 16). So the record is read back at once
// with a fresh deadline: the exact record written means won (nil); any
// other generation means lost (ErrConflict). If that read fails too, the
// error is returned and the transition is kept as unsure, announced by the
// first later read that shows it landed.
func (b *Breaker) swap(ctx context.Context, expect uint64, from State, next Record) error {
	err := b.store.Swap(ctx, b.s.Name, expect, next)
	if err == nil || errors.Is(err, ErrConflict) {
		return err
	}
	rctx, cancel := b.storeCtx(context.WithoutCancel(ctx))
	defer cancel()
	rec, rerr := b.store.Get(rctx, b.s.Name)
	switch {
	case rerr == nil && sameRecord(rec, next):
		b.log.WarnContext(ctx, "breaker write answered an error but landed; transition won", "generation", next.Generation, "err", err)
		return nil
	case rerr == nil || errors.Is(rerr, ErrNotFound) || errors.Is(rerr, ErrCorrupt):
		return fmt.Errorf("%w (the write did not land: %v)", ErrConflict, err)
	}
	b.mu.Lock()
	b.unsure = &unsureSwap{from: from, rec: next}
	b.mu.Unlock()
	return err
}

// sameRecord says whether got is the record want as written: the
// generation with the same state, holder and time (stored to the ms).
func sameRecord(got, want Record) bool {
	return got.Generation == want.Generation && got.State == want.State && got.LeaseHolder == want.LeaseHolder &&
		got.Since.UnixMilli() == want.Since.UnixMilli()
}

// settleUnsure announces an unsure transition once a read shows it landed:
// the record read is it, or (for an opening) a later record of the same
// outage (OpenedAt is carried through probes and re-opens). A record that
// shows neither drops it: another instance's write won.
func (b *Breaker) settleUnsure(ctx context.Context, rec Record) {
	b.mu.Lock()
	u := b.unsure
	if u == nil || rec.Generation < u.rec.Generation {
		b.mu.Unlock()
		return
	}
	b.unsure = nil
	b.mu.Unlock()
	landed := sameRecord(rec, u.rec) ||
		(u.from == StateClosed && u.rec.State == StateOpen && rec.State != StateClosed && rec.OpenedAt.UnixMilli() == u.rec.OpenedAt.UnixMilli())
	if !landed {
		return
	}
	b.log.WarnContext(ctx, "breaker write answered an error but landed; reporting its transition late", "generation", u.rec.Generation)
	b.emit(ctx, u.from, u.rec)
}

// capped is Cooldown × 2ⁿ, capped at MaxCooldown.
func (b *Breaker) capped(n int) time.Duration {
	d := b.s.Cooldown
	for i := 0; i < n && d < b.s.MaxCooldown; i++ {
		d *= 2
	}
	return min(d, b.s.MaxCooldown)
}

// backoff is capped(n) minus up to 20% jitter so that re-probes of many
// breakers do not line up.
func (b *Breaker) backoff(n int) time.Duration {
	d := b.capped(n)
	if j := int64(d / 5); j > 0 {
		d -= time.Duration(mrand.Int64N(j))
	}
	return d
}

func (b *Breaker) emit(ctx context.Context, from State, rec Record) {
	if from == rec.State {
		return
	}
	ev := Event{Breaker: b.s.Name, From: from, To: rec.State, Generation: rec.Generation, At: rec.Since, Reason: rec.Reason,
		Failures: rec.Failures, OpenedAt: rec.OpenedAt, NextProbe: nextProbe(rec)}
	b.log.LogAttrs(ctx, levelOf(rec.State), "breaker "+string(rec.State),
		slog.String("from", string(from)), slog.Uint64("generation", rec.Generation),
		slog.String("reason", rec.Reason), slog.Time("next_probe", nextProbe(rec)))
	if b.s.Notifier != nil {
		b.s.Notifier.Notify(context.WithoutCancel(ctx), ev)
	}
}

func levelOf(s State) slog.Level {
	if s == StateOpen {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func nextProbe(rec Record) time.Time {
	switch {
	case rec.State == StateOpen && !rec.Forced:
		return rec.OpenUntil
	case rec.State == StateHalfOpen:
		return rec.LeaseUntil
	}
	return time.Time{}
}

// --- store outage ---------------------------------------------------------

func (b *Breaker) enterFallback(ctx context.Context, err error) {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // the caller went away; that says nothing about the store
	}
	now := b.s.Now()
	b.mu.Lock()
	first := b.fallbackSince.IsZero()
	if first {
		b.fallbackSince = now
	}
	b.storeErr = err.Error()
	b.nextStoreTry = now.Add(b.s.StateCacheTTL)
	b.mu.Unlock()
	if first {
		b.log.ErrorContext(ctx, "breaker store unreachable; using in-process breaker", "err", err)
	}
}

// useFallback reports whether the in-process breaker decides this call.
// While the store is down, one caller per StateCacheTTL tries it again; the
// others do not wait for that attempt.
func (b *Breaker) useFallback(ctx context.Context) bool {
	now := b.s.Now()
	b.mu.Lock()
	if b.fallbackSince.IsZero() {
		b.mu.Unlock()
		return false
	}
	if b.retrying || now.Before(b.nextStoreTry) {
		b.mu.Unlock()
		return true
	}
	b.retrying = true
	b.mu.Unlock()

	_, err := b.refresh(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.retrying = false
	if err != nil {
		b.storeErr = err.Error()
		b.nextStoreTry = b.s.Now().Add(b.s.StateCacheTTL)
		return true
	}
	b.log.Info("breaker store reachable again; using the shared breaker", "down_for", now.Sub(b.fallbackSince).String())
	b.fallbackSince, b.storeErr = time.Time{}, ""
	return false
}

func (b *Breaker) allowFallback(ctx context.Context) (func(error), error) {
	b.mu.Lock()
	fb := b.fallback
	b.mu.Unlock()
	done, err := fb.Allow()
	if err != nil {
		return nil, ErrOpen // half-open with its one probe out counts as open
	}
	return func(err error) {
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			err = context.Canceled // gobreaker's IsExcluded sees it
		}
		done(err)
	}, nil
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return StateOpen
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	}
	return StateClosed
}
