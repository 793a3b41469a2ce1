package status_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/opstest"
	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

func TestSnapshotOfAKnownStack(t *testing.T) {
	k := opstest.NewKnown(t)
	s := k.Env.RT.StatusReader().Read(context.Background(), time.Now())
	if len(s.Errors) > 0 {
		t.Fatalf("parts unread: %v", s.Errors)
	}
	if s.Breaker.State != "open" || !s.Breaker.Forced || s.Breaker.Generation == 0 || s.Breaker.Since.IsZero() {
		t.Errorf("breaker = %+v, want forced open", s.Breaker)
	}
	if len(s.Keycloak) != 2 {
		t.Fatalf("keycloak = %+v, want both packages", s.Keycloak)
	}
	for _, r := range s.Keycloak {
		if r.Reachable || r.Error == "" {
			t.Errorf("keycloak %s reachable=%v error=%q with the proxy cut", r.Package, r.Reachable, r.Error)
		}
	}
	if got := s.Queue.Waiting + s.Queue.InFlight; got != 3 || s.Queue.DLQ != 0 {
		t.Errorf("queue = %+v, want 3 jobs and an empty DLQ", s.Queue)
	}
	if s.Queue.UsersWaiting != 3 || s.Queue.OldestPendingSeconds < 0 {
		t.Errorf("users waiting = %d (oldest %ds), want 3", s.Queue.UsersWaiting, s.Queue.OldestPendingSeconds)
	}
	if s.Journal == nil || s.Journal.Counts["pending"] != 3 || len(s.Journal.Pending) != 3 || len(s.Journal.Failed) != 0 {
		t.Errorf("journal = %+v, want 3 pending", s.Journal)
	} else {
		for _, j := range s.Journal.Pending {
			if !contains(k.Waiting, j.Username) || j.Type != string(syncjob.SetPassword) {
				t.Errorf("pending job %+v is not one of ours", j)
			}
		}
	}
	hc := pkgOf(t, s, "homechoice")
	for name, l := range map[string]status.Logins{"last hour": hc.LastHour, "last day": hc.LastDay} {
		if l.Success != 1 || l.ByAuthMode["keycloak"] != 1 || l.Failure != 2 || l.Lockout != 2 || l.LockedUsers != 2 {
			t.Errorf("%s = %+v, want 1 keycloak success, 2 failures, 2 lockouts of 2 users", name, l)
		}
	}
	if hc.ActiveSessions["keycloak"] != 1 || hc.UsersWaiting != 3 {
		t.Errorf("homechoice sessions %v, waiting %d; want 1 keycloak session, 3 waiting", hc.ActiveSessions, hc.UsersWaiting)
	}
	if n := len(hc.Hours); n != 24 || hc.Hours[n-1].ByAuthMode["keycloak"] != 1 {
		t.Errorf("hours = %+v, want 24 with this hour's keycloak login", hc.Hours)
	}
	if jn := pkgOf(t, s, "janee"); jn.LastDay.Success+jn.LastDay.Failure+jn.LastDay.Lockout != 0 || jn.UsersWaiting != 0 {
		t.Errorf("janee = %+v, want nothing", jn)
	}
	// Keycloak's access tokens live 5 minutes: inside the 10-minute window.
	if s.Tokens.Cached != 1 || s.Tokens.ExpiringSoon != 1 || s.Tokens.WindowSeconds != 600 {
		t.Errorf("tokens = %+v, want 1 cached, 1 expiring within 600 s", s.Tokens)
	}
	if len(s.Runs) != 1 || s.Runs[0].Job != "pull" || !s.Runs[0].OK || s.Runs[0].Summary != "pulled 4 events" {
		t.Errorf("runs = %+v, want the recorded pull", s.Runs)
	}
	if s.Healthy {
		t.Error("healthy with the breaker open and Keycloak cut")
	}
	k.Env.AssertNoSecrets(t, k.User.Password)
}

func TestCleanupRecordsItsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local stack")
	}
	env := stacktest.New(t)
	ctx := context.Background()
	start := time.Now()
	r, err := env.RT.Cleaner(io.Discard).Run(ctx, start)
	env.RT.RecordCleanup(ctx, start, r, err)
	runs, err2 := env.RT.RunLog().LastRuns(ctx)
	if err2 != nil {
		t.Fatal(err2)
	}
	if len(runs) != 2 || runs[0].Job != "cleanup" || runs[1].Job != "reconcile" {
		t.Fatalf("runs = %+v, want cleanup and reconcile", runs)
	}
	if runs[0].OK != (err == nil) || runs[0].FinishedAt.Before(start) || !strings.Contains(runs[0].Summary, "deleted") {
		t.Errorf("cleanup run = %+v (run error %v)", runs[0], err)
	}
}

// The status routes refuse anonymous callers; the dashboard's cookie opens
// only the read-only views, never an admin action.
func TestStatusRoutesRefuseAnonymousCallers(t *testing.T) {
	k := opstest.NewKnown(t)
	srv := httptest.NewServer(&httpapi.Server{Routes: k.Env.RT.Routes(), Log: k.Env.RT.Log})
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/status", "/dashboard/status"} {
		for name, hdr := range map[string]map[string]string{"anonymous": nil, "wrong key": {"X-Admin-Key": "nope"},
			"forged cookie": {"Cookie": httpapi.DashboardCookie + "=v1.9999999999.forged"}} {
			if resp, body := do("GET", p, "", hdr); resp.StatusCode != 403 || !strings.Contains(body, `"forbidden"`) {
				t.Errorf("%s GET %s = %d %s, want 403 forbidden", name, p, resp.StatusCode, body)
			}
		}
	}
	resp, body := do("GET", "/dashboard", "", nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/dashboard/login" || strings.Contains(body, "/dashboard/status") {
		t.Errorf("anonymous GET /dashboard = %d to %q, want 303 to the login form and no page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := do("GET", "/dashboard/login", "", nil); resp.StatusCode != 200 || !strings.Contains(body, `action="/dashboard/login"`) {
		t.Errorf("GET /dashboard/login = %d", resp.StatusCode)
	}
	form := func(key string) string { return url.Values{"key": {key}}.Encode() }
	if resp, _ := do("POST", "/dashboard/login", form("wrong"), nil); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("login with a wrong key = %d with cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp, _ = do("POST", "/dashboard/login", form(opstest.AdminKey), nil)
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly || resp.Cookies()[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login = %d cookies %v, want 303 and one HttpOnly SameSite=Strict cookie", resp.StatusCode, resp.Cookies())
	}
	if strings.Contains(resp.Cookies()[0].Value, opstest.AdminKey) {
		t.Error("the cookie carries the admin key")
	}
	cookie := map[string]string{"Cookie": resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value}
	if resp, body := do("GET", "/dashboard", "", cookie); resp.StatusCode != 200 || !strings.Contains(body, "/dashboard/status") {
		t.Errorf("GET /dashboard with the cookie = %d", resp.StatusCode)
	}
	resp, body = do("GET", "/dashboard/status", "", cookie)
	var s status.Snapshot
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Breaker.State != "open" {
		t.Errorf("GET /dashboard/status with the cookie = %d %.200s", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/status", "", map[string]string{"X-Admin-Key": opstest.AdminKey}); resp.StatusCode != 200 {
		t.Errorf("GET /status with the admin key = %d", resp.StatusCode)
	}
	if resp, _ := do("GET", "/admin/sessions?package=homechoice&username=x", "", cookie); resp.StatusCode != 403 {
		t.Errorf("the dashboard cookie opened an admin route: %d", resp.StatusCode)
	}
}

func pkgOf(t *testing.T, s status.Snapshot, name string) status.Package {
	t.Helper()
	for _, p := range s.Packages {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no package %s in %+v", name, s.Packages)
	return status.Package{}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
