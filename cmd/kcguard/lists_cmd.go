package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/userkey"
)

// addTo adds commands to the group named group of root (each group's file
// belongs to the commands that were there first).
func addTo(root *cobra.Command, group string, cmds ...*cobra.Command) {
	for _, c := range root.Commands() {
		if c.Name() == group {
			c.AddCommand(cmds...)
			return
		}
	}
	panic("addTo: no command group " + group)
}

func newUsersHistoryCmd(e *env) *cobra.Command {
	var pkg string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history USERNAME --package P",
		Short: "A user's audit trail, newest first: action, auth mode, outcome, source IP, time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := userkey.New(pkg, args[0])
			if err != nil {
				return usageError(err)
			}
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			events, err := rt.History(cmd.Context(), key.Package, key.Username, limit)
			if err != nil {
				return err
			}
			if asJSON {
				type line struct {
					At        time.Time `json:"at"`
					Action    string    `json:"action"`
					AuthMode  string    `json:"auth_mode,omitempty"`
					Outcome   string    `json:"outcome"`
					SourceIP  string    `json:"source_ip,omitempty"`
					UserAgent string    `json:"user_agent,omitempty"`
					RequestID string    `json:"request_id,omitempty"`
				}
				out := make([]line, 0, len(events))
				for _, ev := range events {
					out = append(out, line{ev.At, string(ev.Action), ev.AuthMode, string(ev.Outcome), ev.SourceIP, ev.UserAgent, ev.RequestID})
				}
				return e.printJSON(out)
			}
			if len(events) == 0 {
				e.printf("no audit events for %s in package %s\n", key.Username, key.Package)
				return nil
			}
			e.printf("%-20s  %-15s  %-9s  %-18s  %s\n", "time (UTC)", "action", "auth mode", "outcome", "source IP")
			for _, ev := range events {
				e.printf("%-20s  %-15s  %-9s  %-18s  %s\n", ev.At.UTC().Format(time.RFC3339), ev.Action, orDash(ev.AuthMode),
					ev.Outcome, orDash(ev.SourceIP))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pkg, "package", "", "the package (required)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many events")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	_ = cmd.MarkFlagRequired("package")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTokensListCmd(e *env) *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Cached Keycloak tokens still usable for an outage login: whose, and until when (never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			list, err := rt.Tokens.ListCached(cmd.Context(), time.Now(), limit)
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(list)
			}
			e.printf("%-15s  %-30s  %s\n", "package", "user", "usable until (UTC)")
			for _, c := range list {
				e.printf("%-15s  %-30s  %s\n", c.Package, c.Username, c.GraceUntil.Format(time.RFC3339))
			}
			e.printf("%d cached\n", len(list))
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newSyncPendingCmd(e *env) *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "What waits for Keycloak: pending and failed sync jobs (journal) and users whose change Keycloak lacks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			out, err := rt.StatusReader().Waiting(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if asJSON {
				return e.printJSON(out)
			}
			if out.JournalOff {
				e.printf("journal: off (tables.journal is empty)\n")
			}
			e.printf("%d jobs pending or failed:\n", len(out.Jobs))
			for _, j := range out.Jobs {
				e.printf("  %-8s %s %-14s %s/%s v%d since %s %s\n", j.Status, j.ID, j.Type, j.Package, j.Username, j.Version,
					j.UpdatedAt.Format(time.RFC3339), j.Reason)
			}
			e.printf("%d users waiting for Keycloak:\n", len(out.Users))
			for _, u := range out.Users {
				e.printf("  %s/%s local v%d, Keycloak has v%d, changed %s\n", u.Package, u.Username, u.Version, u.SyncedVersion,
					u.UpdatedAt.Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many jobs of each status, and users")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
