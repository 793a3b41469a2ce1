package rietest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      Report
		ok        bool
	}{
		{"cold", "START\nREPORT RequestId: 1f\tInit Duration: 12.50 ms\tDuration: 3767.14 ms\tBilled Duration: 3768 ms\t",
			Report{Init: 12500 * time.Microsecond, Duration: 3767140 * time.Microsecond}, true},
		{"warm", "REPORT RequestId: 2a\tDuration: 222.00 ms\tBilled Duration: 223 ms\t",
			Report{Duration: 222 * time.Millisecond}, true},
		{"none yet", "START RequestId: 3b Version: $LATEST\n", Report{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseReport(tc.out)
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseReport = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLocalEnvLayersFunctionOverParameters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(path, []byte(`{"Parameters": {"A": "1", "B": "1"}, "LoginFunction": {"B": "2"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := LocalEnv(path, "LoginFunction")
	if err != nil || env["A"] != "1" || env["B"] != "2" {
		t.Errorf("LocalEnv = %v, %v; want A=1 B=2", env, err)
	}
}

// The repository's own local/env.json is readable and points at moto.
func TestRepositoryLocalEnv(t *testing.T) {
	env, err := LocalEnv(filepath.Join("..", "..", "local", "env.json"), "LoginFunction")
	if err != nil {
		t.Fatal(err)
	}
	if env["AWS_ENDPOINT_URL"] != "http://127.0.0.1:4566" || env["KCGUARD_KEYCLOAK_SECRETS_ID"] == "" {
		t.Errorf("local/env.json: %v", env)
	}
}
