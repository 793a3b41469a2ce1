package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/metrics"
)

// Each login answer counts once, under the catalogued metric of its
// outcome, with the catalogued unit and dimensions; a handler error (Lambda
// retries it, API Gateway answers 500) counts nothing.
func TestCountLoginsByOutcome(t *testing.T) {
	cases := []struct {
		name string
		resp httpapi.Response
		want string
	}{
		{"keycloak", httpapi.JSON(200, map[string]any{"success": true, "auth_mode": "keycloak"}), metrics.LoginsKeycloak},
		{"cached token", httpapi.JSON(200, map[string]any{"success": true, "auth_mode": "cached"}), metrics.LoginsCached},
		{"local", httpapi.JSON(200, map[string]any{"success": true, "auth_mode": "local"}), metrics.LoginsLocal},
		{"wrong password", errBody(401, httpapi.CodeInvalidCredentials), metrics.LoginFailures},
		{"locked", errBody(423, httpapi.CodeLocked), metrics.LoginsLockedOut},
		{"source throttled", errBody(429, "too_many_requests"), metrics.LoginsLockedOut},
		{"bad request", errBody(400, httpapi.CodeInvalidRequest), metrics.LoginsRefused},
		{"store down", errBody(503, httpapi.CodeUnavailable), metrics.LoginErrors},
		{"not JSON", httpapi.Response{StatusCode: 502, Body: "<html>"}, metrics.LoginErrors},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			h := CountLogins(func(context.Context, httpapi.Request) (httpapi.Response, error) { return c.resp, nil }, &out)
			if _, err := h(context.Background(), httpapi.Request{}); err != nil {
				t.Fatal(err)
			}
			var line map[string]any
			if err := json.Unmarshal(out.Bytes(), &line); err != nil {
				t.Fatalf("not one EMF line: %q", out.String())
			}
			m, ok := metrics.Lookup(c.want)
			if !ok || line[c.want] != 1.0 || line["Function"] != m.Dimensions["Function"] {
				t.Fatalf("EMF %v, want %s=1 (catalogued: %v)", line, c.want, ok)
			}
			d := line["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			decl := d["Metrics"].([]any)
			if d["Namespace"] != metrics.Namespace || len(decl) != 1 ||
				!reflect.DeepEqual(decl[0], map[string]any{"Name": c.want, "Unit": string(m.Unit)}) {
				t.Fatalf("directive %v", d)
			}
		})
	}
	var out bytes.Buffer
	h := CountLogins(func(context.Context, httpapi.Request) (httpapi.Response, error) {
		return httpapi.Response{}, errors.New("boom")
	}, &out)
	if _, err := h(context.Background(), httpapi.Request{}); err == nil || out.Len() != 0 {
		t.Fatalf("a handler error: err %v, emitted %q", err, out.String())
	}
}

func errBody(status int, code string) httpapi.Response {
	return httpapi.JSON(status, map[string]any{"error": map[string]string{"code": code, "message": "x"}})
}
