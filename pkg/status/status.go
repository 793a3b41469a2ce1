// Package status is the operators' read model: one Snapshot of everything
// that says whether kcguard is healthy (breaker, Keycloak reachability, the
// sync queue and journal, logins by auth mode and outcome, sessions, cached
// tokens, the last scheduled runs). GET /status, `kcguard status`, the
// dashboard page and the HTML reports all read it, so they cannot disagree.
//
// Every part is read through a small port and bounded: the audit trail by
// its per-package hour buckets, counts through indexes, never a table scan.
// A part that cannot be read is named in Snapshot.Errors and the rest is
// still reported: a status page that fails whole during an outage is no use.
package status

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/users"
)

// Snapshot is the whole status at one instant.
type Snapshot struct {
	At time.Time `json:"at"`
	// Healthy is Snapshot.IsHealthy, for monitors that read the JSON.
	Healthy  bool           `json:"healthy"`
	Breaker  Breaker        `json:"breaker"`
	Keycloak []Reachability `json:"keycloak"`
	Queue    Queue          `json:"queue"`
	// Journal is nil when the sync journal is off.
	Journal  *Journal  `json:"journal,omitempty"`
	Packages []Package `json:"packages"`
	Tokens   Tokens    `json:"tokens"`
	Runs     []Run     `json:"runs"`
	// Errors names the parts that could not be read ("queue: ...").
	Errors []string `json:"errors,omitempty"`
}

// Healthy is what a monitor asks: breaker closed (or disabled), every
// package's Keycloak reachable, nothing dead-lettered, every part read.
func (s Snapshot) IsHealthy() bool {
	if s.Breaker.State != string(breaker.StateClosed) && s.Breaker.State != string(breaker.StateDisabled) {
		return false
	}
	for _, k := range s.Keycloak {
		if !k.Reachable {
			return false
		}
	}
	return s.Queue.DLQ == 0 && len(s.Errors) == 0
}

// Breaker is the fleet-wide breaker.
type Breaker struct {
	Name       string    `json:"name"`
	State      string    `json:"state"` // closed, open, half_open, disabled
	Since      time.Time `json:"since"`
	Generation uint64    `json:"generation"`
	NextProbe  time.Time `json:"next_probe,omitzero"`
	Failures   int       `json:"failures"`
	Forced     bool      `json:"forced"`
	Reason     string    `json:"reason,omitempty"`
	// FallbackInUse: the breaker's table is unreachable and this instance
	// decides with its in-process breaker.
	FallbackInUse bool   `json:"fallback_in_use"`
	StoreError    string `json:"store_error,omitempty"`
}

// Reachability is one package's Keycloak realm, probed now.
type Reachability struct {
	Package   string `json:"package"`
	Realm     string `json:"realm"`
	Reachable bool   `json:"reachable"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error,omitempty"`
}

// Queue is the sync queue to Keycloak.
type Queue struct {
	Waiting  int `json:"waiting"`
	InFlight int `json:"in_flight"`
	DLQ      int `json:"dlq"`
	// UsersWaiting counts users whose local version is ahead of Keycloak's.
	UsersWaiting int `json:"users_waiting"`
	// OldestPendingSeconds is the age of the oldest change Keycloak has not
	// got yet (0: none).
	OldestPendingSeconds int64 `json:"oldest_pending_seconds"`
}

// Journal is the sync journal: counts by status and the jobs an operator
// acts on (oldest first).
type Journal struct {
	Counts  map[string]int `json:"counts"`
	Pending []Job          `json:"pending"`
	Failed  []Job          `json:"failed"`
}

// Job is one journal entry, without anything secret (the journal holds none).
type Job struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Package   string    `json:"package"`
	Username  string    `json:"username"`
	Version   int64     `json:"version"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// JobOf is the operators' view of a journal entry.
func JobOf(e journal.Entry) Job {
	return Job{ID: e.JobID, Type: e.Type, Package: e.Package, Username: e.Username,
		Version: e.Version, Status: string(e.Status), Reason: e.Reason, UpdatedAt: e.UpdatedAt}
}

// Package is one tenant's logins and sessions.
type Package struct {
	Name         string `json:"name"`
	UsersWaiting int    `json:"users_waiting"`
	// ActiveSessions by auth mode (keycloak, cached, local).
	ActiveSessions map[string]int `json:"active_sessions"`
	LastHour       Logins         `json:"last_hour"`
	LastDay        Logins         `json:"last_day"`
	// Hours is successful logins by auth mode per UTC hour over the last
	// day, oldest first; the last is the current, partial hour.
	Hours []metrics.HourLogins `json:"hours"`

	oldestPending time.Time
}

// Logins counts login attempts over a window.
type Logins struct {
	Success int `json:"success"`
	Failure int `json:"failure"`
	Lockout int `json:"lockout"`
	// ByAuthMode counts successful logins by auth mode.
	ByAuthMode map[string]int `json:"by_auth_mode"`
	// LockedUsers counts distinct users refused as locked.
	LockedUsers int `json:"locked_users"`
}

// Tokens is the Keycloak token cache.
type Tokens struct {
	// Cached counts entries still within their grace period.
	Cached int `json:"cached"`
	// ExpiringSoon counts entries the next cleanup would refresh.
	ExpiringSoon int `json:"expiring_soon"`
	// Window is what "soon" means (cleanup.refresh_window).
	WindowSeconds int64 `json:"window_seconds"`
}

// Ports: each part's source. Small on purpose; platform wires the adapters.
type (
	BreakerView interface {
		Status(ctx context.Context) (breaker.Status, error)
	}
	Prober interface {
		Probe(ctx context.Context) []Reachability
	}
	QueueDepth interface {
		Depth(ctx context.Context) (waiting, inFlight int, err error)
	}
	Unsynced interface {
		ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]users.User, string, error)
	}
	JournalView interface {
		ListByStatus(ctx context.Context, s journal.Status, limit int, cursor string) ([]journal.Entry, string, error)
		Count(ctx context.Context, s journal.Status) (int, error)
	}
	SessionReports interface {
		ReportEach(ctx context.Context, pkg string, now time.Time, each func(audit.Event)) (metrics.SessionReport, error)
	}
	TokenCounts interface {
		CountCached(ctx context.Context, now time.Time) (int, error)
		CountExpiring(ctx context.Context, before time.Time) (int, error)
	}
	RunReader interface {
		LastRuns(ctx context.Context) ([]Run, error)
	}
)

// Reader builds Snapshots. Nil ports leave their part empty (Journal nil).
type Reader struct {
	Breaker  BreakerView
	Probe    Prober
	Queue    QueueDepth
	DLQ      QueueDepth
	Users    Unsynced
	Journal  JournalView
	Sessions SessionReports
	Tokens   TokenCounts
	Runs     RunReader
	Packages []string
	// RefreshWindow is cleanup.refresh_window (default 10m).
	RefreshWindow time.Duration
	// JobListLimit bounds the pending and failed jobs listed (default 20).
	JobListLimit int
}

// Read builds the Snapshot at now; parts are read in parallel.
func (r *Reader) Read(ctx context.Context, now time.Time) Snapshot {
	now = now.UTC()
	s := Snapshot{At: now, Keycloak: []Reachability{}, Runs: []Run{}}
	var mu sync.Mutex
	fail := func(part string, err error) {
		mu.Lock()
		defer mu.Unlock()
		s.Errors = append(s.Errors, fmt.Sprintf("%s: %v", part, err))
	}
	var wg sync.WaitGroup
	do := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	do(func() { r.readBreaker(ctx, &s, fail) })
	if r.Probe != nil {
		do(func() { s.Keycloak = r.Probe.Probe(ctx) })
	}
	do(func() { r.readQueue(ctx, &s, fail) })
	if r.Journal != nil {
		do(func() { s.Journal = r.readJournal(ctx, fail) })
	}
	pkgs := make([]Package, len(r.Packages))
	for i, p := range r.Packages {
		do(func() { pkgs[i] = r.readPackage(ctx, p, now, fail) })
	}
	if r.Tokens != nil {
		do(func() { r.readTokens(ctx, &s, now, fail) })
	}
	if r.Runs != nil {
		do(func() {
			runs, err := r.Runs.LastRuns(ctx)
			if err != nil {
				fail("runs", err)
				return
			}
			s.Runs = runs
		})
	}
	wg.Wait()
	s.Packages = pkgs
	var oldest time.Time
	for _, p := range pkgs {
		s.Queue.UsersWaiting += p.UsersWaiting
		if !p.oldestPending.IsZero() && (oldest.IsZero() || p.oldestPending.Before(oldest)) {
			oldest = p.oldestPending
		}
	}
	if !oldest.IsZero() && now.After(oldest) {
		s.Queue.OldestPendingSeconds = int64(now.Sub(oldest) / time.Second)
	}
	sort.Strings(s.Errors)
	s.Healthy = s.IsHealthy()
	return s
}

func (r *Reader) readBreaker(ctx context.Context, s *Snapshot, fail func(string, error)) {
	if r.Breaker == nil {
		return
	}
	st, err := r.Breaker.Status(ctx)
	if err != nil {
		fail("breaker", err)
		return
	}
	s.Breaker = BreakerOf(st)
}

// BreakerOf is the operators' view of a breaker status.
func BreakerOf(st breaker.Status) Breaker {
	return Breaker{Name: st.Breaker, State: string(st.State), Since: st.Since, Generation: st.Generation,
		NextProbe: st.NextProbe, Failures: st.Failures, Forced: st.Forced, Reason: st.Reason,
		FallbackInUse: st.Fallback, StoreError: st.StoreError}
}

func (r *Reader) readQueue(ctx context.Context, s *Snapshot, fail func(string, error)) {
	if r.Queue != nil {
		w, f, err := r.Queue.Depth(ctx)
		if err != nil {
			fail("queue", err)
		}
		s.Queue.Waiting, s.Queue.InFlight = w, f
	}
	if r.DLQ != nil {
		w, f, err := r.DLQ.Depth(ctx)
		if err != nil {
			fail("dlq", err)
		}
		s.Queue.DLQ = w + f
	}
}

// usersWaiting pages through the sparse unsynced index of pkg.
func (r *Reader) usersWaiting(ctx context.Context, pkg string) (n int, oldest time.Time, err error) {
	if r.Users == nil {
		return 0, oldest, nil
	}
	for cursor := ""; ; {
		page, next, err := r.Users.ListUnsynced(ctx, pkg, 100, cursor)
		if err != nil {
			return n, oldest, err
		}
		for _, u := range page {
			n++
			if oldest.IsZero() || u.UpdatedAt.Before(oldest) {
				oldest = u.UpdatedAt
			}
		}
		if cursor = next; next == "" {
			return n, oldest, nil
		}
	}
}

func (r *Reader) readJournal(ctx context.Context, fail func(string, error)) *Journal {
	j := &Journal{Counts: map[string]int{}, Pending: []Job{}, Failed: []Job{}}
	for _, st := range journal.Statuses {
		n, err := r.Journal.Count(ctx, st)
		if err != nil {
			fail("journal", err)
			return j
		}
		j.Counts[string(st)] = n
	}
	limit := r.JobListLimit
	if limit <= 0 {
		limit = 20
	}
	for _, l := range []struct {
		st  journal.Status
		dst *[]Job
	}{{journal.Pending, &j.Pending}, {journal.Failed, &j.Failed}} {
		list, _, err := r.Journal.ListByStatus(ctx, l.st, limit, "")
		if err != nil {
			fail("journal", err)
			return j
		}
		for _, e := range list {
			*l.dst = append(*l.dst, JobOf(e))
		}
	}
	return j
}

func (r *Reader) readPackage(ctx context.Context, pkg string, now time.Time, fail func(string, error)) Package {
	p := Package{Name: pkg, ActiveSessions: map[string]int{}, Hours: []metrics.HourLogins{},
		LastHour: Logins{ByAuthMode: map[string]int{}}, LastDay: Logins{ByAuthMode: map[string]int{}}}
	var err error
	if p.UsersWaiting, p.oldestPending, err = r.usersWaiting(ctx, pkg); err != nil {
		fail("users waiting "+pkg, err)
	}
	if r.Sessions != nil {
		lockedHour, lockedDay := map[string]bool{}, map[string]bool{}
		rep, err := r.Sessions.ReportEach(ctx, pkg, now, func(e audit.Event) {
			if e.Action != audit.ActionLogin || e.At.Before(now.Add(-24*time.Hour)) {
				return
			}
			p.LastDay.Count(e, lockedDay)
			if !e.At.Before(now.Add(-time.Hour)) {
				p.LastHour.Count(e, lockedHour)
			}
		})
		if err != nil {
			fail("logins "+pkg, err)
		}
		p.ActiveSessions, p.Hours = rep.ActiveSessions, rep.LoginsPerHour
		if p.ActiveSessions == nil {
			p.ActiveSessions = map[string]int{}
		}
	}
	return p
}

// Count adds one login attempt; locked collects the users refused as
// locked, whose number LockedUsers is.
func (l *Logins) Count(e audit.Event, locked map[string]bool) {
	if l.ByAuthMode == nil {
		l.ByAuthMode = map[string]int{}
	}
	switch e.Outcome {
	case audit.OutcomeSuccess:
		l.Success++
		l.ByAuthMode[e.AuthMode]++
	case audit.OutcomeLocked:
		l.Lockout++
		locked[e.Username] = true
	default:
		l.Failure++
	}
	l.LockedUsers = len(locked)
}

func (r *Reader) readTokens(ctx context.Context, s *Snapshot, now time.Time, fail func(string, error)) {
	w := r.RefreshWindow
	if w <= 0 {
		w = 10 * time.Minute
	}
	s.Tokens.WindowSeconds = int64(w.Seconds())
	var err error
	if s.Tokens.Cached, err = r.Tokens.CountCached(ctx, now); err != nil {
		fail("tokens", err)
		return
	}
	if s.Tokens.ExpiringSoon, err = r.Tokens.CountExpiring(ctx, now.Add(w)); err != nil {
		fail("tokens", err)
	}
}

// MaxSince bounds how far back a report reads: the audit trail's default
// retention.
const MaxSince = audit.DefaultRetention

// ParseSince reads a report's --since / ?since=: a duration ("24h", "90m",
// "7d") back from now, or an RFC 3339 time; "" is 24h.
func ParseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now.Add(-24 * time.Hour), nil
	}
	var d time.Duration
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		d = now.Sub(t)
	} else if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return time.Time{}, fmt.Errorf("since %q: want a duration like 24h or 7d, or an RFC 3339 time", v)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else if d, err = time.ParseDuration(v); err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a duration like 24h or 7d, or an RFC 3339 time", v)
	}
	if d <= 0 || d > MaxSince {
		return time.Time{}, fmt.Errorf("since %q: must be in the past and within %d days", v, int(MaxSince.Hours()/24))
	}
	return now.Add(-d), nil
}
