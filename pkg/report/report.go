// Package report renders the operators' HTML reports (html/template,
// print-friendly): a package's summary, a detailed report of its logins,
// and the sync queue. `kcguard report`, GET /reports/{kind} and the daily
// summary the cleanup schedule publishes all render them here. Numbers come
// from the status read model (now) and the audit trail's hour buckets (the
// period), never from a table scan.
package report

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	texttemplate "text/template"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/users"
)

// The report kinds.
const (
	Summary   = "summary"
	Detailed  = "detailed"
	SyncQueue = "sync-queue"
)

// Kinds lists them.
var Kinds = []string{Summary, Detailed, SyncQueue}

// MaxEvents bounds the events a detailed report lists one by one (the
// counts always cover the whole period).
const MaxEvents = 500

// Ports.
type (
	StatusReader interface {
		Read(ctx context.Context, now time.Time) status.Snapshot
	}
	Unsynced interface {
		ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]users.User, string, error)
	}
)

// Reporter renders reports.
type Reporter struct {
	Status StatusReader
	Audit  audit.PackageReader
	Users  Unsynced
}

//go:embed report.html
var source string

//go:embed summary.txt
var textSource string

var funcs = map[string]any{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"age": func(secs int64) string { return (time.Duration(secs) * time.Second).String() },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"sum": func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	},
}

var (
	page = template.Must(template.New("report").Funcs(funcs).Parse(source))
	text = texttemplate.Must(texttemplate.New("summary").Funcs(funcs).Parse(textSource))
)

// Data is what the template renders.
type Data struct {
	Kind, Package string
	Since, Now    time.Time
	Status        status.Snapshot
	Pkg           status.Package
	Keycloak      *status.Reachability
	Period        Period
	Waiting       []users.User
	Jobs          []status.Job // this package's pending and failed jobs
}

// Period is what the audit trail says about [Since, Now).
type Period struct {
	Logins status.Logins
	// Modes lists the auth modes seen, for stable columns.
	Modes []string
	Days  []Bucket
	Hours []Bucket // detailed only
	Users []UserLine
	// Events is the newest MaxEvents events, newest first (detailed only).
	Events    []audit.Event
	Truncated int // events left out of Events
	Password  int // password changes in the period
}

// Bucket counts one day's or hour's logins.
type Bucket struct {
	Start  time.Time
	Logins status.Logins
}

// UserLine is one user with failed or locked logins in the period.
type UserLine struct {
	Username          string
	Failures, Lockout int
	Last              time.Time
	LastIP            string
}

// Write renders kind for pkg over [since, now) as HTML.
func (r *Reporter) Write(ctx context.Context, w io.Writer, kind, pkg string, since, now time.Time) error {
	d, err := r.data(ctx, kind, pkg, since, now)
	if err != nil {
		return err
	}
	return page.Execute(w, d)
}

// WriteText renders the summary as plain text, for e-mail (SNS e-mail
// subscribers see a message's text as it is).
func (r *Reporter) WriteText(ctx context.Context, w io.Writer, pkg string, since, now time.Time) error {
	d, err := r.data(ctx, Summary, pkg, since, now)
	if err != nil {
		return err
	}
	return text.Execute(w, d)
}

func (r *Reporter) data(ctx context.Context, kind, pkg string, since, now time.Time) (Data, error) {
	now, since = now.UTC(), since.UTC()
	d := Data{Kind: kind, Package: pkg, Since: since, Now: now, Status: r.Status.Read(ctx, now)}
	for _, p := range d.Status.Packages {
		if p.Name == pkg {
			d.Pkg = p
		}
	}
	for i, k := range d.Status.Keycloak {
		if k.Package == pkg {
			d.Keycloak = &d.Status.Keycloak[i]
		}
	}
	switch kind {
	case Summary, Detailed:
		p, err := r.period(ctx, pkg, since, now, kind == Detailed)
		if err != nil {
			return d, err
		}
		d.Period = p
	case SyncQueue:
		if err := r.syncQueue(ctx, &d); err != nil {
			return d, err
		}
	default:
		return d, fmt.Errorf("unknown report %q", kind)
	}
	return d, nil
}

func newLogins() status.Logins { return status.Logins{ByAuthMode: map[string]int{}} }

func (r *Reporter) period(ctx context.Context, pkg string, since, now time.Time, detailed bool) (Period, error) {
	p := Period{Logins: newLogins()}
	locked := map[string]bool{}
	days, hours := map[time.Time]*Bucket{}, map[time.Time]*Bucket{}
	dayLocked, hourLocked := map[time.Time]map[string]bool{}, map[time.Time]map[string]bool{}
	byUser := map[string]*UserLine{}
	modes := map[string]bool{}
	bucket := func(m map[time.Time]*Bucket, lk map[time.Time]map[string]bool, start time.Time, e audit.Event) {
		b, ok := m[start]
		if !ok {
			b = &Bucket{Start: start, Logins: newLogins()}
			m[start], lk[start] = b, map[string]bool{}
		}
		b.Logins.Count(e, lk[start])
	}
	var events []audit.Event
	err := r.Audit.ListByPackage(ctx, pkg, since, now.Add(time.Nanosecond), func(e audit.Event) error {
		if detailed {
			events = append(events, e)
		}
		if e.Action == audit.ActionPasswordChange {
			p.Password++
		}
		if e.Action != audit.ActionLogin {
			return nil
		}
		p.Logins.Count(e, locked)
		if e.Outcome == audit.OutcomeSuccess {
			modes[e.AuthMode] = true
		}
		bucket(days, dayLocked, e.At.Truncate(24*time.Hour), e)
		if detailed {
			bucket(hours, hourLocked, e.At.Truncate(time.Hour), e)
		}
		if e.Outcome != audit.OutcomeSuccess {
			u := byUser[e.Username]
			if u == nil {
				u = &UserLine{Username: e.Username}
				byUser[e.Username] = u
			}
			if e.Outcome == audit.OutcomeLocked {
				u.Lockout++
			} else {
				u.Failures++
			}
			if !e.At.Before(u.Last) {
				u.Last, u.LastIP = e.At, e.SourceIP
			}
		}
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("report %s: %w", pkg, err)
	}
	for m := range modes {
		p.Modes = append(p.Modes, m)
	}
	sort.Strings(p.Modes)
	p.Days, p.Hours = sorted(days), sorted(hours)
	for _, u := range byUser {
		p.Users = append(p.Users, *u)
	}
	sort.Slice(p.Users, func(i, j int) bool {
		a, b := p.Users[i], p.Users[j]
		if a.Failures+a.Lockout != b.Failures+b.Lockout {
			return a.Failures+a.Lockout > b.Failures+b.Lockout
		}
		return a.Username < b.Username
	})
	// Newest first; keep the newest MaxEvents.
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	if len(events) > MaxEvents {
		p.Truncated = len(events) - MaxEvents
		events = events[:MaxEvents]
	}
	p.Events = events
	return p, nil
}

func sorted(m map[time.Time]*Bucket) []Bucket {
	out := make([]Bucket, 0, len(m))
	for _, b := range m {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

func (r *Reporter) syncQueue(ctx context.Context, d *Data) error {
	for cursor := ""; ; {
		page, next, err := r.Users.ListUnsynced(ctx, d.Package, 100, cursor)
		if err != nil {
			return fmt.Errorf("report %s: users waiting: %w", d.Package, err)
		}
		d.Waiting = append(d.Waiting, page...)
		if cursor = next; next == "" {
			break
		}
	}
	sort.Slice(d.Waiting, func(i, j int) bool { return d.Waiting[i].UpdatedAt.Before(d.Waiting[j].UpdatedAt) })
	if j := d.Status.Journal; j != nil {
		for _, x := range append(append([]status.Job{}, j.Failed...), j.Pending...) {
			if x.Package == d.Package {
				d.Jobs = append(d.Jobs, x)
			}
		}
	}
	return nil
}
