package breaker_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// fakeKeycloak counts what reaches it. Healthy calls succeed; once failing,
// every call fails like a refused connection.
type fakeKeycloak struct {
	failing  atomic.Bool
	ok, fail atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64 // most calls inside it at once while failing

	// Probe accounting for recovery: calls that entered before the first
	// call of the phase returned. Only the probe may be in that window.
	mu          sync.Mutex
	watching    bool
	returned    bool
	beforeFirst int
}

func (k *fakeKeycloak) Call() error {
	n := k.inflight.Add(1)
	defer k.inflight.Add(-1)
	k.mu.Lock()
	if k.watching && !k.returned {
		k.beforeFirst++
	}
	k.mu.Unlock()
	failing := k.failing.Load()
	if failing {
		for p := k.peak.Load(); n > p && !k.peak.CompareAndSwap(p, n); p = k.peak.Load() {
		}
	}
	runtime.Gosched() // let other callers overlap, as network calls would
	k.mu.Lock()
	if k.watching {
		k.returned = true
	}
	k.mu.Unlock()
	if failing {
		k.fail.Add(1)
		return errKeycloakDown
	}
	k.ok.Add(1)
	return nil
}

func (k *fakeKeycloak) watch() {
	k.mu.Lock()
	k.watching, k.returned, k.beforeFirst = true, false, 0
	k.mu.Unlock()
}

func (k *fakeKeycloak) probes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.beforeFirst
}

// FleetResult is what a fleet run measured.
type FleetResult struct {
	PaidFailure  int64 // Keycloak calls that failed before every instance stopped
	InFlight     int64 // of those, let through before their instance had seen a failure
	Informed     int64 // of those, let through after
	PeakInFlight int64 // most calls inside Keycloak at once while it failed
}

// runFleet drives 8 instances × 200 goroutines through an outage and a
// recovery, with a frozen clock so only Advance moves cooldowns.
func runFleet(t *testing.T, store breaker.Store) FleetResult {
	const instances, goroutines, threshold = 8, 200, 3
	clk, ev, k := newClock(), &events{}, &fakeKeycloak{}
	name := testenv.Unique(kc)
	fleet := make([]*breaker.Breaker, instances)
	for i := range fleet {
		fleet[i] = breaker.New(store, breaker.Settings{
			Name: name, FailureThreshold: threshold, Cooldown: time.Minute, MaxCooldown: 4 * time.Minute,
			StateCacheTTL: 30 * time.Second, ProbeLease: 20 * time.Second, StoreTimeout: 10 * time.Second,
			Now: clk.Now, Notifier: ev, Instance: fmt.Sprint("i", i), Logger: slog.New(slog.DiscardHandler),
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var attempts atomic.Int64
	var wg sync.WaitGroup
	// A call is blind when its instance had not yet been told of any
	// failure (no done(failure) had returned) when it let the call through:
	// it was already on its way, in flight, when the instance could first
	// have known. The others are informed.
	var saw [instances]atomic.Bool
	var blind, informed, admitted atomic.Int64
	for g := range goroutines {
		i := g % instances
		b := fleet[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				attempts.Add(1)
				knew := saw[i].Load()
				done, err := b.Allow(ctx)
				if err != nil {
					runtime.Gosched()
					continue
				}
				admitted.Add(1)
				err = k.Call()
				if err != nil {
					if knew {
						informed.Add(1)
					} else {
						blind.Add(1)
					}
				}
				done(err)
				if err != nil {
					saw[i].Store(true)
				}
				admitted.Add(-1)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	// waitFor is liveness only (how long the machine takes), never an
	// assertion about timing.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s; events so far %v", what, ev.transitions())
			}
		}
	}
	moreAttempts := func(n int64) {
		t.Helper()
		a := attempts.Load()
		waitFor(fmt.Sprint(n, " more attempts"), func() bool { return attempts.Load() >= a+n })
	}
	all := func(want breaker.State) func() bool {
		return func() bool {
			for _, b := range fleet {
				if b.State(ctx).State != want {
					return false
				}
			}
			return true
		}
	}
	nEvents := func(n int) func() bool { return func() bool { return len(ev.list()) >= n } }

	moreAttempts(2000)
	if k.fail.Load() != 0 || k.ok.Load() == 0 {
		t.Fatalf("healthy phase: ok %d fail %d", k.ok.Load(), k.fail.Load())
	}

	// Outage.
	k.failing.Store(true)
	waitFor("every instance open", all(breaker.StateOpen))
	waitFor("calls in flight to finish", func() bool { return admitted.Load() == 0 })
	paid := k.fail.Load()
	moreAttempts(20000)
	if k.fail.Load() != paid {
		t.Fatalf("%d more calls reached Keycloak after every instance was open", k.fail.Load()-paid)
	}
	res := FleetResult{PaidFailure: paid, InFlight: blind.Load(), Informed: informed.Load(), PeakInFlight: k.peak.Load()}
	t.Logf("outage: %d Keycloak calls paid the failure before the fleet stopped: %d already in flight (blind) + %d let through "+
		"after their instance had seen a failure (limit threshold %d + %d instances); peak concurrent at Keycloak %d; "+
		"per-instance breakers would let ≥ %d through after seeing failures, a naive client all %d attempts",
		paid, res.InFlight, res.Informed, threshold, instances, res.PeakInFlight, threshold*instances, attempts.Load())
	if res.Informed > threshold+instances {
		t.Fatalf("%d calls were let through after their instance had seen a failure, want at most threshold+instances = %d",
			res.Informed, threshold+instances)
	}

	// Cooldown over, Keycloak still down: exactly one probe, then re-open.
	clk.Advance(time.Minute)
	waitFor("the failed probe", nEvents(3))
	moreAttempts(20000)
	if n := k.fail.Load() - paid; n != 1 {
		var sts []string
		for _, b := range fleet {
			st := b.State(ctx)
			sts = append(sts, fmt.Sprintf("%s g%d fb=%v %s", st.State, st.Generation, st.Fallback, st.StoreError))
		}
		t.Fatalf("%d calls reached Keycloak in the first half-open period, want exactly 1; events %v; instances %v", n, ev.list(), sts)
	}
	st, _ := fleet[0].Status(ctx)
	if st.State != breaker.StateOpen || st.Reopens != 1 {
		t.Fatalf("after failed probe: %+v; events %v", st, ev.transitions())
	}

	// Keycloak back; the next probe closes it for everyone.
	k.failing.Store(false)
	k.watch()
	clk.Advance(st.NextProbe.Sub(clk.Now()))
	waitFor("the successful probe", nEvents(5))
	if n := k.probes(); n != 1 {
		t.Fatalf("%d calls reached Keycloak in the second half-open period, want exactly 1", n)
	}
	clk.Advance(30 * time.Second) // the others' cached half-open copies expire
	waitFor("every instance closed", all(breaker.StateClosed))
	moreAttempts(2000)

	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if got := ev.transitions(); !slices.Equal(got, want) {
		t.Fatalf("transitions reported %v, want each exactly once: %v", got, want)
	}
	return res
}

func TestFleetMemoryStore(t *testing.T) {
	runFleet(t, breaker.NewMemoryStore())
}

func TestFleetDynamoDB(t *testing.T) {
	db, table := dynamoTable(t)
	runFleet(t, breaker.NewDynamoStore(db, table))
}
