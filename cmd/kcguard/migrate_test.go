package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/platform"
)

func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{}) // logs
	root.SetArgs(append([]string{"--config", "../../config.example.yaml"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestMigrateCommand runs `kcguard migrate` as an operator would, on a
// moto of its own and the real Keycloak: JSON lines off a terminal, the
// --where syntax, and a non-zero exit when a user fails.
func TestMigrateCommand(t *testing.T) {
	kcURL, _ := testenv.Keycloak(t)
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	emptyAWS(t)
	if out, err := run(t, "config", "fix"); err != nil {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	prefix := testenv.Unique("cli")
	t.Cleanup(func() {
		cfg, err := platform.LoadConfig("../../config.example.yaml")
		if err != nil {
			return
		}
		rt, err := platform.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return
		}
		for _, n := range []string{"a1", "a2", "dup", "staff"} {
			if u, err := rt.Keycloak.FindUser(context.Background(), "homechoice", prefix+"-"+n); err == nil {
				_ = rt.Keycloak.DeleteUser(context.Background(), "homechoice", u.ID)
			}
		}
	})
	for _, u := range []struct{ name, group, email string }{
		{"a1", "HC_ADMIN", "a1"}, {"a2", "HC_ADMIN", "a2"},
		{"dup", "HC_ADMIN", "a1"}, // same e-mail as a1: Keycloak refuses the second
		{"staff", "staff", "staff"},
	} {
		if out, err := runIn(t, "Cli-password-"+u.name+"-long\n", "users", "add", prefix+"-"+u.name, "--package", "homechoice",
			"--group", u.group, "--email", prefix+"-"+u.email+"@example.com"); err != nil {
			t.Fatalf("users add: %v %s", err, out)
		}
	}

	out, err := runIn(t, "", "migrate", "homechoice", "--dry-run", "--where", "UserGroup LIKE '%ADMIN%', username~"+prefix)
	sum := lastSummary(t, out)
	if err != nil || sum.Total != 3 || sum.Created != 3 || !sum.DryRun {
		t.Fatalf("dry run: %v %+v\n%s", err, sum, out)
	}

	out, err = runIn(t, "", "migrate", "homechoice", "--where", "group~admin,username~"+prefix)
	if sum = lastSummary(t, out); !errors.Is(err, errChecksFailed) || exitCode(err) != 1 || sum.Created != 2 || sum.Failed != 1 {
		t.Fatalf("a failed user must make the run exit 1: %v %+v\n%s", err, sum, out)
	}
	if !strings.Contains(out, `"result":"failed"`) || strings.Count(out, "\n") != 4 {
		t.Fatalf("one JSON line per user, then the summary:\n%s", out)
	}

	out, err = runIn(t, "", "migrate", "status", "homechoice", "--where", "username~"+prefix)
	if err != nil || !strings.Contains(out, "4 local users, 2 synced to Keycloak, 2 pending") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err := runIn(t, "", "sync", "status"); err != nil || !strings.Contains(out, "journal (last 168h0m0s): pending 0") {
		t.Fatalf("sync status: %v\n%s", err, out)
	}
}

func lastSummary(t *testing.T, out string) (s struct {
	Total, Created, Updated, Skipped, Failed int
	DryRun                                   bool `json:"dry_run"`
}) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var wrap struct {
		Summary *json.RawMessage `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &wrap); err != nil || wrap.Summary == nil {
		t.Fatalf("the last line is not the JSON summary: %v\n%s", err, out)
	}
	_ = json.Unmarshal(*wrap.Summary, &s)
	return s
}
