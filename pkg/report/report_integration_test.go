package report_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sns"
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

	t.Run("daily summary", func(t *testing.T) { testDailySummary(t, k, snap) })

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

// topic records what would be published to SNS.
type topic struct {
	mu   sync.Mutex
	msgs []*sns.PublishInput
}

func (f *topic) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, in)
	return &sns.PublishOutput{}, nil
}

func (f *topic) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

// The daily summary goes out once a day per package, from the configured
// hour, however many cleanup runs race for it, and says what status says.
func testDailySummary(t *testing.T, k *opstest.Known, snap status.Snapshot) {
	rt := k.Env.RT
	rt.Config.Alerts.TopicARN = "arn:aws:sns:us-east-1:000000000000:operators-test"
	// The hour is this one, so the summaries cover what NewKnown did.
	now := time.Now().UTC()
	ctx := context.Background()
	f := &topic{}
	rt.Config.Alerts.DailySummaryHour = 23
	if n, err := rt.DailySummary(ctx, f, now.Truncate(24*time.Hour).Add(22*time.Hour+59*time.Minute)); n != 0 || err != nil {
		t.Fatalf("before the hour: published %d, %v", n, err)
	}
	rt.Config.Alerts.DailySummaryHour = now.Hour()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := rt.DailySummary(ctx, f, now.Add(time.Duration(i)*time.Millisecond)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if f.count() != 2 {
		t.Fatalf("6 racing runs published %d messages, want one per package (2)", f.count())
	}
	var hc string
	for _, m := range f.msgs {
		if strings.Contains(*m.Subject, "homechoice") {
			hc = *m.Message
		}
	}
	for _, want := range []string{"package homechoice", "circuit breaker         " + snap.Breaker.State,
		"successful              1", "keycloak              1", "failed                  2", "refused as locked       2 (2 users)",
		"users waiting           3"} {
		if !strings.Contains(hc, want) {
			t.Errorf("summary lacks %q:\n%s", want, hc)
		}
	}
	if strings.Contains(hc, "<") {
		t.Error("the e-mail summary has markup")
	}
	if n, _ := rt.DailySummary(ctx, f, now.Add(time.Second)); n != 0 {
		t.Errorf("published again the same day (%d)", n)
	}
	if n, err := rt.DailySummary(ctx, f, now.Add(24*time.Hour)); n != 2 || err != nil {
		t.Errorf("next day: published %d, %v", n, err)
	}
	runs, _ := rt.RunLog().LastRuns(ctx)
	if last := runs[len(runs)-1]; last.Job != "daily_summary" || !last.OK || !strings.Contains(last.Summary, "2 package") {
		t.Errorf("last daily summary run: %+v", last)
	}
}
