package config

import (
	"strings"
	"testing"
)

// Lambda gets the denied routes from one environment variable, as a
// JSON list or comma-separated; a value that is not a route key is a
// validation error, not a silently ignored line.
func TestDenyDegradedRoutesFromEnvironment(t *testing.T) {
	for _, raw := range []string{`["POST /payments","DELETE /accounts/{id}"]`, "POST /payments, DELETE /accounts/{id}"} {
		cfg, err := load("", env(map[string]string{"KCGUARD_AUTHORIZER_DENY_DEGRADED_ROUTES": raw}))
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.Authorizer.DenyDegradedRoutes
		if len(got) != 2 || got[0] != "POST /payments" || got[1] != "DELETE /accounts/{id}" {
			t.Errorf("%q: %q", raw, got)
		}
	}
	cfg := Default()
	cfg.Authorizer.DenyDegradedRoutes = []string{"payments"}
	cfg.Pull.MaxGap = cfg.Pull.CompareEvery * 2
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `"payments" is not a route key`) || !strings.Contains(err.Error(), "pull.compare_every") {
		t.Errorf("validate: %v", err)
	}
}
