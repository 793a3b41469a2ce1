package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/sessions"
)

// SessionReport is a package's session metrics: active sessions by auth
// mode now, and successful logins per hour by auth mode over the last day.
type SessionReport struct {
	Package string    `json:"package"`
	At      time.Time `json:"at"`
	// ActiveSessions counts live sessions by auth mode (keycloak, cached, local).
	ActiveSessions map[string]int `json:"active_sessions"`
	// LoginsPerHour has 24 entries, oldest first; the last is the current,
	// partial hour.
	LoginsPerHour []HourLogins `json:"logins_per_hour"`
}

// HourLogins counts one hour's successful logins by auth mode.
type HourLogins struct {
	Hour       time.Time      `json:"hour"`
	ByAuthMode map[string]int `json:"by_auth_mode"`
}

// AuditReader is the audit trail's per-package view.
type AuditReader interface {
	ListByPackage(ctx context.Context, pkg string, from, to time.Time, each func(audit.Event) error) error
}

// SessionLister lists a user's sessions.
type SessionLister interface {
	ListByUser(ctx context.Context, pkg, username string) ([]sessions.Record, error)
}

// SessionReporter builds SessionReports.
type SessionReporter struct {
	Audit    AuditReader
	Sessions SessionLister
	// Lifetime is sessions.max_lifetime: no session outlives it, so only
	// users who logged in within it can have one.
	Lifetime time.Duration
	// Concurrency bounds parallel session listings (default 8).
	Concurrency int
}

// Report reads the package's audit trail for the last day (or the session
// lifetime, if longer), one Query per hour, and lists the sessions of each
// user who logged in successfully within the session lifetime. Every
// session starts with a successful login that is audited in the same
// transaction, so this finds every live session while reading only the
// package's recent logins and their users' sessions, never the tables.
func (r SessionReporter) Report(ctx context.Context, pkg string, now time.Time) (SessionReport, error) {
	return r.ReportEach(ctx, pkg, now, nil)
}

// ReportEach is Report that also hands each (nil: none) every audit event
// it reads, so the status read model tallies outcomes in the same pass.
func (r SessionReporter) ReportEach(ctx context.Context, pkg string, now time.Time, each func(audit.Event)) (SessionReport, error) {
	now = now.UTC()
	rep := SessionReport{Package: pkg, At: now, ActiveSessions: map[string]int{}}
	first := now.Truncate(time.Hour).Add(-23 * time.Hour)
	for h := first; !h.After(now); h = h.Add(time.Hour) {
		rep.LoginsPerHour = append(rep.LoginsPerHour, HourLogins{Hour: h, ByAuthMode: map[string]int{}})
	}
	from := first
	if r.Lifetime > 0 && now.Add(-r.Lifetime).Before(from) {
		from = now.Add(-r.Lifetime)
	}
	recent := map[string]bool{}
	err := r.Audit.ListByPackage(ctx, pkg, from, now.Add(time.Nanosecond), func(e audit.Event) error {
		if each != nil {
			each(e)
		}
		if e.Action != audit.ActionLogin || e.Outcome != audit.OutcomeSuccess {
			return nil
		}
		if i := int(e.At.Sub(first) / time.Hour); !e.At.Before(first) && i < len(rep.LoginsPerHour) {
			rep.LoginsPerHour[i].ByAuthMode[e.AuthMode]++
		}
		if r.Lifetime <= 0 || e.At.After(now.Add(-r.Lifetime)) {
			recent[e.Username] = true
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("session report %s: %w", pkg, err)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	limit := r.Concurrency
	if limit <= 0 {
		limit = 8
	}
	g.SetLimit(limit)
	for user := range recent {
		g.Go(func() error {
			list, err := r.Sessions.ListByUser(gctx, pkg, user)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range list {
				if s.Active(now) {
					rep.ActiveSessions[string(s.AuthMode)]++
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, fmt.Errorf("session report %s: %w", pkg, err)
	}
	return rep, nil
}
