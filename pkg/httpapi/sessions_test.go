package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/sessions"
)

type fakeLogout struct{ users []string }

func (f *fakeLogout) LogoutEverywhere(_ context.Context, pkg, username string) string {
	f.users = append(f.users, pkg+"#"+username)
	return "queued"
}

type sessionFixture struct {
	store  *sessions.Memory
	h      *SessionHandlers
	logout *fakeLogout
	now    time.Time
}

func newSessionFixture(t *testing.T) *sessionFixture {
	f := &sessionFixture{store: sessions.NewMemory(sessions.WithIdleTimeout(30 * time.Minute)), logout: &fakeLogout{},
		now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	f.h = &SessionHandlers{Store: f.store, Keycloak: f.logout, Guard: AdminGuard{Key: "admin-key"}, Now: func() time.Time { return f.now }}
	return f
}

func (f *sessionFixture) login(t *testing.T, user, mode string) (string, sessions.Record) {
	t.Helper()
	tok, rec, err := f.store.Create(context.Background(), sessions.Record{Package: "homechoice", Username: user,
		AuthMode: sessions.AuthMode(mode), CreatedAt: f.now, ExpiresAt: f.now.Add(12 * time.Hour), SourceIP: "192.0.2.7", UserAgent: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func bearer(tok string) func(*Request) {
	return func(r *Request) { r.Headers["authorization"] = "Bearer " + tok }
}

func TestSessionRoutes(t *testing.T) {
	f := newSessionFixture(t)
	tokA1, a1 := f.login(t, "alice", "local")
	_, a2 := f.login(t, "alice", "keycloak")
	tokB, b1 := f.login(t, "bob", "keycloak")

	resp, _ := call(t, f.h.List, "", bearer(tokA1))
	var list struct{ Sessions []map[string]any }
	json.Unmarshal([]byte(resp.Body), &list)
	if resp.StatusCode != 200 || len(list.Sessions) != 2 {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
	if strings.Contains(resp.Body, tokA1) || strings.Contains(resp.Body, "hash") {
		t.Fatal("the list must never show a token or its hash")
	}
	for _, s := range list.Sessions {
		if (s["id"] == a1.ID) != (s["current"] == true) {
			t.Fatalf("current flag wrong: %v", s)
		}
	}

	// Bob's id from Alice's session: 404, like an id that does not exist.
	resp, out := call(t, f.h.Delete, "", bearer(tokA1), func(r *Request) { r.PathParameters = map[string]string{"id": b1.ID} })
	if resp.StatusCode != 404 || out["error"]["code"] != CodeNotFound {
		t.Fatalf("other user's id: %d %s", resp.StatusCode, resp.Body)
	}
	resp, _ = call(t, f.h.Delete, "", bearer(tokA1), func(r *Request) { r.PathParameters = map[string]string{"id": "no-such-id"} })
	if resp.StatusCode != 404 {
		t.Fatalf("unknown id: %d", resp.StatusCode)
	}
	if _, err := f.store.GetByToken(context.Background(), tokB, f.now); err != nil {
		t.Fatal("bob's session must survive alice's attempt")
	}
	resp, _ = call(t, f.h.Delete, "", bearer(tokA1), func(r *Request) { r.PathParameters = map[string]string{"id": a2.ID} })
	if resp.StatusCode != 200 {
		t.Fatalf("own session: %d %s", resp.StatusCode, resp.Body)
	}

	resp, _ = call(t, f.h.LogoutAll, "", bearer(tokA1))
	if resp.StatusCode != 200 || len(f.logout.users) != 1 || f.logout.users[0] != "homechoice#alice" {
		t.Fatalf("logout-all: %d %s %v", resp.StatusCode, resp.Body, f.logout.users)
	}
	if _, err := f.store.GetByToken(context.Background(), tokA1, f.now); !errors.Is(err, sessions.ErrRevoked) {
		t.Fatalf("logout-all must end the current session too: %v", err)
	}
	resp, out = call(t, f.h.List, "", bearer(tokA1))
	if resp.StatusCode != 401 || out["error"]["code"] != CodeUnauthorized {
		t.Fatalf("a revoked token must be refused: %d", resp.StatusCode)
	}
}

func TestIdleSessionExpires(t *testing.T) {
	f := newSessionFixture(t)
	tok, _ := f.login(t, "alice", "local")
	f.now = f.now.Add(31 * time.Minute)
	if resp, _ := call(t, f.h.List, "", bearer(tok)); resp.StatusCode != 401 {
		t.Fatalf("idle session still accepted: %d", resp.StatusCode)
	}
}

func TestAdminGuard(t *testing.T) {
	f := newSessionFixture(t)
	_, rec := f.login(t, "alice", "local")
	q := func(r *Request) {
		r.QueryStringParameters = map[string]string{"package": "homechoice", "username": "alice"}
	}
	if resp, _ := call(t, f.h.AdminList, "", q); resp.StatusCode != 403 {
		t.Fatalf("no key: %d", resp.StatusCode)
	}
	if resp, _ := call(t, f.h.AdminList, "", q, func(r *Request) { r.Headers["x-admin-key"] = "wrong" }); resp.StatusCode != 403 {
		t.Fatalf("wrong key: %d", resp.StatusCode)
	}
	resp, _ := call(t, f.h.AdminList, "", q, func(r *Request) { r.Headers["x-admin-key"] = "admin-key" })
	if resp.StatusCode != 200 || !strings.Contains(resp.Body, rec.ID) || !strings.Contains(resp.Body, `"username":"alice"`) {
		t.Fatalf("admin list: %d %s", resp.StatusCode, resp.Body)
	}
	iam := func(r *Request) {
		r.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::123456789012:role/ops"}}
	}
	resp, _ = call(t, f.h.AdminDelete, "", iam, func(r *Request) { r.PathParameters = map[string]string{"id": rec.ID} })
	if resp.StatusCode != 403 || !strings.Contains(resp.Body, `"code":"forbidden"`) {
		t.Fatalf("IAM caller not in api.admin_principals: %d %s", resp.StatusCode, resp.Body)
	}
	f.h.Guard.Principals = []string{"arn:aws:iam::123456789012:role/ops"}
	resp, _ = call(t, f.h.AdminDelete, "", iam, func(r *Request) { r.PathParameters = map[string]string{"id": rec.ID} })
	if resp.StatusCode != 200 {
		t.Fatalf("listed IAM caller: %d %s", resp.StatusCode, resp.Body)
	}
}

func TestAdminPrincipals(t *testing.T) {
	listed := []string{"arn:aws:iam::123456789012:user/ops-alice", "arn:aws:sts::123456789012:assumed-role/kcguard-admin/*"}
	for _, c := range []struct {
		arn  string
		want bool
	}{
		{"arn:aws:iam::123456789012:user/ops-alice", true},
		{"arn:aws:sts::123456789012:assumed-role/kcguard-admin/session-1", true},
		{"arn:aws:iam::123456789012:user/ops-alice2", false},
		{"arn:aws:sts::123456789012:assumed-role/kcguard-admin-x/s", false},
		{"arn:aws:sts::999999999999:assumed-role/kcguard-admin/s", false},
		{"arn:aws:iam::123456789012:user/mallory", false},
		{"", false},
	} {
		if got := AdminPrincipal(listed, c.arn); got != c.want {
			t.Errorf("%q: admin=%v, want %v", c.arn, got, c.want)
		}
	}
	if AdminPrincipal([]string{"*"}, "arn:aws:iam::1:user/x") {
		t.Error("a bare * must not make every caller an admin")
	}
	if AdminPrincipal(nil, "arn:aws:iam::1:user/x") {
		t.Error("no principals listed: no IAM caller is an admin")
	}
}

func TestAuthorizer(t *testing.T) {
	f := newSessionFixture(t)
	a := &Authorizer{Store: f.store, Now: func() time.Time { return f.now }}
	good, _ := f.login(t, "alice", "local")
	revoked, rrec := f.login(t, "alice", "local")
	f.store.Revoke(context.Background(), rrec.ID, f.now)
	expired, _ := f.login(t, "bob", "cached")
	cases := []struct {
		name   string
		header map[string]string
		want   bool
	}{
		{"valid", map[string]string{"authorization": "Bearer " + good}, true},
		{"scheme case-insensitive", map[string]string{"Authorization": "bearer " + good}, true},
		{"missing header", map[string]string{}, false},
		{"not bearer", map[string]string{"authorization": "Basic " + good}, false},
		{"empty token", map[string]string{"authorization": "Bearer "}, false},
		{"malformed token", map[string]string{"authorization": "Bearer not-a-token"}, false},
		{"two tokens", map[string]string{"authorization": "Bearer " + good + " " + good}, false},
		{"revoked", map[string]string{"authorization": "Bearer " + revoked}, false},
		{"oversize", map[string]string{"authorization": "Bearer " + strings.Repeat("a", 600)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := a.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{Headers: tc.header})
			if err != nil || resp.IsAuthorized != tc.want {
				t.Fatalf("authorized=%v err=%v", resp.IsAuthorized, err)
			}
			if tc.want && (resp.Context["username"] != "alice" || resp.Context["package"] != "homechoice" || resp.Context["auth_mode"] != "local") {
				t.Fatalf("context %v", resp.Context)
			}
		})
	}
	f.now = f.now.Add(13 * time.Hour)
	resp, _ := a.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer " + expired}})
	if resp.IsAuthorized {
		t.Fatal("expired session authorised")
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc", "Basic x", "", "Bearer", "Bearer a b", "BEARER\tx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok := BearerToken(h)
		if tok == "" {
			return
		}
		if len(h) > MaxAuthorizationLen || strings.ContainsAny(tok, " \t\r\n") || !strings.Contains(h, tok) {
			t.Fatalf("BearerToken(%q) = %q", h, tok)
		}
	})
}

func TestAdminMetrics(t *testing.T) {
	f := newSessionFixture(t)
	a := audit.NewMemory()
	f.h.Reports = metrics.SessionReporter{Audit: a, Sessions: f.store, Lifetime: 12 * time.Hour}
	f.h.Packages = []string{"homechoice"}
	for _, mode := range []string{"local", "keycloak", "keycloak"} {
		f.login(t, "alice", mode)
		if err := a.Record(context.Background(), audit.Event{Package: "homechoice", Username: "alice", Action: audit.ActionLogin,
			AuthMode: mode, Outcome: audit.OutcomeSuccess, At: f.now}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(r *Request) { r.Headers["x-admin-key"] = "admin-key" }
	pkg := func(p string) func(*Request) {
		return func(r *Request) { r.QueryStringParameters = map[string]string{"package": p} }
	}
	cases := []struct {
		name   string
		mutate []func(*Request)
		status int
	}{
		{"no admin key", []func(*Request){pkg("homechoice")}, 403},
		{"no package", []func(*Request){key}, 400},
		{"unknown package", []func(*Request){key, pkg("nope")}, 404},
		{"ok", []func(*Request){key, pkg("homechoice")}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := call(t, f.h.AdminMetrics, "", tc.mutate...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s", resp.StatusCode, resp.Body)
			}
			if tc.status != 200 {
				return
			}
			var rep metrics.SessionReport
			if err := json.Unmarshal([]byte(resp.Body), &rep); err != nil {
				t.Fatal(err)
			}
			last := rep.LoginsPerHour[len(rep.LoginsPerHour)-1]
			if rep.ActiveSessions["keycloak"] != 2 || rep.ActiveSessions["local"] != 1 || last.ByAuthMode["keycloak"] != 2 || last.ByAuthMode["local"] != 1 {
				t.Fatalf("report %s", resp.Body)
			}
		})
	}
}
