package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultsMatchTheOriginalSystem(t *testing.T) {
	r := Default().Keycloak.Resilience
	want := Resilience{Enabled: true, FailureThreshold: 3, CooldownSeconds: 60, TokenGracePeriodHours: 24,
		AllowOfflineMode: true, HealthCheckCacheSeconds: 30}
	if r != want {
		t.Fatalf("resilience defaults = %+v, want %+v", r, want)
	}
}

func TestLayering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(`
keycloak:
  url: https://kc.example:8443
  timeout: 3s
  packages:
    homechoice: {realm: homechoice, client_id: kcguard, client_secret: from-file}
  resilience:
    failure_threshold: 5
`), 0o600)
	cfg, err := load(path, env(map[string]string{
		"KCGUARD_RESILIENCE_COOLDOWN_SECONDS": "120",
		"KCGUARD_KEYCLOAK_TIMEOUT":            "1500ms",
		"KCGUARD_KEYCLOAK_SECRET_HOMECHOICE":  "from-env",
		"KCGUARD_LOCKOUT_DELAY":               "45",
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Keycloak.Resilience
	switch {
	case cfg.Keycloak.URL != "https://kc.example:8443":
		t.Errorf("url from file lost: %s", cfg.Keycloak.URL)
	case r.FailureThreshold != 5:
		t.Errorf("failure_threshold from file = %d", r.FailureThreshold)
	case r.CooldownSeconds != 120:
		t.Errorf("env did not override cooldown: %d", r.CooldownSeconds)
	case r.TokenGracePeriodHours != 24:
		t.Errorf("default lost for grace period: %d", r.TokenGracePeriodHours)
	case cfg.Keycloak.Timeout != 1500*time.Millisecond:
		t.Errorf("timeout = %s", cfg.Keycloak.Timeout)
	case cfg.Keycloak.Packages["homechoice"].ClientSecret != "from-env":
		t.Errorf("secret env did not win over the file")
	case cfg.Lockout.Delay != 45*time.Second:
		t.Errorf("plain seconds for a duration: %s", cfg.Lockout.Delay)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestPackagesFromJSONEnv(t *testing.T) {
	cfg, err := load("", env(map[string]string{
		"KCGUARD_PACKAGES": `{"janee":{"realm":"janee","client_id":"kcguard"}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Keycloak.Packages["janee"]; got.Realm != "janee" || got.ClientID != "kcguard" {
		t.Fatalf("packages from env = %+v", cfg.Keycloak.Packages)
	}
}

func TestUnknownSettingIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("keycloak:\n  resilience:\n    failure_treshold: 3\n"), 0o600)
	if _, err := load(path, env(nil)); err == nil || !strings.Contains(err.Error(), "failure_treshold") {
		t.Fatalf("misspelt key accepted: %v", err)
	}
}

func TestBadEnvironmentValue(t *testing.T) {
	_, err := load("", env(map[string]string{"KCGUARD_RESILIENCE_ENABLED": "maybe"}))
	if err == nil || !strings.Contains(err.Error(), "KCGUARD_RESILIENCE_ENABLED") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Keycloak.URL = "ftp:/nope"
	cfg.Keycloak.Resilience.FailureThreshold = 0
	cfg.Keycloak.Resilience.CooldownSeconds = 99999
	cfg.Keycloak.Resilience.TokenGracePeriodHours = -1
	cfg.Sync.Queue = "not-fifo"
	cfg.Password.Algorithm = "md5"
	err := cfg.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want ValidationError, got %v", err)
	}
	for _, want := range []string{"keycloak.url", "failure_threshold", "cooldown_seconds",
		"token_grace_period_hours", "sync.queue", "password.algorithm", "at least one package"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problem %q not reported in:\n%v", want, err)
		}
	}
	if len(ve.Problems) < 7 {
		t.Errorf("only %d problems reported", len(ve.Problems))
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := load("../../config.example.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Keycloak.Packages) != 2 {
		t.Fatalf("example has packages %v, want homechoice and janee", cfg.PackageNames())
	}
}

func TestAuthoritySettings(t *testing.T) {
	cfg, err := load("", env(map[string]string{
		"KCGUARD_KEYCLOAK_LEARN_ON_LOGIN":                        "true",
		"KCGUARD_RESILIENCE_OFFLINE_CREDENTIALS_EXPIRATION_DAYS": "14",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Keycloak.LearnOnLogin || cfg.Keycloak.Resilience.OfflineWindow() != 14*24*time.Hour {
		t.Fatalf("learn %v, window %s", cfg.Keycloak.LearnOnLogin, cfg.Keycloak.Resilience.OfflineWindow())
	}
	if d := Default(); d.Keycloak.LearnOnLogin || d.Keycloak.Resilience.OfflineWindow() != 0 {
		t.Fatal("defaults: learn_on_login off, no offline window")
	}
	cfg.Keycloak.Packages = map[string]Package{"hc": {Realm: "hc", ClientID: "kcguard"}}
	cfg.Keycloak.Resilience.OfflineCredentialsExpirationDays = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "offline_credentials_expiration_days") {
		t.Fatalf("negative window: %v", err)
	}
}

// The parallel grant is on unless the file or the environment turns it off.
func TestParallelGrantDefaultsOnAndCanBeTurnedOff(t *testing.T) {
	if !Default().Keycloak.ParallelGrant {
		t.Fatal("keycloak.parallel_grant defaults to off")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("keycloak:\n  parallel_grant: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(path, env(nil))
	if err != nil || cfg.Keycloak.ParallelGrant {
		t.Fatalf("file false: parallel=%v err=%v", cfg.Keycloak.ParallelGrant, err)
	}
	cfg, err = load("", env(map[string]string{"KCGUARD_KEYCLOAK_PARALLEL_GRANT": "false"}))
	if err != nil || cfg.Keycloak.ParallelGrant {
		t.Fatalf("env false: parallel=%v err=%v", cfg.Keycloak.ParallelGrant, err)
	}
}
