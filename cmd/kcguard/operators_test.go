package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/kcguard/kcguard/internal/opstest"
)

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"sync", "bogus"}, exitUsage, `unknown command "bogus" for "kcguard sync"`},
		{[]string{"sessions", "list", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"breaker", "status", "extra"}, exitUsage, "extra"},
		{[]string{"report"}, exitUsage, "arg"},
		{[]string{"report", "summary"}, exitUsage, "required flag"},
		{[]string{"report", "bogus", "--package", "homechoice"}, exitUsage, `unknown report "bogus"`},
		{[]string{"report", "summary", "--package", "homechoice", "--since", "soon"}, exitUsage, "since"},
		{[]string{"users", "history", "alice.hc"}, exitUsage, "required flag"},
		{[]string{"sync"}, exitOK, "Available Commands"},
		{[]string{"--help"}, exitOK, "Exit codes"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			root := newRoot()
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"--config", "../../config.example.yaml"}, c.args...))
			err := root.ExecuteContext(context.Background())
			text := out.String()
			if err != nil {
				text += err.Error()
			}
			if got := exitCode(err); got != c.code || !strings.Contains(text, c.says) {
				t.Errorf("exit %d, output %q; want %d and %q", got, text, c.code, c.says)
			}
		})
	}
	if exitCode(errChecksFailed) != exitChecks || exitCode(errMigrationFailures) != exitChecks {
		t.Error("failed checks must exit 1")
	}
}

// The old command names still run the new commands, with a warning, and
// take the same flags.
func TestDeprecatedAliases(t *testing.T) {
	root := newRoot()
	for old, want := range map[string]string{"list-sessions": "sessions list", "logout-user": "sessions logout-user",
		"sync-now": "sync now", "sync sync-now": "sync now", "start": "serve"} {
		c, rest, err := root.Find(strings.Fields(old))
		if err != nil || len(rest) > 0 || c.CommandPath() != "kcguard "+old {
			t.Errorf("%s: found %q (rest %v, %v)", old, c.CommandPath(), rest, err)
			continue
		}
		if !strings.Contains(c.Deprecated, "kcguard "+want) {
			t.Errorf("%s: deprecation %q does not name %q", old, c.Deprecated, want)
		}
		target, _, _ := root.Find(strings.Fields(want))
		target.Flags().VisitAll(func(f *pflag.Flag) {
			if c.Flags().Lookup(f.Name) == nil {
				t.Errorf("%s lacks --%s of %s", old, f.Name, want)
			}
		})
	}
}

// Every status-like command prints valid JSON with --json, against a stack
// in a known state (breaker open, Keycloak cut, 3 jobs waiting, 2 locked
// users, one cached token).
func TestJSONOutputs(t *testing.T) {
	k := opstest.NewKnown(t)
	cfg := k.Env.Config
	for name, v := range map[string]string{
		"KCGUARD_KEYCLOAK_URL": cfg.Keycloak.URL, "KCGUARD_TABLE_USERS": cfg.Tables.Users, "KCGUARD_TABLE_SESSIONS": cfg.Tables.Sessions,
		"KCGUARD_TABLE_TOKENS": cfg.Tables.Tokens, "KCGUARD_TABLE_BREAKER": cfg.Tables.Breaker, "KCGUARD_TABLE_AUDIT": cfg.Tables.Audit,
		"KCGUARD_TABLE_JOURNAL": cfg.Tables.Journal, "KCGUARD_SYNC_QUEUE": cfg.Sync.Queue, "KCGUARD_SYNC_DLQ": cfg.Sync.DLQ,
		"KCGUARD_KMS_KEY_ID": cfg.KMSKeyID, "KCGUARD_KEYCLOAK_TIMEOUT": "1s",
		"KCGUARD_AUDIT_USERNAME_HMAC_KEY": opstest.AuditKey,
	} {
		t.Setenv(name, v)
	}
	ghost := k.Locked[0]
	cases := []struct {
		args  []string
		code  int
		check func(v any) bool
	}{
		{[]string{"status", "--json"}, exitOK, func(v any) bool {
			m := v.(map[string]any)
			return m["breaker"].(map[string]any)["state"] == "open" && m["queue"].(map[string]any)["users_waiting"] == 3.0
		}},
		{[]string{"status", "--json", "--check"}, exitChecks, func(v any) bool { return v.(map[string]any)["healthy"] == false }},
		{[]string{"breaker", "status", "--json"}, exitOK, func(v any) bool { return v.(map[string]any)["forced"] == true }},
		{[]string{"sync", "status", "--json"}, exitOK, func(v any) bool {
			return v.(map[string]any)["users_waiting"].(map[string]any)["homechoice"] == 3.0
		}},
		{[]string{"sync", "pending", "--json"}, exitOK, func(v any) bool {
			m := v.(map[string]any)
			return len(m["jobs"].([]any)) == 3 && len(m["users"].([]any)) == 3
		}},
		{[]string{"sync", "test", "--json"}, exitChecks, func(v any) bool { return len(v.([]any)) >= 4 }},
		{[]string{"tokens", "list", "--json"}, exitOK, func(v any) bool {
			l := v.([]any)
			return len(l) == 1 && l[0].(map[string]any)["username"] == k.User.Name
		}},
		{[]string{"users", "history", ghost, "--package", "homechoice", "--json"}, exitOK, func(v any) bool {
			l := v.([]any)
			return len(l) == 2 && l[0].(map[string]any)["outcome"] == "locked" && l[1].(map[string]any)["outcome"] == "invalid_credentials"
		}},
		{[]string{"users", "show", k.Waiting[0], "--package", "homechoice", "--json"}, exitOK, func(v any) bool {
			return v.(map[string]any)["sync_pending"] == true
		}},
		{[]string{"sessions", "list", k.User.Name, "--package", "homechoice", "--json"}, exitOK, func(v any) bool {
			l := v.([]any)
			return len(l) == 1 && l[0].(map[string]any)["auth_mode"] == "keycloak"
		}},
		{[]string{"sessions", "metrics", "--package", "homechoice", "--json"}, exitOK, nil},
		{[]string{"migrate", "status", "homechoice", "--json"}, exitOK, func(v any) bool { return v.(map[string]any)["pending"] == 3.0 }},
		{[]string{"config", "validate", "--json"}, exitChecks, func(v any) bool { return len(v.([]any)) > 5 }},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errs bytes.Buffer
			root := newRoot()
			root.SetOut(&out)
			root.SetErr(&errs)
			root.SetArgs(append([]string{"--config", "../../config.example.yaml"}, c.args...))
			code := exitCode(root.ExecuteContext(context.Background()))
			var v any
			if err := json.Unmarshal(out.Bytes(), &v); err != nil {
				t.Fatalf("not JSON (%v): %q\nstderr: %s", err, out.String(), errs.String())
			}
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, c.code, errs.String())
			}
			if c.check != nil && !c.check(v) {
				t.Errorf("unexpected content: %s", out.String())
			}
		})
	}
	// `sync status` without --json prints the same read model.
	t.Run("sync status", func(t *testing.T) {
		out, err := runIn(t, "", "sync", "status")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"package homechoice: 3 users waiting for Keycloak", "oldest pending change: ",
			"breaker: open", "): pending 3, ", "oldest pending job: "} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})
}
