package config

import (
	"strings"
	"testing"
	"time"
)

func TestCleanupValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Cleanup)
		want   string
	}{
		"zero schedule":         {func(c *Cleanup) { c.ScheduleMinutes = 0 }, "cleanup.schedule_minutes"},
		"no refresh window":     {func(c *Cleanup) { c.RefreshWindow = 0 }, "cleanup.refresh_window"},
		"zero concurrency":      {func(c *Cleanup) { c.RefreshConcurrency = 0 }, "cleanup.refresh_concurrency"},
		"zero delete limit":     {func(c *Cleanup) { c.DeleteLimit = 0 }, "cleanup.delete_limit"},
		"zero reconcile limit":  {func(c *Cleanup) { c.ReconcileLimit = 0 }, "cleanup.reconcile_limit"},
		"step above budget":     {func(c *Cleanup) { c.StepTimeout = 5 * time.Minute; c.TimeBudget = time.Minute }, "cleanup.step_timeout"},
		"budget above lambda":   {func(c *Cleanup) { c.TimeBudget = 20 * time.Minute }, "cleanup.step_timeout"},
		"refresh limit too big": {func(c *Cleanup) { c.RefreshLimit = 1 << 30 }, "cleanup.refresh_limit"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Default()
			cfg.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
			tc.mutate(&cfg.Cleanup)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a problem naming %s, got %v", tc.want, err)
			}
		})
	}
	cfg := Default()
	cfg.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
}

func TestCleanupFromEnvironment(t *testing.T) {
	cfg, err := load("", env(map[string]string{"KCGUARD_CLEANUP_REFRESH_WINDOW": "15m", "KCGUARD_CLEANUP_DELETE_LIMIT": "42"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cleanup.RefreshWindow != 15*time.Minute || cfg.Cleanup.DeleteLimit != 42 || cfg.Cleanup.ScheduleMinutes != 5 {
		t.Fatalf("cleanup settings %+v", cfg.Cleanup)
	}
}
