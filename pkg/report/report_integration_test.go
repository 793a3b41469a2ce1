package report_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/kcguard/kcguard/internal/opstest"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/report"
	"github.com/kcguard/kcguard/pkg/status"
)

// doc is a parsed report: the values of data-k cells and the rows of each
// table by id.
type doc struct {
	values map[string]string
	rows   map[string]int // tbody rows, a lone "none" row counting 0
}

func parse(t *testing.T, r io.Reader) doc {
	t.Helper()
	root, err := html.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	d := doc{values: map[string]string{}, rows: map[string]int{}}
	var text func(*html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	attr := func(n *html.Node, name string) string {
		for _, a := range n.Attr {
			if a.Key == name {
				return a.Val
			}
		}
		return ""
	}
	var walk func(n *html.Node, table string)
	walk = func(n *html.Node, table string) {
		if n.Type == html.ElementNode {
			if k := attr(n, "data-k"); k != "" {
				d.values[k] = strings.TrimSpace(text(n))
			}
			switch n.Data {
			case "table":
				table = attr(n, "id")
				d.rows[table] += 0
			case "tr":
				if n.Parent != nil && n.Parent.Data == "tbody" && strings.TrimSpace(text(n)) != "none" {
					d.rows[table]++
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, table)
		}
	}
	walk(root, "")
	return d
}

func (d doc) num(t *testing.T, k string) int {
	t.Helper()
	v, ok := d.values[k]
	if !ok {
		t.Fatalf("no %q in the report (have %v)", k, d.values)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s = %q, not a number", k, v)
	}
	return n
}

func TestReportsMatchStatus(t *testing.T) {
	k := opstest.NewKnown(t)
	rt := k.Env.RT
	ctx := context.Background()
	now := time.Now()
	snap := rt.StatusReader().Read(ctx, now)
	var hc status.Package
	for _, p := range snap.Packages {
		if p.Name == "homechoice" {
			hc = p
		}
	}
	render := func(kind string) doc {
		var b bytes.Buffer
		if err := rt.Reporter().Write(ctx, &b, kind, "homechoice", now.Add(-24*time.Hour), now); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		return parse(t, &b)
	}
	for _, kind := range report.Kinds {
		t.Run(kind, func(t *testing.T) {
			d := render(kind)
			if d.values["breaker"] != snap.Breaker.State || !strings.Contains(d.values["keycloak"], "unreachable") ||
				!strings.Contains(d.values["healthy"], "needs attention") {
				t.Errorf("status part: %v", d.values)
			}
			for key, want := range map[string]int{"users_waiting": hc.UsersWaiting, "dlq": snap.Queue.DLQ,
				"queue_waiting": snap.Queue.Waiting, "tokens_cached": snap.Tokens.Cached, "tokens_expiring": snap.Tokens.ExpiringSoon,
				"active_sessions": hc.ActiveSessions["keycloak"]} {
				if got := d.num(t, key); got != want {
					t.Errorf("%s = %d, status says %d", key, got, want)
				}
			}
			if _, ok := d.rows["status"]; !ok {
				t.Error("no status table")
			}
			switch kind {
			case report.Summary, report.Detailed:
				day := hc.LastDay
				for key, want := range map[string]int{"success": day.Success, "failure": day.Failure, "lockout": day.Lockout,
					"locked_users": day.LockedUsers, "mode_keycloak": day.ByAuthMode["keycloak"], "password_changes": 0} {
					if got := d.num(t, key); got != want {
						t.Errorf("%s = %d, status says %d", key, got, want)
					}
				}
				if d.rows["days"] != 1 || d.rows["modes"] != 1 {
					t.Errorf("rows: %v, want one day and one auth mode", d.rows)
				}
				if kind == report.Detailed && (d.rows["users"] != 2 || d.rows["events"] != 5 || d.rows["hours"] < 1) {
					t.Errorf("detailed rows: %v, want 2 users with failures and 5 events", d.rows)
				}
				if kind == report.Summary {
					if _, ok := d.rows["events"]; ok {
						t.Error("the summary lists events")
					}
				}
			case report.SyncQueue:
				if d.num(t, "journal_pending") != snap.Journal.Counts["pending"] || d.rows["jobs"] != 3 || d.rows["waiting"] != 3 {
					t.Errorf("sync-queue: pending %q, rows %v; want 3 jobs and 3 users waiting", d.values["journal_pending"], d.rows)
				}
			}
		})
	}

	srv := httptest.NewServer(&httpapi.Server{Routes: rt.Routes(), Log: rt.Log})
	defer srv.Close()
	get := func(path, key string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if key != "" {
			req.Header.Set("X-Admin-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path, key string
		status    int
		has       string
	}{
		{"/reports/summary?package=homechoice", "", 403, `"forbidden"`},
		{"/reports/summary?package=homechoice&since=7d", opstest.AdminKey, 200, `<table id="logins">`},
		{"/reports/sync-queue?package=homechoice", opstest.AdminKey, 200, `<table id="waiting">`},
		{"/reports/nope?package=homechoice", opstest.AdminKey, 404, `"not_found"`},
		{"/reports/summary?package=nope", opstest.AdminKey, 404, `"unknown_package"`},
		{"/reports/summary?package=homechoice&since=yesterday", opstest.AdminKey, 400, `"invalid_request"`},
		{"/reports/summary?package=homechoice&since=400d", opstest.AdminKey, 400, `"invalid_request"`},
	} {
		if code, body := get(c.path, c.key); code != c.status || !strings.Contains(body, c.has) {
			t.Errorf("GET %s = %d %.120s, want %d with %s", c.path, code, body, c.status, c.has)
		}
	}
}
