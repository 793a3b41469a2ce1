package config

import (
	"slices"
	"strings"
	"testing"
)

func TestKeycloakURLNeedsHTTPSOutsideLoopback(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://sso.example.com", true},
		{"https://sso.example.com:8443/auth", true},
		{"http://127.0.0.1:18180", true},
		{"http://localhost:8180", true},
		{"http://[::1]:8180", true},
		{"http://sso.example.com", false},
		{"http://10.0.0.5:8080", false},
		{"http://127.0.0.1.nip.io:8180", false}, // a name, not the loopback address
		{"ftp://sso.example.com", false},
		{"sso.example.com", false},
	} {
		cfg := Default()
		cfg.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
		cfg.Keycloak.URL = c.url
		err := cfg.Validate()
		if got := err == nil; got != c.ok {
			t.Errorf("keycloak.url %q: accepted=%v (%v), want %v", c.url, got, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "keycloak.url") {
			t.Errorf("keycloak.url %q: problem not named: %v", c.url, err)
		}
	}
}

func TestAdminPrincipalsAndSessionCap(t *testing.T) {
	arns := "arn:aws:iam::123456789012:user/ops-alice, arn:aws:sts::123456789012:assumed-role/kcguard-admin/*"
	cfg, err := load("", env(map[string]string{"KCGUARD_ADMIN_PRINCIPALS": arns, "KCGUARD_SESSIONS_MAX_PER_USER": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"arn:aws:iam::123456789012:user/ops-alice", "arn:aws:sts::123456789012:assumed-role/kcguard-admin/*"}
	if !slices.Equal(cfg.API.AdminPrincipals, want) || cfg.Sessions.MaxPerUser != 5 {
		t.Fatalf("principals %q, max per user %d", cfg.API.AdminPrincipals, cfg.Sessions.MaxPerUser)
	}
	cfg, err = load("", env(map[string]string{"KCGUARD_ADMIN_PRINCIPALS": `["` + want[0] + `"]`}))
	if err != nil || !slices.Equal(cfg.API.AdminPrincipals, want[:1]) {
		t.Fatalf("JSON list: %q %v", cfg.API.AdminPrincipals, err)
	}
	cfg.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
	cfg.API.AdminPrincipals = []string{"*", "arn:aws:iam::1:*/x"}
	cfg.Sessions.MaxPerUser = -2
	err = cfg.Validate()
	for _, p := range []string{`"*"`, `"arn:aws:iam::1:*/x"`, "sessions.max_per_user"} {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("problem %s not reported: %v", p, err)
		}
	}
}
