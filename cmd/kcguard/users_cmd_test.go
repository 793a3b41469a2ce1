package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/testenv"
)

// TestUsersAddSetPasswordAndSeed runs the user commands as an operator
// would, on a moto of its own that `config fix` provisions.
func TestUsersAddSetPasswordAndSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local stack")
	}
	// Tables of its own: the stack's may not exist (CI starts the services
	// without provisioning them).
	kcURL, _ := testenv.Keycloak(t)
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	emptyAWS(t)
	if out, err := run(t, "config", "fix"); err != nil {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	name := fmt.Sprintf("cli13-%d", time.Now().UnixNano())
	if out, err := runIn(t, "short\n", "users", "add", name, "--package", "homechoice"); err == nil {
		t.Fatalf("a password below password.min_length was accepted: %s", out)
	}
	out, err := runIn(t, "Cli13-first-password\n", "users", "add", name, "--package", "homechoice", "--group", "pilot")
	if err != nil || !strings.Contains(out, "created "+name+" in package homechoice (version 1") {
		t.Fatalf("users add: %v %s", err, out)
	}
	if out, err := runIn(t, "Cli13-other-password\n", "users", "add", name, "--package", "homechoice"); err == nil {
		t.Fatalf("a second add of the same user succeeded: %s", out)
	}
	out, err = runIn(t, "Cli13-second-password\n", "users", "set-password", name, "--package", "homechoice")
	if err != nil || !strings.Contains(out, "(version 2; Keycloak has version 0 until the sync runs)") {
		t.Fatalf("users set-password: %v %s", err, out)
	}
	out, err = runIn(t, "", "users", "show", name, "--package", "homechoice")
	if err != nil || !strings.Contains(out, "version:         2") || !strings.Contains(out, "(sync pending)") ||
		!strings.Contains(out, "map[group:pilot]") {
		t.Fatalf("users show after add and reset: %v\n%s", err, out)
	}

	// seed: the realm's plaintext password, stored as Keycloak has it.
	seeded := name + "-seed"
	realm := fmt.Sprintf(`{"realm":"homechoice","users":[
	  {"username":%q,"email":"%s@example.com","credentials":[{"type":"password","value":"pw"}]},
	  {"username":"service-account-x","serviceAccountClientId":"x","credentials":[{"type":"password","value":"pw"}]}]}`, seeded, seeded)
	path := filepath.Join(t.TempDir(), "realm.json")
	if err := os.WriteFile(path, []byte(realm), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runIn(t, "", "users", "seed", path)
	if err != nil || out != "• homechoice/"+seeded+": created\n" {
		t.Fatalf("users seed: %v %q", err, out)
	}
	if out, err = runIn(t, "", "users", "seed", path); err != nil || out != "• homechoice/"+seeded+": exists\n" {
		t.Fatalf("second seed: %v %q", err, out)
	}
	out, err = runIn(t, "", "users", "show", seeded, "--package", "homechoice")
	if err != nil || !strings.Contains(out, "version:         1\nkeycloak synced: 1\n") {
		t.Fatalf("a seeded user is what Keycloak has (synced): %v\n%s", err, out)
	}
	path2 := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(path2, []byte(`{"realm":"nowhere","users":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runIn(t, "", "users", "seed", path2); err == nil || !strings.Contains(err.Error(), `no package is configured for realm "nowhere"`) {
		t.Fatalf("seed of an unknown realm: %v %s", err, out)
	}
}
