package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// A route an operator lists in authorizer.deny_degraded_routes is refused
// to sessions made without Keycloak (local, cached) and allowed to
// Keycloak-confirmed ones; other routes allow every session, and the
// context tells the downstream API which tier authenticated the user.
func TestAuthorizerDeniesDegradedSessionsListedRoutes(t *testing.T) {
	f := newSessionFixture(t)
	a := &Authorizer{Store: f.store, Now: func() time.Time { return f.now },
		DenyDegraded: NewDegradedRoutes([]string{"POST /payments", "delete /accounts/{id}"})}
	tokens := map[string]string{}
	for _, mode := range []string{"keycloak", "cached", "local"} {
		tokens[mode], _ = f.login(t, "alice", mode)
	}
	req := func(mode, routeKey, method, path string) events.APIGatewayV2CustomAuthorizerV2Request {
		r := events.APIGatewayV2CustomAuthorizerV2Request{RouteKey: routeKey, RawPath: path,
			Headers: map[string]string{"authorization": "Bearer " + tokens[mode]}}
		r.RequestContext.RouteKey = routeKey
		r.RequestContext.HTTP.Method = method
		return r
	}
	cases := []struct {
		name, mode, routeKey, method, path string
		want                               bool
	}{
		{"keycloak session, listed route", "keycloak", "POST /payments", "POST", "/payments", true},
		{"local session, listed route", "local", "POST /payments", "POST", "/payments", false},
		{"cached session, listed route", "cached", "POST /payments", "POST", "/payments", false},
		{"local session, other method", "local", "GET /payments", "GET", "/payments", true},
		{"local session, unlisted route", "local", "GET /orders", "GET", "/orders", true},
		{"route key with a parameter, method case", "local", "DELETE /accounts/{id}", "DELETE", "/accounts/7", false},
		{"catch-all route, matched by method and path", "cached", "$default", "POST", "/payments", false},
		{"catch-all route, keycloak session", "keycloak", "$default", "POST", "/payments", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := a.Handle(context.Background(), req(tc.mode, tc.routeKey, tc.method, tc.path))
			if err != nil || resp.IsAuthorized != tc.want {
				t.Fatalf("authorized=%v err=%v, want %v", resp.IsAuthorized, err, tc.want)
			}
			if tc.want && resp.Context["auth_mode"] != tc.mode {
				t.Fatalf("context auth_mode %v, want %s", resp.Context["auth_mode"], tc.mode)
			}
		})
	}
}
