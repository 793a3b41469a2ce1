package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/pull"
)

// newSyncPullCmd is `kcguard sync pull`: one run of the scheduled
// functions/pull, or one every --every until interrupted.
func newSyncPullCmd(e *env) *cobra.Command {
	var asJSON bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "pull",
		Short: "Apply Keycloak's changes (disable, delete, password reset, required actions) to the local store",
		Long: `pull reads each realm's admin events (users) and user events (password changes)
since the last run and records Keycloak's current state of every user they
name: enabled, required actions, and a stale hash when the password was
changed in Keycloak by anyone but kcguard's own sync; users deleted in
Keycloak are deleted locally. On the first run, when events are off in the
realm, or when the last run is older than pull.max_gap, it compares every
user page by page instead. It never queues a sync. The service account needs
realm-management view-events (see 'config validate').`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			p := rt.Puller()
			for {
				start := time.Now()
				err := e.pullOnce(cmd.Context(), p, asJSON)
				rt.RecordPull(cmd.Context(), start, nil, err)
				if err != nil && every == 0 {
					return err
				} else if err != nil {
					e.log.Warn("sync pull failed", "err", err)
				}
				if every == 0 {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each package's result as a JSON line")
	cmd.Flags().DurationVar(&every, "every", 0, "run again at this interval until interrupted (the local stand-in for the schedule)")
	return cmd
}

func (e *env) pullOnce(ctx context.Context, p *pull.Puller, asJSON bool) error {
	results, err := p.Run(ctx, time.Now())
	for _, r := range results {
		if asJSON {
			b, _ := json.Marshal(r)
			e.printf("%s\n", b)
			continue
		}
		if r.Mode == "" {
			e.printf("%s: %s\n", r.Package, r.Reason)
			continue
		}
		mode := string(r.Mode)
		if r.Reason != "" {
			mode += " (" + r.Reason + ")"
		}
		e.printf("%s: %s; events admin %d, user %d; checked %d, disabled %d, enabled %d, deleted %d, stale %d, actions changed %d, sessions revoked %d, unknown to kcguard %d; %d ms\n",
			r.Package, mode, r.AdminEvents, r.UserEvents, r.Checked, r.Disabled, r.Enabled, r.Deleted, r.Stale, r.ActionsSet, r.Revoked, r.Unknown, r.DurationMS)
		for _, m := range r.Malformed {
			e.printf("  skipped: %s\n", m)
		}
		if r.Error != "" {
			e.printf("  failed: %s\n", strings.TrimSpace(r.Error))
		}
	}
	return err
}
