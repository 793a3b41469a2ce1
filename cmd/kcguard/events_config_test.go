package main

import (
	"strings"
	"testing"

	"github.com/kcguard/kcguard/internal/testenv"
)

// A realm of this test's own, with events off as a fresh Keycloak realm
// has them: validate names the problem, fix turns the events on (keeping
// the realm's other settings) and validate then passes that check.
func TestConfigFixTurnsOnRealmEvents(t *testing.T) {
	kcURL, _ := testenv.Keycloak(t)
	admin := testenv.NewKeycloakAdmin(t)
	realm := testenv.Unique("pull-events")
	secret := testenv.Unique("secret")
	admin.Do("POST", "", map[string]any{
		"realm": realm, "enabled": true, "eventsEnabled": false, "adminEventsEnabled": false,
		"eventsListeners": []string{"jboss-logging"},
		"clients": []any{map[string]any{"clientId": "kcguard", "secret": secret, "publicClient": false,
			"serviceAccountsEnabled": true, "directAccessGrantsEnabled": true, "standardFlowEnabled": false}},
		"users": []any{map[string]any{"username": "service-account-kcguard", "enabled": true, "serviceAccountClientId": "kcguard",
			"clientRoles": map[string]any{"realm-management": []string{"manage-users", "view-users", "query-users", "view-events", "manage-events"}}}},
	}, nil)
	t.Cleanup(func() { admin.Try("DELETE", realm, nil, nil) })
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	t.Setenv("KCGUARD_PACKAGES", `{"adopted": {"realm": "`+realm+`", "client_id": "kcguard", "client_secret": "`+secret+`"}}`)
	emptyAWS(t)

	out, _ := run(t, "config", "validate")
	if !strings.Contains(out, "✗ package adopted: realm "+realm+" events for sync pull: admin events off; admin event details off; user events off") {
		t.Fatalf("validate must report the realm's events off:\n%s", out)
	}
	out, err := run(t, "config", "fix")
	if err != nil || !strings.Contains(out, "• events of package adopted: turned on") {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	if !strings.Contains(out, "✓ package adopted: realm "+realm+" events for sync pull") {
		t.Fatalf("validate after fix:\n%s", out)
	}
	var cfg struct {
		EventsEnabled, AdminEventsEnabled, AdminEventsDetailsEnabled bool
		EventsListeners                                              []string
	}
	admin.Do("GET", realm+"/events/config", nil, &cfg)
	if !cfg.EventsEnabled || !cfg.AdminEventsEnabled || !cfg.AdminEventsDetailsEnabled || len(cfg.EventsListeners) != 1 {
		t.Fatalf("realm event settings after fix: %+v", cfg)
	}
	if out, _ := run(t, "config", "fix"); !strings.Contains(out, "events of package adopted: already on") {
		t.Fatalf("second fix must change nothing:\n%s", out)
	}
}
