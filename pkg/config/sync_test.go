package config

import (
	"strings"
	"testing"
	"time"
)

func TestSyncSettings(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.Keycloak.Packages = map[string]Package{"homechoice": {Realm: "homechoice", ClientID: "kcguard"}}
		return c
	}
	d := valid()
	if d.Sync.ConflictPolicy != "local_wins" || d.Sync.JournalRetention != 7*24*time.Hour || d.Tables.Journal != "kcguard-sync-journal" {
		t.Fatalf("defaults %+v %q", d.Sync, d.Tables.Journal)
	}
	cases := map[string]struct {
		mutate func(*Config)
		want   string // "" means valid
	}{
		"defaults":            {func(*Config) {}, ""},
		"keycloak_wins":       {func(c *Config) { c.Sync.ConflictPolicy = "keycloak_wins" }, ""},
		"journal off":         {func(c *Config) { c.Tables.Journal = "" }, ""},
		"unknown policy":      {func(c *Config) { c.Sync.ConflictPolicy = "newest_wins" }, "sync.conflict_policy"},
		"retention too short": {func(c *Config) { c.Sync.JournalRetention = time.Minute }, "sync.journal_retention"},
		"bad journal table":   {func(c *Config) { c.Tables.Journal = "a b" }, "tables.journal"},
		"retention over year": {func(c *Config) { c.Sync.JournalRetention = 400 * 24 * time.Hour }, "sync.journal_retention"},
	}
	for name, tc := range cases {
		c := valid()
		tc.mutate(&c)
		err := c.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	c, err := load("", env(map[string]string{"KCGUARD_SYNC_CONFLICT_POLICY": "keycloak_wins",
		"KCGUARD_SYNC_JOURNAL_RETENTION": "72h", "KCGUARD_TABLE_JOURNAL": "j-table"}))
	if err != nil || c.Sync.ConflictPolicy != "keycloak_wins" || c.Sync.JournalRetention != 72*time.Hour || c.Tables.Journal != "j-table" {
		t.Fatalf("environment: %+v %q %v", c.Sync, c.Tables.Journal, err)
	}
}
