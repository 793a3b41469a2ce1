package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

const kc = "http://keycloak.test:8080"

type fixture struct {
	clock *clock
	store *flakyStore
	ev    *events
	logs  *bytes.Buffer
}

func newFixture() *fixture {
	return &fixture{clock: newClock(), store: &flakyStore{Store: breaker.NewMemoryStore()}, ev: &events{}, logs: &bytes.Buffer{}}
}

// instance is one simulated Lambda instance on the fixture's shared store.
func (f *fixture) instance(id string, tweak ...func(*breaker.Settings)) *breaker.Breaker {
	s := breaker.Settings{
		Name: kc, FailureThreshold: 3, Cooldown: time.Minute, MaxCooldown: 5 * time.Minute,
		StateCacheTTL: 30 * time.Second, ProbeLease: 20 * time.Second,
		Now: f.clock.Now, Notifier: f.ev, Instance: id,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, nil)),
	}
	for _, fn := range tweak {
		fn(&s)
	}
	return breaker.New(f.store, s)
}

func TestOpensAfterThresholdForEveryone(t *testing.T) {
	f := newFixture()
	a, b := f.instance("a"), f.instance("b")
	call(t, b, nil) // b caches closed before the outage
	for i := range 3 {
		if !call(t, a, errKeycloakDown) {
			t.Fatalf("call %d rejected before the threshold", i+1)
		}
	}
	if _, err := a.Allow(context.Background()); !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("Allow after threshold = %v, want ErrOpen (gobreaker.ErrOpenState)", err)
	}
	// b still trusts its cache: it pays one failure, then re-reads at once.
	if !call(t, b, errKeycloakDown) {
		t.Fatal("b should not know yet: its cache is fresh")
	}
	if call(t, b, nil) {
		t.Fatal("b called Keycloak again after a local failure showed the breaker open")
	}
	if got, want := f.ev.transitions(), []string{"closed>open"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if ev := f.ev.list()[0]; ev.Breaker != kc || ev.Generation != 2 || !ev.At.Equal(f.clock.Now()) || !strings.Contains(ev.Reason, "3 consecutive") {
		t.Fatalf("event %+v", ev)
	}
}

func TestWhichOutcomesCount(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		count string // "failure", "success" or "excluded"
	}{
		{"ok", nil, "success"},
		{"wrong password 400 invalid_grant", keycloak.NewError("password grant", "homechoice", keycloak.ErrInvalidCredentials, 400, "invalid_grant"), "success"},
		{"wrapped invalid_grant", fmt.Errorf("login: %w", keycloak.NewError("password grant", "homechoice", keycloak.ErrInvalidCredentials, 400, "invalid_grant")), "success"},
		{"not found 404", keycloak.NewError("password grant", "homechoice", keycloak.ErrNotFound, 404, ""), "success"},
		{"client refused 401", keycloak.NewError("password grant", "homechoice", keycloak.ErrRejected, 401, "unauthorized_client"), "success"},
		{"server error 503", keycloak.NewError("password grant", "homechoice", keycloak.ErrUnavailable, 503, ""), "failure"},
		{"our own timeout", keycloak.NewError("password grant", "homechoice", keycloak.ErrUnavailable, 0, "timeout"), "failure"},
		{"plain transport error", errKeycloakDown, "failure"},
		{"caller cancelled", fmt.Errorf("login: %w", context.Canceled), "excluded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture()
			b := f.instance("a", func(s *breaker.Settings) { s.IsSuccessful = keycloakAnswered })
			call(t, b, errKeycloakDown)
			call(t, b, errKeycloakDown)
			call(t, b, c.err)
			st, _ := b.Status(context.Background())
			want := map[string]breaker.State{"failure": breaker.StateOpen, "success": breaker.StateClosed, "excluded": breaker.StateClosed}[c.count]
			if st.State != want {
				t.Fatalf("state %s after 2 failures and %v, want %s", st.State, c.err, want)
			}
			wantFailures := map[string]int{"failure": 3, "success": 0, "excluded": 2}[c.count]
			if st.Failures != wantFailures {
				t.Fatalf("failures %d, want %d", st.Failures, wantFailures)
			}
		})
	}
}

func TestCustomIsExcluded(t *testing.T) {
	f := newFixture()
	errThrottled := errors.New("throttled by our own limiter")
	b := f.instance("a", func(s *breaker.Settings) { s.IsExcluded = func(err error) bool { return errors.Is(err, errThrottled) } })
	for range 5 {
		call(t, b, errThrottled)
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateClosed || st.Failures != 0 {
		t.Fatalf("excluded outcomes counted: %+v", st)
	}
}

func TestSuccessResetsConsecutiveFailures(t *testing.T) {
	f := newFixture()
	a, b := f.instance("a"), f.instance("b")
	call(t, a, errKeycloakDown)
	call(t, b, errKeycloakDown)
	call(t, b, nil)
	call(t, a, errKeycloakDown)
	call(t, b, errKeycloakDown)
	if st, _ := a.Status(context.Background()); st.State != breaker.StateClosed || st.Failures != 2 {
		t.Fatalf("status %+v, want closed with 2 failures", st)
	}
}

func trip(t *testing.T, f *fixture, b *breaker.Breaker) {
	t.Helper()
	for range 3 {
		call(t, b, errKeycloakDown)
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateOpen {
		t.Fatalf("not open after 3 failures: %+v", st)
	}
}

func TestOneProbeAcrossTheFleetAfterCooldown(t *testing.T) {
	f := newFixture()
	fleet := []*breaker.Breaker{f.instance("a"), f.instance("b"), f.instance("c"), f.instance("d")}
	for _, b := range fleet {
		call(t, b, nil)
	}
	trip(t, f, fleet[0])
	f.clock.Advance(time.Minute - time.Millisecond)
	for _, b := range fleet {
		if _, err := b.Allow(context.Background()); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("allowed before the cooldown ended: %v", err)
		}
	}
	f.clock.Advance(time.Millisecond)
	var probes []func(error)
	for range 3 {
		for _, b := range fleet {
			if done, err := b.Allow(context.Background()); err == nil {
				probes = append(probes, done)
			}
		}
	}
	if len(probes) != 1 {
		t.Fatalf("%d probes allowed after cooldown, want exactly 1", len(probes))
	}
	st, _ := fleet[3].Status(context.Background())
	if st.State != breaker.StateHalfOpen || st.LeaseHolder != "a" || !st.NextProbe.Equal(f.clock.Now().Add(20*time.Second)) {
		t.Fatalf("status during probe %+v", st)
	}
	probes[0](nil)
	if !call(t, fleet[0], nil) {
		t.Fatal("the prober's instance should be closed at once")
	}
	// Others learn within StateCacheTTL.
	f.clock.Advance(30 * time.Second)
	for _, b := range fleet {
		if !call(t, b, nil) {
			t.Fatal("instance still rejecting a StateCacheTTL after close")
		}
	}
	if got, want := f.ev.transitions(), []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestFailedProbeBacksOffThenResetsOnClose(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	trip(t, f, b)
	wantMax := []time.Duration{2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} // capped at MaxCooldown
	wait := time.Minute
	for i, max := range wantMax {
		f.clock.Advance(wait)
		if !call(t, b, errKeycloakDown) {
			t.Fatalf("round %d: no probe after the cooldown", i)
		}
		st, _ := b.Status(context.Background())
		wait = st.NextProbe.Sub(f.clock.Now())
		if st.State != breaker.StateOpen || st.Reopens != i+1 || wait > max || wait < max*4/5 {
			t.Fatalf("round %d: %+v, next probe in %s, want open within [%s, %s]", i, st, wait, max*4/5, max)
		}
		f.clock.Advance(wait - time.Millisecond)
		if call(t, b, nil) {
			t.Fatalf("round %d: probe allowed before the back-off ended", i)
		}
		wait = time.Millisecond
	}
	f.clock.Advance(wait)
	call(t, b, nil) // probe succeeds
	// Keycloak stays up for longer than the back-off just served: the
	// next outage starts again at one cooldown.
	f.clock.Advance(5 * time.Minute)
	trip(t, f, b)
	st, _ := b.Status(context.Background())
	if st.Reopens != 0 || !st.NextProbe.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("back-off not reset by a close that held: %+v", st)
	}
}

// Hysteresis: a breaker that re-opens sooner after closing than the
// cooldown it had served (a flapping Keycloak) keeps its back-off growing.
func TestFlappingKeepsTheBackOffGrowing(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	trip(t, f, b)
	for i, max := range []time.Duration{2 * time.Minute, 4 * time.Minute, 5 * time.Minute} {
		st, _ := b.Status(context.Background())
		f.clock.Advance(st.NextProbe.Sub(f.clock.Now()))
		if !call(t, b, nil) { // the probe lands in an up second: closed
			t.Fatalf("flap %d: no probe", i)
		}
		f.clock.Advance(time.Second)
		trip(t, f, b) // and the next down second opens it again
		st, _ = b.Status(context.Background())
		wait := st.NextProbe.Sub(f.clock.Now())
		if st.Reopens != i+1 || wait > max || wait < max*4/5 || !strings.Contains(st.Reason, "flapping") {
			t.Fatalf("flap %d: %+v, next probe in %s, want within [%s, %s]", i, st, wait, max*4/5, max)
		}
	}
}

func TestAbandonedProbeLeaseExpires(t *testing.T) {
	f := newFixture()
	a, b := f.instance("a"), f.instance("b")
	trip(t, f, a)
	f.clock.Advance(time.Minute)
	lostProbe, err := a.Allow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// a's Lambda dies here. Until the lease runs out, nobody else probes.
	f.clock.Advance(20*time.Second - time.Millisecond)
	if call(t, b, nil) {
		t.Fatal("b probed while a's lease was valid")
	}
	f.clock.Advance(time.Millisecond)
	done, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("b cannot take over an expired lease: %v", err)
	}
	lostProbe(errKeycloakDown) // a late verdict from the old lease must not count
	done(nil)
	if st, _ := b.Status(context.Background()); st.State != breaker.StateClosed {
		t.Fatalf("state %s, want closed by b's probe", st.State)
	}
	if got, want := f.ev.transitions(), []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestCancelledProbeLeavesLeaseToExpire(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	trip(t, f, b)
	f.clock.Advance(time.Minute)
	call(t, b, context.Canceled)
	if st, _ := b.Status(context.Background()); st.State != breaker.StateHalfOpen {
		t.Fatalf("state %s, want half-open until the lease expires", st.State)
	}
	f.clock.Advance(20 * time.Second)
	if !call(t, b, nil) {
		t.Fatal("no new probe after the lease expired")
	}
}

func TestDisabledAlwaysAllows(t *testing.T) {
	f := newFixture()
	b := f.instance("a", func(s *breaker.Settings) { s.Disabled = true })
	for range 10 {
		if !call(t, b, errKeycloakDown) {
			t.Fatal("disabled breaker rejected a call")
		}
	}
	if st := b.State(context.Background()); st.State != breaker.StateDisabled {
		t.Fatalf("State = %s, want disabled", st.State)
	}
	if n := f.store.gets.Load() + f.store.writes(); n != 0 {
		t.Fatalf("disabled breaker made %d store calls", n)
	}
}

func TestForceOpenHoldsUntilReleased(t *testing.T) {
	f := newFixture()
	op, b := f.instance("cli"), f.instance("lambda")
	call(t, b, nil)
	st, err := op.ForceOpen(context.Background())
	if err != nil || st.State != breaker.StateOpen || !st.Forced || !st.NextProbe.IsZero() {
		t.Fatalf("ForceOpen = %+v, %v", st, err)
	}
	f.clock.Advance(30 * time.Second) // b's cache expires
	for range 5 {
		if call(t, b, nil) {
			t.Fatal("call allowed while forced open")
		}
		f.clock.Advance(time.Hour)
	}
	st, err = op.ForceClose(context.Background())
	if err != nil || st.State != breaker.StateClosed || st.Forced {
		t.Fatalf("ForceClose = %+v, %v", st, err)
	}
	f.clock.Advance(30 * time.Second)
	if !call(t, b, nil) {
		t.Fatal("call rejected after ForceClose")
	}
	if got, want := f.ev.transitions(), []string{"closed>open", "open>closed"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestResetClosesAndClearsBackoff(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	trip(t, f, b)
	f.clock.Advance(time.Minute)
	call(t, b, errKeycloakDown) // failed probe: reopens 1
	before, _ := b.Status(context.Background())
	st, err := b.Reset(context.Background())
	if err != nil || st.State != breaker.StateClosed || st.Reopens != 0 || st.Failures != 0 || st.Generation <= before.Generation {
		t.Fatalf("Reset = %+v, %v (before %+v)", st, err, before)
	}
}

func TestStatusReportsTheSharedRecord(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	call(t, b, errKeycloakDown)
	f.clock.Advance(time.Second)
	call(t, b, errKeycloakDown)
	st, err := b.Status(context.Background())
	if err != nil || st.Breaker != kc || st.State != breaker.StateClosed || st.Failures != 2 || st.Generation != 1 || st.Fallback {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	call(t, b, errKeycloakDown)
	st, _ = b.Status(context.Background())
	if st.State != breaker.StateOpen || st.Generation != 2 || !st.Since.Equal(f.clock.Now()) || !st.NextProbe.Equal(f.clock.Now().Add(time.Minute)) {
		t.Fatalf("Status when open = %+v", st)
	}
}

func TestCorruptRecordIsRecreatedClosed(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprint("keepGeneration=", keep), func(t *testing.T) {
			f := newFixture()
			mem := f.store.Store.(*breaker.MemoryStore)
			b := f.instance("a")
			trip(t, f, b)
			mem.Corrupt(kc, keep)
			st, err := b.Status(context.Background())
			if err != nil || st.State != breaker.StateClosed || st.Fallback {
				t.Fatalf("Status over corrupt record = %+v, %v", st, err)
			}
			if !strings.Contains(f.logs.String(), "corrupt") {
				t.Fatalf("recreation not logged:\n%s", f.logs)
			}
			if !call(t, b, nil) {
				t.Fatal("call rejected after recreation")
			}
		})
	}
}

func TestStoreDownFallsBackInProcess(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	call(t, b, nil)
	f.store.down.Store(true)
	f.clock.Advance(30 * time.Second)
	if !call(t, b, nil) {
		t.Fatal("login blocked because the breaker store is down")
	}
	st := b.State(context.Background())
	if !st.Fallback || st.State != breaker.StateClosed || !strings.Contains(st.StoreError, "unreachable") {
		t.Fatalf("State while store down = %+v", st)
	}
	if !strings.Contains(f.logs.String(), "using in-process breaker") {
		t.Fatalf("fallback not logged:\n%s", f.logs)
	}
	// The in-process breaker keeps the same threshold.
	for range 3 {
		call(t, b, errKeycloakDown)
	}
	if call(t, b, nil) {
		t.Fatal("in-process fallback did not open after 3 failures")
	}
	if st := b.State(context.Background()); st.State != breaker.StateOpen || !st.Fallback {
		t.Fatalf("State = %+v, want open fallback", st)
	}
	// The store comes back: after StateCacheTTL the shared breaker decides again.
	f.store.down.Store(false)
	f.clock.Advance(30 * time.Second)
	if !call(t, b, nil) {
		t.Fatal("shared breaker (closed) not used after the store came back")
	}
	if st, _ := b.Status(context.Background()); st.Fallback {
		t.Fatalf("still on fallback: %+v", st)
	}
}

func TestClosedCostsNoWritesAndOneReadPerTTL(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	call(t, b, nil) // creates the record
	gets, writes := f.store.gets.Load(), f.store.writes()
	const periods = 10
	for range periods * 100 {
		if !call(t, b, nil) {
			t.Fatal("rejected while healthy")
		}
		f.clock.Advance(300 * time.Millisecond) // 100 calls per 30 s TTL
	}
	if w := f.store.writes() - writes; w != 0 {
		t.Fatalf("%d writes for successful calls, want 0", w)
	}
	if r := f.store.gets.Load() - gets; r > periods {
		t.Fatalf("%d reads over %d cache periods, want at most one per period", r, periods)
	}
}

func TestStateIsCheap(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	call(t, b, nil)
	gets := f.store.gets.Load()
	for range 100 {
		if st := b.State(context.Background()); st.State != breaker.StateClosed {
			t.Fatalf("State = %+v", st)
		}
	}
	if n := f.store.gets.Load() - gets; n != 0 {
		t.Fatalf("State made %d reads within the cache period", n)
	}
}

func TestExecute(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	for range 3 {
		if err := b.Execute(context.Background(), func(context.Context) error { return errKeycloakDown }); !errors.Is(err, errKeycloakDown) {
			t.Fatalf("Execute = %v, want the call's error", err)
		}
	}
	called := false
	err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil })
	if !errors.Is(err, breaker.ErrOpen) || called {
		t.Fatalf("Execute when open = %v (called %v), want ErrOpen without calling", err, called)
	}
}

func TestDefaults(t *testing.T) {
	// A zero Settings (but a clock) behaves as documented: enabled,
	// threshold 3, cooldown 60 s.
	f := newFixture()
	b := breaker.New(f.store, breaker.Settings{Name: kc, Now: f.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	trip(t, f, b)
	f.clock.Advance(60*time.Second - time.Millisecond)
	if call(t, b, nil) {
		t.Fatal("probe before the default 60 s cooldown")
	}
	f.clock.Advance(time.Millisecond)
	if !call(t, b, nil) {
		t.Fatal("no probe after the default cooldown")
	}
}

func TestCallerCancellationIsExcludedEvenWhenFlattened(t *testing.T) {
	f := newFixture()
	b := f.instance("a", func(s *breaker.Settings) { s.IsSuccessful = keycloakAnswered })
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cancel() // the user went away mid-call; an adapter may report it as a transport failure
		done(errKeycloakDown)
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateClosed || st.Failures != 0 {
		t.Fatalf("cancelled calls counted as failures: %+v", st)
	}
}

func TestSuspectInstanceSendsOneTrialAtATime(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	call(t, b, errKeycloakDown) // one failure: the fleet is still closed
	trial, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("no trial call after one failure: %v", err)
	}
	if _, err := b.Allow(context.Background()); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("second concurrent call while the trial is out: %v, want ErrOpen", err)
	}
	trial(nil)
	var dones []func(error)
	for range 3 {
		done, err := b.Allow(context.Background())
		if err != nil {
			t.Fatalf("concurrent calls not allowed after a successful trial: %v", err)
		}
		dones = append(dones, done)
	}
	for _, d := range dones {
		d(nil)
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateClosed || st.Failures != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestExecutePanicCountsAsFailure(t *testing.T) {
	f := newFixture()
	b := f.instance("a")
	for range 3 {
		func() {
			defer func() { _ = recover() }()
			_ = b.Execute(context.Background(), func(context.Context) error { panic("adapter bug") })
		}()
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateOpen {
		t.Fatalf("state %s after 3 panics, want open", st.State)
	}
}
