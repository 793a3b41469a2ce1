package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

func TestDashboardCookie(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := AdminGuard{Key: "k1", Now: clock}
	set := g.SessionCookie(false)
	value := strings.SplitN(set, ";", 2)[0]
	withCookie := func(c string) Request { return Request{Headers: map[string]string{"cookie": "other=1; " + c}} }
	cases := []struct {
		name  string
		guard AdminGuard
		req   Request
		read  bool // CheckRead admits
	}{
		{"fresh cookie", g, withCookie(value), true},
		{"cookie in the v2 cookies list", g, Request{Cookies: []string{value}}, true},
		{"expired cookie", AdminGuard{Key: "k1", Now: func() time.Time { return now.Add(DashboardSessionLifetime) }}, withCookie(value), false},
		{"admin key changed", AdminGuard{Key: "k2", Now: clock}, withCookie(value), false},
		{"no admin key configured", AdminGuard{Now: clock}, withCookie(value), false},
		{"expiry edited", g, withCookie(strings.Replace(value, "v1.", "v1.9", 1)), false},
		{"no cookie", g, Request{}, false},
		{"admin key header", g, Request{Headers: map[string]string{"x-admin-key": "k1"}}, true},
		{"listed IAM caller", AdminGuard{Key: "k1", Now: clock, Principals: []string{"arn:aws:iam::1:user/ops"}}, iamCaller("arn:aws:iam::1:user/ops"), true},
		{"unlisted IAM caller", g, iamCaller("arn:aws:iam::1:user/ops"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.guard.CheckRead(c.req) == nil; got != c.read {
				t.Errorf("CheckRead admitted = %v, want %v", got, c.read)
			}
		})
	}
	if g.Check(withCookie(value)) == nil {
		t.Error("the dashboard cookie passed the admin (write) check")
	}
	if e := g.CheckRead(Request{}); e == nil || e.Status != http.StatusForbidden {
		t.Errorf("anonymous = %v, want 403", e)
	}
	if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || strings.Contains(set, "k1") {
		t.Errorf("cookie %q", set)
	}
	if !strings.Contains(g.SessionCookie(true), "; Secure") {
		t.Error("no Secure flag off loopback")
	}
}

func iamCaller(arn string) Request {
	return Request{RequestContext: events.APIGatewayV2HTTPRequestContext{Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: arn}}}}
}
