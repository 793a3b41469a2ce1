package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/sessions"
)

func newSessionsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List, invalidate and clean up kcguard login sessions",
		Long: `Sessions are kcguard's own: they keep working while Keycloak is down.
Tokens and their hashes are never shown; sessions are named by their public id.`,
	}
	var pkg string
	var all bool
	list := &cobra.Command{
		Use:   "list USER --package P",
		Short: "List a user's sessions (live ones; --all adds revoked and expired ones not yet purged)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			recs, err := rt.Sessions.ListByUser(cmd.Context(), pkg, args[0])
			if err != nil {
				return err
			}
			views := sessionViews(recs, time.Now(), all)
			if e.asJSON {
				return e.printJSON(views)
			}
			w := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATE\tAUTH MODE\tCREATED\tLAST SEEN\tEXPIRES\tSOURCE IP\tUSER AGENT")
			for _, v := range views {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.40s\n", v.ID, v.State, v.AuthMode, stamp(v.CreatedAt),
					stamp(v.LastSeenAt), stamp(v.ExpiresAt), v.SourceIP, v.UserAgent)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			e.printf("%d sessions\n", len(views))
			return nil
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include revoked and expired sessions not yet purged")

	invalidate := &cobra.Command{
		Use:   "invalidate ID",
		Short: "Invalidate one session by its id (any user's)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if err := rt.Sessions.Revoke(cmd.Context(), args[0], time.Now()); err != nil {
				if errors.Is(err, sessions.ErrNotFound) {
					return fmt.Errorf("no session %q", args[0])
				}
				return err
			}
			e.printf("session %s invalidated\n", args[0])
			return nil
		},
	}

	logoutUser := &cobra.Command{
		Use:   "logout-user USER --package P",
		Short: "End every session of a user and log the user out of Keycloak (queued if Keycloak is down)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			n, err := rt.Sessions.RevokeAllForUser(cmd.Context(), pkg, args[0], time.Now())
			if err != nil {
				return err
			}
			kc := rt.Dispatcher.LogoutEverywhere(cmd.Context(), pkg, args[0])
			e.printf("%d sessions ended; keycloak logout: %s\n", n, kc)
			return nil
		},
	}

	var days, limit int
	clean := &cobra.Command{
		Use:   "cleanup [--days N]",
		Short: "Delete expired sessions (expiry index, never a scan) and sync journal entries older than N days",
		Long: `cleanup deletes sessions past their absolute expiry, and, when the sync
journal is on, journal entries whose last change is older than --days
(default sync.journal_retention).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if limit <= 0 {
				limit = rt.Config.Cleanup.DeleteLimit
			}
			now := time.Now()
			n, err := rt.Sessions.DeleteExpired(cmd.Context(), now, limit)
			e.printf("deleted %d expired sessions%s\n", n, more(err == nil && n < limit))
			if err != nil || rt.Journal == nil {
				return err
			}
			retention := rt.Config.Sync.JournalRetention
			if days > 0 {
				retention = time.Duration(days) * 24 * time.Hour
			}
			j, err := rt.Journal.Purge(cmd.Context(), now.Add(-retention), limit)
			e.printf("purged %d sync journal entries older than %s%s\n", j, retention, more(err == nil && j < limit))
			return err
		},
	}
	clean.Flags().IntVar(&days, "days", 0, "purge sync journal entries older than this many days (default sync.journal_retention)")
	clean.Flags().IntVar(&limit, "limit", 0, "delete at most this many of each (default cleanup.delete_limit)")

	var asJSON bool
	metricsCmd := &cobra.Command{
		Use:   "metrics --package P",
		Short: "Active sessions by auth mode, and logins per hour by auth mode over the last day",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if !slices.Contains(rt.Config.PackageNames(), pkg) {
				return fmt.Errorf("unknown package %q (configured: %v)", pkg, rt.Config.PackageNames())
			}
			rep, err := rt.SessionReporter().Report(cmd.Context(), pkg, time.Now())
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.MarshalIndent(rep, "", "  ")
				e.printf("%s\n", b)
				return nil
			}
			modes := []string{string(sessions.AuthKeycloak), string(sessions.AuthCached), string(sessions.AuthLocal)}
			e.printf("package %s at %s\n\nactive sessions:", pkg, stamp(rep.At))
			for _, m := range modes {
				e.printf("  %s %d", m, rep.ActiveSessions[m])
			}
			e.printf("\n\nlogins per hour (UTC):\n")
			w := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(w, "HOUR\t%s\t%s\t%s\t\n", modes[0], modes[1], modes[2])
			for _, h := range rep.LoginsPerHour {
				fmt.Fprintf(w, "%s\t%d\t%d\t%d\t\n", h.Hour.Format("01-02 15:04"), h.ByAuthMode[modes[0]], h.ByAuthMode[modes[1]], h.ByAuthMode[modes[2]])
			}
			return w.Flush()
		},
	}
	metricsCmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")

	for _, c := range []*cobra.Command{list, logoutUser, metricsCmd} {
		c.Flags().StringVar(&pkg, "package", "", "the user's package (tenant)")
		_ = c.MarkFlagRequired("package")
	}
	cmd.AddCommand(list, invalidate, logoutUser, clean, metricsCmd)
	return cmd
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// sessionView is one line of `sessions list`, in the table and in --json.
type sessionView struct {
	ID         string    `json:"id"`
	State      string    `json:"state"`
	AuthMode   string    `json:"auth_mode"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"` // the earlier of the idle and the absolute expiry
	SourceIP   string    `json:"source_ip"`
	UserAgent  string    `json:"user_agent"`
}

// sessionViews keeps the live sessions, and with all the revoked and
// expired ones not purged yet, each with its state.
func sessionViews(recs []sessions.Record, now time.Time, all bool) []sessionView {
	out := []sessionView{}
	for _, r := range recs {
		state := "active"
		if err := r.Status(now); err != nil {
			if !all {
				continue
			}
			state = map[bool]string{true: "revoked", false: "expired"}[errors.Is(err, sessions.ErrRevoked)]
		}
		out = append(out, sessionView{r.ID, state, string(r.AuthMode), r.CreatedAt, r.LastSeenAt, r.EndsAt(), r.SourceIP, r.UserAgent})
	}
	return out
}
