package platform

import (
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/config"
)

// Finding 8: recovery after a long outage is bounded by the probe
// back-off; it is capped at five minutes whatever the cooldown (16 × 60 s
// would be 16 minutes), and is 16 cooldowns for short cooldowns.
func TestProbeBackoffIsCapped(t *testing.T) {
	for cooldown, want := range map[time.Duration]time.Duration{
		time.Second:      16 * time.Second,
		10 * time.Second: 160 * time.Second,
		time.Minute:      5 * time.Minute,
		10 * time.Minute: 10 * time.Minute, // never below one cooldown
	} {
		if got := MaxProbeBackoff(cooldown); got != want {
			t.Errorf("cooldown %s: max back-off %s, want %s", cooldown, got, want)
		}
	}
	cfg := config.Default()
	if got := BreakerSettings(cfg, nil).MaxCooldown; got != 5*time.Minute {
		t.Errorf("default config: breaker MaxCooldown %s, want 5m (cooldown %s)", got, cfg.Keycloak.Resilience.Cooldown())
	}
}
