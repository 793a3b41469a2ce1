package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// Issue 15, flapping: Keycloak answers every other second for 10 minutes
// while a fleet of 4 instances sends 40 logins a second each. What bounds
// it: only opened (from closed) and closed are alerted, by the transition's
// winner; the fleet-wide breaker lets no call through while open except one
// probe; and a breaker that re-opens sooner after closing than the cooldown
// it served keeps its back-off growing (cooldown × 2ⁿ up to max_cooldown,
// 16 × cooldown), so the flapping costs one alert pair per back-off period.
// Simulated time (injected clock), so the figures are exact, not noisy.
func TestFlappingKeycloakIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		// up says whether Keycloak answers a call made in simulated second
		// sec as the tick's n-th call.
		up func(sec int64, n int) bool
	}{
		{"every other second", func(sec int64, _ int) bool { return sec%2 == 0 }},
		// The worst case for alerts: the probe, alone, always succeeds;
		// the fleet's traffic then fails at once (an overloaded Keycloak).
		{"answers only when idle", func(_ int64, n int) bool { return n <= 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) { flap(t, tc.up) })
	}
}

func flap(t *testing.T, keycloakUp func(sec int64, n int) bool) {
	const (
		instances = 4
		perTick   = 4 // calls per instance per 100 ms tick: 40/s each, 160/s fleet-wide
		minutes   = 60
	)
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	start := now
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var published []string
	notifier := breaker.NotifierFunc(func(_ context.Context, ev breaker.Event) {
		if a, ok := alerts.Of(ev, 0, nil); ok {
			mu.Lock()
			published = append(published, a.Kind)
			mu.Unlock()
		}
	})
	store := breaker.NewMemoryStore()
	fleet := make([]*breaker.Breaker, instances)
	for i := range fleet {
		fleet[i] = breaker.New(store, breaker.Settings{Name: "http://kc", FailureThreshold: 3, Cooldown: time.Minute,
			StateCacheTTL: 5 * time.Second, Now: clock, Instance: fmt.Sprint("i", i), Notifier: notifier,
			Logger: slog.New(slog.DiscardHandler)})
	}
	down := errors.New("keycloak unreachable")
	calls := map[int64]int{} // Keycloak calls per simulated second
	ctx := context.Background()
	for tick := 0; tick < minutes*600; tick++ {
		mu.Lock()
		now = now.Add(100 * time.Millisecond)
		sec := now.Sub(start).Milliseconds() / 1000
		mu.Unlock()
		n := 0
		for _, b := range fleet {
			for range perTick {
				done, err := b.Allow(ctx)
				if err != nil {
					continue
				}
				calls[sec]++
				n++
				if keycloakUp(sec, n) {
					done(nil)
				} else {
					done(down)
				}
			}
		}
	}
	total, peak := 0, 0
	for _, n := range calls {
		total += n
		peak = max(peak, n)
	}
	perMinute := float64(len(published)) / minutes
	t.Logf("flapping for %d min, %d instances × %d logins/s: %d alerts (%.2f per minute); "+
		"Keycloak calls %d (%.1f/s on average, peak %d/s) of %d attempted (%d/s)",
		minutes, instances, perTick*10, len(published), perMinute, total, float64(total)/(minutes*60), peak,
		minutes*600*instances*perTick, instances*perTick*10)
	// At most one opened/closed pair per back-off period, and the periods
	// are at least 0.8 × 1, 2, 4, 8, 16, 16... minutes (jitter takes up to
	// 20% off): in 60 minutes at most 7 periods, 15 alerts, even if every
	// probe landed in an up second. Without the hysteresis every close
	// would start again at one cooldown: up to 2 alerts a minute.
	bound, elapsed := 1, time.Duration(0)
	for n := 0; elapsed < minutes*time.Minute; n++ {
		elapsed += time.Duration(0.8 * float64(time.Minute<<min(n, 4)))
		bound += 2
	}
	if len(published) > bound {
		t.Errorf("%d alerts in %d minutes of flapping: an alert storm", len(published), minutes)
	}
	// Keycloak sees a small fraction of the attempts: only while closed
	// (until the fleet counts 3 failures) and one probe per back-off.
	if attempted := minutes * 600 * instances * perTick; total*20 > attempted {
		t.Errorf("Keycloak got %d of %d attempted calls: a thundering herd", total, attempted)
	}
}
