package main

import (
	"time"

	"github.com/spf13/cobra"
)

func newTokensCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Maintain the cache of Keycloak tokens (used while Keycloak is down)",
	}
	var limit int
	var window time.Duration
	refresh := &cobra.Command{
		Use:   "refresh-expiring",
		Short: "Refresh cached tokens that expire soon (only while the breaker is closed)",
		Long: `refresh-expiring is step 1 of the cleanup run: tokens whose access token
expires within --window are refreshed with their refresh token; one Keycloak
refuses is dropped from the cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			c := cleanerFor(rt, cmd.ErrOrStderr(), false)
			if window > 0 {
				c.Settings.RefreshWindow = window
			}
			if limit <= 0 {
				limit = rt.Config.Cleanup.RefreshLimit
			}
			r, err := c.RefreshExpiring(cmd.Context(), time.Now(), limit)
			e.printf("listed %d, refreshed %d, dropped %d, failed %d, past grace %d%s%s\n",
				r.Listed, r.Refreshed, r.Dropped, r.Failed, r.PastGrace, skipped(r.Skipped), more(r.Done || r.Skipped != ""))
			return err
		},
	}
	refresh.Flags().IntVar(&limit, "limit", 0, "refresh at most this many (default cleanup.refresh_limit)")
	refresh.Flags().DurationVar(&window, "window", 0, "refresh tokens expiring within this (default cleanup.refresh_window)")

	var delLimit int
	clean := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete cached tokens past token_grace_period_hours (through the expiry index, never a scan)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if delLimit <= 0 {
				delLimit = rt.Config.Cleanup.DeleteLimit
			}
			n, err := rt.Tokens.DeleteExpired(cmd.Context(), time.Now(), delLimit)
			e.printf("deleted %d expired cached tokens%s\n", n, more(n < delLimit))
			return err
		},
	}
	clean.Flags().IntVar(&delLimit, "limit", 0, "delete at most this many (default cleanup.delete_limit)")
	cmd.AddCommand(refresh, clean)
	return cmd
}
