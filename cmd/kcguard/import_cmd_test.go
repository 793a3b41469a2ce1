package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/internal/testenv"
)

// Not on a terminal, `users import` writes one JSON line per user and a
// summary; skipped users make the exit code 1 (exitCode), and a second run
// changes nothing.
func TestUsersImportCommand(t *testing.T) {
	kcURL, _ := testenv.Keycloak(t)
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	emptyAWS(t)
	if out, err := run(t, "config", "fix"); err != nil && !errors.Is(err, errChecksFailed) {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	const export = "../../pkg/adoption/testdata/homechoice-realm.json"

	if _, err := run(t, "users", "import", "--keycloak-export", export, "--package", "janee"); err == nil ||
		!strings.Contains(err.Error(), `export of realm "homechoice"`) {
		t.Fatalf("an export of another realm must be refused: %v", err)
	}

	out, err := run(t, "users", "import", "--keycloak-export", export, "--package", "homechoice")
	if !errors.Is(err, errChecksFailed) || exitCode(err) != 1 || !strings.Contains(err.Error(), "3 users not imported") {
		t.Fatalf("skipped users must give exit code 1: %v\n%s", err, out)
	}
	lines, outcomes := 0, map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		var rec struct {
			Done, Total int
			Item        struct{ Outcome string }
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Total == 8 {
			lines++
			outcomes[rec.Item.Outcome]++
		}
	}
	if lines != 8 || outcomes["created"] != 3 || outcomes["unsupported_hash"] != 1 || outcomes["malformed"] != 2 {
		t.Fatalf("progress lines %d %v:\n%s", lines, outcomes, out)
	}
	if !strings.Contains(out, "✗ entry 3 dan.bcrypt: unsupported_hash") || !strings.Contains(out, "3 created") {
		t.Fatalf("summary:\n%s", out)
	}
	out, _ = run(t, "users", "import", "--keycloak-export", export, "--package", "homechoice")
	if !strings.Contains(out, "0 created, 0 updated, 3 unchanged") {
		t.Fatalf("second import must change nothing:\n%s", out)
	}
	if out, err := run(t, "users", "show", "cara.disabled", "--package", "homechoice"); err != nil || !strings.Contains(out, "enabled:         false") {
		t.Fatalf("show: %v\n%s", err, out)
	}

	// The fixture's Keycloak ids are not in the running Keycloak: to `sync
	// pull` these users were deleted there, and its first run (a page
	// compare) deletes them locally.
	admin := testenv.NewKeycloakAdmin(t)
	for _, r := range []testenv.Realm{testenv.Homechoice, testenv.Janee} {
		admin.GrantServiceAccountRoles(r.Name, r.ClientID, "view-events", "manage-events")
	}
	out, err = run(t, "sync", "pull", "--json")
	if err != nil {
		t.Fatalf("sync pull: %v\n%s", err, out)
	}
	var hc struct {
		Package, Mode, Reason string
		Deleted               int
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"package":"homechoice"`) {
			_ = json.Unmarshal([]byte(l), &hc)
		}
	}
	if hc.Mode != "compare" || hc.Reason != "first run" || hc.Deleted != 3 {
		t.Fatalf("sync pull on homechoice: %+v\n%s", hc, out)
	}
	if _, err := run(t, "users", "show", "ann.argon2", "--package", "homechoice"); err == nil {
		t.Fatal("ann.argon2 is not in Keycloak and must be gone")
	}
}
