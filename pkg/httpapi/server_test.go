package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The local server answers as API Gateway would: the route's handler with
// the route key and path parameters, 405 for a route's path under another
// method, 404 for anything else, 500 for a handler's error, all in the
// API's error shape.
func TestServerRoutesAsAPIGateway(t *testing.T) {
	var got Request
	echo := func(_ context.Context, req Request) (Response, error) {
		got = req
		return JSON(http.StatusOK, map[string]string{"ok": "yes"}), nil
	}
	failing := func(context.Context, Request) (Response, error) { return Response{}, errors.New("boom") }
	srv := httptest.NewServer(&Server{Log: slog.New(slog.DiscardHandler), Routes: []Route{
		{Method: "POST", Path: "/login", Handler: echo},
		{Method: "GET", Path: "/sessions", Handler: echo},
		{Method: "DELETE", Path: "/sessions/{id}", Handler: echo},
		{Method: "POST", Path: "/admin/users/{package}/{username}/logout", Handler: echo},
		{Method: "GET", Path: "/status", Handler: failing},
	}})
	defer srv.Close()

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string            // error code, "" for a served route
		routeKey                 string            // the event's route key when served
		params                   map[string]string // the event's path parameters when served
	}{
		{name: "route", method: "POST", path: "/login", body: `{"a":1}`, status: 200, routeKey: "POST /login", params: map[string]string{}},
		{name: "one parameter", method: "DELETE", path: "/sessions/s-123", status: 200, routeKey: "DELETE /sessions/{id}",
			params: map[string]string{"id": "s-123"}},
		{name: "two parameters", method: "POST", path: "/admin/users/hc/alice.hc/logout", status: 200,
			routeKey: "POST /admin/users/{package}/{username}/logout", params: map[string]string{"package": "hc", "username": "alice.hc"}},
		{name: "path under another method", method: "GET", path: "/login", status: 405, code: CodeMethodNotAllowed},
		{name: "parameter path under another method", method: "GET", path: "/sessions/s-123", status: 405, code: CodeMethodNotAllowed},
		{name: "HEAD is not GET", method: "HEAD", path: "/sessions", status: 405},
		{name: "no such path", method: "GET", path: "/nope", status: 404, code: CodeNotFound},
		{name: "no such path under a route's method", method: "POST", path: "/login/extra", status: 404, code: CodeNotFound},
		{name: "empty parameter", method: "DELETE", path: "/sessions/", status: 404, code: CodeNotFound},
		{name: "handler error", method: "GET", path: "/status", status: 500, code: CodeInternal},
	} {
		t.Run(c.name, func(t *testing.T) {
			got = Request{}
			req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, data)
			}
			if c.code != "" {
				var out map[string]map[string]string
				if err := json.Unmarshal(data, &out); err != nil || out["error"]["code"] != c.code {
					t.Fatalf("body %s, want error code %q", data, c.code)
				}
			}
			if c.routeKey == "" {
				if got.RouteKey != "" {
					t.Fatalf("a handler ran for %s %s: %s", c.method, c.path, got.RouteKey)
				}
				return
			}
			if got.RouteKey != c.routeKey || got.RequestContext.RouteKey != c.routeKey || got.Body != c.body ||
				got.RawPath != c.path || got.RequestContext.HTTP.Method != c.method {
				t.Fatalf("event %+v", got)
			}
			if len(got.PathParameters) != len(c.params) {
				t.Fatalf("path parameters %v, want %v", got.PathParameters, c.params)
			}
			for k, v := range c.params {
				if got.PathParameters[k] != v {
					t.Fatalf("path parameters %v, want %v", got.PathParameters, c.params)
				}
			}
		})
	}
}
