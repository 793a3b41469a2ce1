package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
)

// validBase is the default configuration with the one package Validate
// insists on.
func validBase() Config {
	c := Default()
	c.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
	return c
}

// numericKeys lists every int and duration setting of Config by its YAML
// path, so a key added later is checked without editing the test.
func numericKeys(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		key := prefix + name
		switch {
		case f.Type.Kind() == reflect.Struct:
			numericKeys(v.Field(i), key+".", out)
		case f.Type == durationType || f.Type.Kind() == reflect.Int:
			out[key] = v.Field(i)
		}
	}
}

// zeroMeans are the numeric keys whose 0 is a setting of its own, each with
// the check that the configuration hands that meaning on. Every other
// numeric key must refuse 0 and name itself.
var zeroMeans = map[string]struct {
	meaning string
	holds   func(Config) bool
}{
	"keycloak.resilience.offline_credentials_expiration_days": {
		"no limit on how long ago Keycloak confirmed a user (auth.Settings.OfflineWindow 0)",
		func(c Config) bool { return c.Keycloak.Resilience.OfflineWindow() == 0 },
	},
	"alerts.daily_summary_hour": {
		"the summary goes out from 00:00 UTC (off is -1)",
		func(c Config) bool { return c.Alerts.DailySummaryHour == 0 },
	},
}

func TestEveryNumericZeroIsRefusedOrMeansSomething(t *testing.T) {
	if err := validBase().Validate(); err != nil {
		t.Fatalf("the defaults must validate: %v", err)
	}
	keys := map[string]reflect.Value{}
	base := validBase()
	numericKeys(reflect.ValueOf(&base).Elem(), "", keys)
	if len(keys) < 30 {
		t.Fatalf("found only %d numeric keys: the walk is broken", len(keys))
	}
	for key := range zeroMeans {
		if _, ok := keys[key]; !ok {
			t.Errorf("zeroMeans names %s, which is not a numeric key", key)
		}
	}
	for key := range keys {
		t.Run(key, func(t *testing.T) {
			c := validBase()
			fields := map[string]reflect.Value{}
			numericKeys(reflect.ValueOf(&c).Elem(), "", fields)
			if _, ok := zeroMeans[key]; !ok && fields[key].Int() == 0 {
				t.Fatalf("%s defaults to 0; a default must be a value, not a zero read as one", key)
			}
			fields[key].SetInt(0)
			err := c.Validate()
			if m, ok := zeroMeans[key]; ok {
				if err != nil {
					t.Fatalf("%s: 0 means %s, but validation refused it: %v", key, m.meaning, err)
				}
				if !m.holds(c) {
					t.Fatalf("%s: 0 should mean %s", key, m.meaning)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("%s: 0 passed validation (err %v); give it a documented meaning or refuse it", key, err)
			}
			for _, p := range ve.Problems {
				if strings.Contains(p, key) {
					return
				}
			}
			t.Fatalf("%s: 0 refused, but no problem names the key: %q", key, ve.Problems)
		})
	}
}

// The zeros this issue found: each once passed validation and was replaced
// deep inside by a default the operator never saw.
func TestFormerlySilentZerosAreRefused(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"keycloak:\n  resilience:\n    token_grace_period_hours: 0\n", "keycloak.resilience.token_grace_period_hours = 0, must be between 1 and 168"},
		{"keycloak:\n  resilience:\n    health_check_cache_seconds: 0\n", "keycloak.resilience.health_check_cache_seconds = 0, must be between 1 and 300"},
		{"sessions:\n  max_per_user: 0\n", "sessions.max_per_user = 0, must be between 1 and 1000 (or -1: no cap)"},
	} {
		c := validBase()
		if err := yamlInto(&c, tc.yaml); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want a problem %q", tc.yaml, err, tc.want)
		}
	}
}

func TestDefaultsAreThePackagesDefaults(t *testing.T) {
	d := Default()
	r := d.Keycloak.Resilience
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"keycloak.timeout", d.Keycloak.Timeout, keycloak.DefaultRequestTimeout},
		{"keycloak.admin_timeout", d.Keycloak.AdminTimeout, keycloak.DefaultAdminTimeout},
		{"keycloak.resilience.failure_threshold", r.FailureThreshold, breaker.DefaultFailureThreshold},
		{"keycloak.resilience.cooldown_seconds", r.Cooldown(), breaker.DefaultCooldown},
		{"keycloak.resilience.health_check_cache_seconds", r.StateCacheTTL(), breaker.DefaultStateCacheTTL},
		{"keycloak.resilience.token_grace_period_hours", r.GracePeriod(), tokencache.DefaultGracePeriod},
		{"lockout.max_failures", d.Lockout.MaxFailures, auth.DefaultMaxFailures},
		{"lockout.delay", d.Lockout.Delay, auth.DefaultFailureDelay},
		{"lockout.max_delay", d.Lockout.MaxDelay, auth.DefaultMaxFailureDelay},
		{"lockout.source_max_failures", d.Lockout.SourceMaxFailures, auth.DefaultSourceMaxFailures},
		{"lockout.source_delay", d.Lockout.SourceDelay, auth.DefaultSourceDelay},
		{"lockout.source_max_delay", d.Lockout.SourceMaxDelay, auth.DefaultSourceMaxDelay},
		{"sessions.idle_timeout", d.Sessions.IdleTimeout, auth.DefaultSessionIdle},
		{"sessions.max_lifetime", d.Sessions.MaxLifetime, auth.DefaultSessionLifetime},
		{"sessions.max_per_user", d.Sessions.MaxPerUser, sessions.DefaultMaxPerUser},
		{"password.min_length", d.Password.MinLength, credential.DefaultMinLength},
		{"password.algorithm", credential.Algorithm(d.Password.Algorithm), credential.Argon2},
		{"sync.journal_retention", d.Sync.JournalRetention, journal.DefaultRetention},
		{"sync.conflict_policy", syncjob.ConflictPolicy(d.Sync.ConflictPolicy), syncjob.LocalWins},
		{"cleanup.refresh_window", d.Cleanup.RefreshWindow, cleanup.DefaultRefreshWindow},
		{"cleanup.refresh_limit", d.Cleanup.RefreshLimit, cleanup.DefaultRefreshLimit},
		{"cleanup.refresh_concurrency", d.Cleanup.RefreshConcurrency, cleanup.DefaultRefreshConcurrency},
		{"cleanup.delete_limit", d.Cleanup.DeleteLimit, cleanup.DefaultDeleteLimit},
		{"cleanup.reconcile_limit", d.Cleanup.ReconcileLimit, cleanup.DefaultReconcileLimit},
		{"cleanup.step_timeout", d.Cleanup.StepTimeout, cleanup.DefaultStepTimeout},
		{"cleanup.time_budget", d.Cleanup.TimeBudget, cleanup.DefaultTimeBudget},
		{"pull.max_gap", d.Pull.MaxGap, pull.DefaultMaxGap},
		{"pull.compare_every", d.Pull.CompareEvery, pull.DefaultCompareEvery},
		{"pull.page_size", d.Pull.PageSize, pull.DefaultPageSize},
	} {
		if tc.got != tc.want {
			t.Errorf("%s defaults to %v, its package's default is %v", tc.key, tc.got, tc.want)
		}
	}
	// The journal writes its TTL with sync.journal_retention and cleanup
	// purges with it: the 30 days cleanup once assumed were a third value.
	if journal.DefaultRetention != 7*24*time.Hour {
		t.Errorf("journal.DefaultRetention = %s; README and config.example.yaml say 7 days", journal.DefaultRetention)
	}
}

// yamlInto decodes a configuration fragment over c, as Load does a file.
func yamlInto(c *Config, doc string) error {
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	return dec.Decode(c)
}
