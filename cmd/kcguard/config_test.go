package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/internal/testenv"
)

// run executes the CLI in-process and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--config", "../../config.example.yaml"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// emptyAWS points the SDK at a fresh, empty moto of this test's own.
func emptyAWS(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", testenv.PrivateMoto(t))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
}

func TestConfigFixThenValidateOnEmptyMoto(t *testing.T) {
	kcURL, _ := testenv.Keycloak(t)
	// A Keycloak that imported the realms before they gave the service
	// account the event roles gets them here; the realm files have them.
	admin := testenv.NewKeycloakAdmin(t)
	for _, r := range []testenv.Realm{testenv.Homechoice, testenv.Janee} {
		admin.GrantServiceAccountRoles(r.Name, r.ClientID, "view-events", "manage-events")
	}
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	emptyAWS(t)

	out, err := run(t, "config", "validate")
	if !errors.Is(err, errChecksFailed) {
		t.Fatalf("validate on an empty account must fail, got %v\n%s", err, out)
	}
	for _, want := range []string{"✗ table kcguard-users: missing", "✗ queue kcguard-sync.fifo", "✗ kms key alias/kcguard-tokens", "✓ keycloak reachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "config", "fix")
	if err != nil {
		t.Fatalf("fix: %v\n%s", err, out)
	}
	if strings.Contains(out, "✗") || !strings.Contains(out, "table kcguard-sessions: created") ||
		!strings.Contains(out, "queue kcguard-sync.fifo: created") {
		t.Fatalf("fix did not create and validate everything:\n%s", out)
	}

	out, err = run(t, "config", "validate")
	if err != nil || strings.Contains(out, "✗") {
		t.Fatalf("validate after fix: %v\n%s", err, out)
	}
	for _, want := range []string{"✓ package homechoice", "✓ package janee", "ttl", "FIFO, DLQ kcguard-sync-dlq.fifo after 5 receives", "all "} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "config", "fix")
	if err != nil || strings.Contains(out, "created") {
		t.Fatalf("a second fix must change nothing: %v\n%s", err, out)
	}
}

func TestValidateReportsKeycloakProblems(t *testing.T) {
	kcURL, proxy := testenv.Keycloak(t)
	t.Setenv("KCGUARD_KEYCLOAK_URL", kcURL)
	t.Setenv("KCGUARD_KEYCLOAK_SECRET_JANEE", "wrong-secret")
	emptyAWS(t)

	out, _ := run(t, "config", "validate")
	if !strings.Contains(out, "✓ package homechoice") || !strings.Contains(out, "✗ package janee") {
		t.Fatalf("a wrong client secret must fail only its package:\n%s", out)
	}

	proxy.Disable()
	out, err := run(t, "config", "validate")
	if !errors.Is(err, errChecksFailed) || !strings.Contains(out, "✗ keycloak reachable") {
		t.Fatalf("a cut Keycloak must be reported: %v\n%s", err, out)
	}
}

func TestValidateReportsBadSettings(t *testing.T) {
	t.Setenv("KCGUARD_RESILIENCE_FAILURE_THRESHOLD", "0")
	t.Setenv("KCGUARD_RESILIENCE_COOLDOWN_SECONDS", "0")
	out, err := run(t, "config", "fix")
	if err == nil || !strings.Contains(err.Error(), "failure_threshold") || !strings.Contains(err.Error(), "cooldown_seconds") {
		t.Fatalf("fix must refuse an invalid configuration and name every problem: %v\n%s", err, out)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	var walk func(prefix []string)
	seen := 0
	walk = func(prefix []string) {
		out, err := run(t, append(prefix, "--help")...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("%v --help: %v\n%s", prefix, err, out)
		}
		seen++
	}
	root := newRoot()
	walk(nil)
	for _, c := range root.Commands() {
		walk([]string{c.Name()})
		for _, sub := range c.Commands() {
			walk([]string{c.Name(), sub.Name()})
		}
	}
	if seen < 4 {
		t.Fatalf("only %d commands found", seen)
	}
}
