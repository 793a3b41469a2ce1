package platform_test

// Sessions, the session routes and the authorizer against the real local
// stack, across Keycloak outages.

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/sessions"
)

type route func(context.Context, httpapi.Request) (httpapi.Response, error)

// do calls a session route with the bearer token and decodes the body.
func do(t *testing.T, h route, token string, path map[string]string) (int, map[string]any) {
	t.Helper()
	req := httpapi.Request{Headers: map[string]string{"authorization": "Bearer " + token}, PathParameters: path}
	resp, err := h(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	return resp.StatusCode, body
}

func authorize(t *testing.T, e *stacktest.Env, header string, now time.Time) events.APIGatewayV2CustomAuthorizerSimpleResponse {
	t.Helper()
	a := e.RT.Authorizer()
	a.Now = func() time.Time { return now }
	resp, err := a.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{
		Type: "REQUEST", Headers: map[string]string{"Authorization": header}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func login(t *testing.T, e *stacktest.Env, u stacktest.User, want auth.Mode) auth.LoginResult {
	t.Helper()
	res, err := e.Login(u, u.Password)
	if err != nil || res.Mode != want {
		t.Fatalf("login %s: mode %s (want %s) %v", u.Name, res.Mode, want, err)
	}
	return res
}

func TestSessionRoutesOnTheStack(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	s := e.RT.SessionHandlers()
	alice, bob := e.NewUser(t, "homechoice"), e.NewUser(t, "homechoice")
	a1 := login(t, e, alice, auth.ModeKeycloak)
	a2 := login(t, e, alice, auth.ModeKeycloak)
	b1 := login(t, e, bob, auth.ModeKeycloak)

	code, body := do(t, s.List, a1.SessionToken, nil)
	list, _ := body["sessions"].([]any)
	if code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	var a2ID string
	for _, v := range list {
		m := v.(map[string]any)
		for _, k := range []string{"id", "created_at", "last_seen_at", "auth_mode", "source_ip", "user_agent", "current"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("session lacks %s: %v", k, m)
			}
		}
		if m["current"] != true {
			a2ID = m["id"].(string)
		}
	}
	bobs, err := e.RT.Sessions.ListByUser(context.Background(), bob.Package, bob.Name)
	if err != nil || len(bobs) != 1 {
		t.Fatalf("bob's sessions %v %v", bobs, err)
	}

	// Another user's session id is "not found", and stays valid.
	if code, body := do(t, s.Delete, a1.SessionToken, map[string]string{"id": bobs[0].ID}); code != 404 {
		t.Fatalf("other user's id: %d %v", code, body)
	}
	if r := authorize(t, e, "Bearer "+b1.SessionToken, time.Now()); !r.IsAuthorized {
		t.Fatal("bob's session must survive alice's attempt")
	}
	if code, _ := do(t, s.Delete, a1.SessionToken, map[string]string{"id": a2ID}); code != 200 {
		t.Fatalf("invalidate own session: %d", code)
	}
	if r := authorize(t, e, "Bearer "+a2.SessionToken, time.Now()); r.IsAuthorized {
		t.Fatal("an invalidated session must be refused")
	}
	if code, body := do(t, s.LogoutAll, a1.SessionToken, nil); code != 200 || body["keycloak_logout"] != "applied" {
		t.Fatalf("logout-all: %d %v", code, body)
	}
	if code, _ := do(t, s.List, a1.SessionToken, nil); code != 401 {
		t.Fatalf("after logout-all the current session must be gone: %d", code)
	}
	if _, err := e.RT.Keycloak.Refresh(context.Background(), alice.Package, a1.Keycloak.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("logout-all must end the Keycloak session: %v", err)
	}
	if code, _ := do(t, s.Logout, b1.SessionToken, nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if r := authorize(t, e, "Bearer "+b1.SessionToken, time.Now()); r.IsAuthorized {
		t.Fatal("a logged-out session must be refused")
	}
	e.AssertNoSecrets(t, alice.Password, bob.Password, a1.SessionToken, a2.SessionToken, b1.SessionToken)
}

func TestIdleSessionExpiresOnTheStack(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	u := e.NewUser(t, "janee")
	res := login(t, e, u, auth.ModeKeycloak)
	now := time.Now()
	idle := e.Config.Sessions.IdleTimeout
	// The deployed authorizer only reads: it accepts the session within the
	// idle timeout and does not extend it.
	if r := authorize(t, e, "Bearer "+res.SessionToken, now.Add(idle-time.Minute)); !r.IsAuthorized {
		t.Fatal("active session refused")
	}
	if r := authorize(t, e, "Bearer "+res.SessionToken, now.Add(idle+time.Minute)); r.IsAuthorized {
		t.Fatal("the read-only authorizer must not have slid the idle expiry")
	}
	// With a slider, activity within the idle timeout slides it (the touch
	// is throttled to one write a minute, so the next check is over a
	// minute later).
	res = login(t, e, u, auth.ModeKeycloak)
	now = time.Now()
	slide := func(at time.Time) bool {
		a := e.RT.Authorizer()
		a.Slide, a.Now = e.RT.Sessions, func() time.Time { return at }
		resp, err := a.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{
			Type: "REQUEST", Headers: map[string]string{"Authorization": "Bearer " + res.SessionToken}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.IsAuthorized
	}
	if !slide(now.Add(idle - time.Minute)) {
		t.Fatal("active session refused")
	}
	if !slide(now.Add(2*idle - 3*time.Minute)) {
		t.Fatal("the last activity must have slid the idle expiry")
	}
	// Then idle for longer than the timeout.
	if slide(now.Add(3 * idle)) {
		t.Fatal("an idle session must expire")
	}
	if _, err := e.RT.Sessions.GetByToken(context.Background(), res.SessionToken, now.Add(3*idle)); !errors.Is(err, sessions.ErrExpired) {
		t.Fatalf("store: %v", err)
	}
}

func TestLocalSessionFromAnOutageOutlivesIt(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx := context.Background()
	u := e.NewUser(t, "homechoice")
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	res := login(t, e, u, auth.ModeLocal)
	r := authorize(t, e, "Bearer "+res.SessionToken, time.Now())
	if !r.IsAuthorized || r.Context["auth_mode"] != "local" || r.Context["username"] != u.Name || r.Context["package"] != u.Package {
		t.Fatalf("during the outage: %+v", r)
	}

	e.Proxy.Enable()
	if _, err := e.RT.Breaker.ForceClose(ctx); err != nil {
		t.Fatal(err)
	}
	login(t, e, u, auth.ModeKeycloak) // Keycloak is back for real
	r = authorize(t, e, "Bearer "+res.SessionToken, time.Now().Add(2*time.Minute))
	if !r.IsAuthorized || r.Context["auth_mode"] != "local" {
		t.Fatalf("the outage's local session must keep working after Keycloak returns: %+v", r)
	}
	if code, body := do(t, e.RT.SessionHandlers().List, res.SessionToken, nil); code != 200 || len(body["sessions"].([]any)) != 2 {
		t.Fatalf("list after the outage: %d %v", code, body)
	}
}

func TestLogoutAllDuringAnOutageReachesKeycloak(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx := context.Background()
	u := e.NewUser(t, "homechoice")
	before := login(t, e, u, auth.ModeKeycloak) // a Keycloak session to end
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	during := login(t, e, u, auth.ModeCached)

	code, body := do(t, e.RT.SessionHandlers().LogoutAll, during.SessionToken, nil)
	if code != 200 || body["keycloak_logout"] != "queued" || body["revoked"] != 2.0 {
		t.Fatalf("logout-all during the outage: %d %v", code, body)
	}
	for _, tok := range []string{before.SessionToken, during.SessionToken} {
		if r := authorize(t, e, "Bearer "+tok, time.Now()); r.IsAuthorized {
			t.Fatal("logout-all must end every session at once, outage or not")
		}
	}

	e.Proxy.Enable()
	if _, err := e.RT.Breaker.ForceClose(ctx); err != nil {
		t.Fatal(err)
	}
	// Keycloak still has the session until the queued job runs.
	if _, err := e.RT.Keycloak.Refresh(ctx, u.Package, before.Keycloak.RefreshToken); err != nil {
		t.Fatalf("before the queued logout runs: %v", err)
	}
	out, err := e.RT.Poller(0).Drain(ctx)
	if err != nil || out.Applied != 1 {
		t.Fatalf("drain: %+v %v", out, err)
	}
	if _, err := e.RT.Keycloak.Refresh(ctx, u.Package, before.Keycloak.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("once Keycloak is back the user must be logged out of it: %v", err)
	}
	e.AssertNoSecrets(t, u.Password, before.SessionToken, during.SessionToken, before.Keycloak.AccessToken, before.Keycloak.RefreshToken)
}

func TestAdminMetricsOnTheStack(t *testing.T) {
	e := stacktest.New(t, fastBreaker, func(c *config.Config) { c.API.AdminKey = "stack-admin-key" })
	ctx := context.Background()
	u, v := e.NewUser(t, "janee"), e.NewUser(t, "janee")
	login(t, e, u, auth.ModeKeycloak)
	ended := login(t, e, v, auth.ModeKeycloak)
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	login(t, e, u, auth.ModeCached)
	if code, _ := do(t, e.RT.SessionHandlers().Logout, ended.SessionToken, nil); code != 200 {
		t.Fatalf("logout %d", code)
	}

	resp, err := e.RT.SessionHandlers().AdminMetrics(ctx, httpapi.Request{
		Headers:               map[string]string{"x-admin-key": "stack-admin-key"},
		QueryStringParameters: map[string]string{"package": "janee"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %d %s", err, resp.StatusCode, resp.Body)
	}
	var rep metrics.SessionReport
	if err := json.Unmarshal([]byte(resp.Body), &rep); err != nil {
		t.Fatal(err)
	}
	last := map[string]int{} // this test's tables hold only its own logins, which may straddle an hour
	for _, h := range rep.LoginsPerHour[len(rep.LoginsPerHour)-2:] {
		for m, n := range h.ByAuthMode {
			last[m] += n
		}
	}
	if rep.ActiveSessions["keycloak"] != 1 || rep.ActiveSessions["cached"] != 1 || last["keycloak"] != 2 || last["cached"] != 1 {
		t.Fatalf("report %s", resp.Body)
	}
}
