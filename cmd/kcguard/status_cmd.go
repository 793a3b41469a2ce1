package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/status"
)

func newStatusCmd(e *env) *cobra.Command {
	var asJSON, check bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Everything at once: breaker, Keycloak, sync queue and journal, logins, sessions, tokens, last runs",
		Long: `status prints the same read model GET /status and the dashboard show.
With --check it exits 1 when kcguard needs attention (breaker not closed,
a package's Keycloak unreachable, dead-lettered jobs, a part unreadable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			s := rt.StatusReader().Read(cmd.Context(), time.Now())
			if asJSON {
				err = e.printJSON(s)
			} else {
				e.printSnapshot(s)
			}
			if err == nil && check && !s.Healthy {
				return errChecksFailed
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the snapshot as JSON (the GET /status body)")
	cmd.Flags().BoolVar(&check, "check", false, "exit 1 when not healthy (for monitors and scripts)")
	return cmd
}

// printJSON writes v as one indented JSON document.
func (e *env) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	e.printf("%s\n", b)
	return nil
}

func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second))
}

func (e *env) printSnapshot(s status.Snapshot) {
	health := "healthy"
	if !s.Healthy {
		health = "NEEDS ATTENTION"
	}
	e.printf("kcguard status at %s: %s\n\n", s.At.Format(time.RFC3339), health)
	b := s.Breaker
	e.printf("breaker      %s", b.State)
	if b.Forced {
		e.printf(" (forced by operator)")
	}
	e.printf(", since %s, generation %d, failures %d", since(b.Since, s.At), b.Generation, b.Failures)
	if !b.NextProbe.IsZero() {
		e.printf(", next probe %s", b.NextProbe.UTC().Format(time.RFC3339))
	}
	e.printf("\n")
	if b.FallbackInUse {
		e.printf("             breaker table UNREACHABLE, in-process fallback in use: %s\n", b.StoreError)
	}
	for _, k := range s.Keycloak {
		state := "reachable"
		if !k.Reachable {
			state = "UNREACHABLE: " + k.Error
		}
		e.printf("keycloak     %s (realm %s): %s, %d ms\n", k.Package, k.Realm, state, k.LatencyMS)
	}
	q := s.Queue
	e.printf("queue        %d waiting, %d in flight, %d dead-lettered; %d users waiting for Keycloak", q.Waiting, q.InFlight, q.DLQ, q.UsersWaiting)
	if q.OldestPendingSeconds > 0 {
		e.printf(", oldest change %s old", time.Duration(q.OldestPendingSeconds)*time.Second)
	}
	e.printf("\n")
	if s.Journal != nil {
		var parts []string
		for st, n := range s.Journal.Counts {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
		sort.Strings(parts)
		e.printf("journal      %s\n", strings.Join(parts, ", "))
	}
	for _, p := range s.Packages {
		active := 0
		for _, n := range p.ActiveSessions {
			active += n
		}
		e.printf("package %s: %d active sessions %v, %d users waiting\n", p.Name, active, p.ActiveSessions, p.UsersWaiting)
		for _, w := range []struct {
			name string
			l    status.Logins
		}{{"last hour", p.LastHour}, {"last day", p.LastDay}} {
			e.printf("  %-9s  logins ok %d %v, failed %d, locked %d (%d users)\n", w.name, w.l.Success, w.l.ByAuthMode,
				w.l.Failure, w.l.Lockout, w.l.LockedUsers)
		}
	}
	e.printf("tokens       %d cached, %d expiring within %s\n", s.Tokens.Cached, s.Tokens.ExpiringSoon,
		time.Duration(s.Tokens.WindowSeconds)*time.Second)
	if len(s.Runs) == 0 {
		e.printf("last runs    none recorded\n")
	}
	for _, r := range s.Runs {
		ok := "ok"
		switch {
		case r.Running:
			ok = "running since " + r.StartedAt.UTC().Format(time.RFC3339)
		case !r.OK:
			ok = "FAILED: " + r.Error
		}
		e.printf("last %-9s %s, %s; %s\n", r.Job, since(r.FinishedAt, s.At), ok, r.Summary)
	}
	for _, err := range s.Errors {
		e.printf("could not read %s\n", err)
	}
}
