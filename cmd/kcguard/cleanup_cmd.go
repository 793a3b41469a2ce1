package main

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/platform"
)

func newCleanupCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "The scheduled maintenance run (the same code as the cleanup function)",
	}
	var schedule, asJSON, emf bool
	run := &cobra.Command{
		Use:   "run",
		Short: "One scheduled run: refresh expiring tokens, purge expired tokens and sessions, reconcile, publish gauges",
		Long: `run does what functions/cleanup does on its EventBridge schedule, bounded by
the cleanup section of the configuration. With --schedule it runs every
cleanup.schedule_minutes until interrupted (the local stand-in for EventBridge).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			c := cleanerFor(rt, cmd.ErrOrStderr(), emf)
			topic := rt.SNS()
			once := func(ctx context.Context) error {
				r, n, err := rt.RunCleanup(ctx, c, topic)
				if n > 0 {
					e.log.Info("daily summary published", "packages", n)
				}
				e.printCleanup(r, asJSON)
				return err
			}
			if !schedule {
				return once(cmd.Context())
			}
			every := time.Duration(rt.Config.Cleanup.ScheduleMinutes) * time.Minute
			e.log.Info("cleanup scheduled", "every", every.String())
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				if err := once(cmd.Context()); err != nil && cmd.Context().Err() == nil {
					e.log.Warn("cleanup run failed", "err", err) // the next run tries again
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	run.Flags().BoolVar(&schedule, "schedule", false, "run every cleanup.schedule_minutes until interrupted")
	run.Flags().BoolVar(&asJSON, "json", false, "print each run's counts as JSON")
	run.Flags().BoolVar(&emf, "emf", false, "also write the CloudWatch EMF metric lines to standard error")
	cmd.AddCommand(run)
	return cmd
}

// cleanerFor is the function's Cleaner; the CLI prints counts itself, so
// the EMF lines are written only when asked for.
func cleanerFor(rt *platform.Runtime, stderr io.Writer, emf bool) *cleanup.Cleaner {
	if !emf {
		stderr = io.Discard
	}
	return rt.Cleaner(stderr)
}

func (e *env) printCleanup(r cleanup.Result, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		e.printf("%s\n", b)
		return
	}
	e.printf("refresh:   listed %d, refreshed %d, dropped %d, failed %d, past grace %d%s\n",
		r.Refresh.Listed, r.Refresh.Refreshed, r.Refresh.Dropped, r.Refresh.Failed, r.Refresh.PastGrace, skipped(r.Refresh.Skipped))
	e.printf("tokens:    %d expired deleted%s\n", r.Tokens.Deleted, more(r.Tokens.Done))
	e.printf("sessions:  %d expired deleted%s\n", r.Sessions.Deleted, more(r.Sessions.Done))
	e.printf("reconcile: %d unsynced found, %d queued, %d failed%s\n", r.Reconcile.Found, r.Reconcile.Queued, r.Reconcile.Failed, more(r.Reconcile.Done))
	if r.Journal != nil {
		e.printf("journal:   %d old entries purged%s\n", r.Journal.Deleted, more(r.Journal.Done))
	}
	e.printf("gauges:    queue %d, dlq %d, oldest pending %s, breaker %s\n",
		r.Gauges.QueueDepth, r.Gauges.DLQDepth, r.Gauges.OldestPending.Round(time.Second), r.Gauges.Breaker)
	e.printf("took %s", r.Duration.Round(time.Millisecond))
	if len(r.Errors) > 0 {
		e.printf(", failed steps: %v", r.Errors)
	}
	e.printf("\n")
}

func skipped(why string) string {
	if why == "" {
		return ""
	}
	return " (skipped: " + why + ")"
}

func more(done bool) string {
	if done {
		return ""
	}
	return " (stopped at its bound; the next run continues)"
}
