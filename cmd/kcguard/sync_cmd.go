package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/provision"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

func newSyncCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Inspect and drive the queue that carries changes to Keycloak",
	}
	withRuntime := func(use, short, long string, run func(context.Context, *platform.Runtime) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				rt, err := e.runtime(cmd.Context())
				if err != nil {
					return err
				}
				return run(cmd.Context(), rt)
			}}
	}
	var limit int
	reconcile := withRuntime("reconcile", "Re-queue every user whose local version is ahead of Keycloak's",
		"reconcile queries the sparse 'unsynced' index (never a scan) and queues a job per user;\nSQS deduplication makes re-queuing a job still in the queue a no-op.",
		func(ctx context.Context, rt *platform.Runtime) error {
			start := time.Now()
			r, err := syncjob.Reconcile(ctx, rt.Users, rt.JournaledQueue, rt.Config.PackageNames(), limit, start)
			rt.RecordRun(ctx, status.JobReconcile, start, platform.ReconcileSummary(r), err)
			e.printf("unsynced users found: %d, queued: %d, failed: %d, complete: %v\n", r.Found, r.Queued, r.Failed, r.Done)
			return err
		})
	reconcile.Flags().IntVar(&limit, "limit", 0, "stop after this many users (0: all)")
	var olderThan time.Duration
	var purgeLimit int
	cleanup := withRuntime("cleanup", "Delete sync journal entries older than --older-than (default: sync.journal_retention)",
		"DynamoDB's TTL removes old entries by itself in AWS, eventually; cleanup removes them now,\nthrough the journal's status index (never a scan).",
		func(ctx context.Context, rt *platform.Runtime) error {
			if rt.Journal == nil {
				return errors.New("the sync journal is off (tables.journal is empty)")
			}
			age := olderThan
			if age <= 0 {
				age = rt.Config.Sync.JournalRetention
			}
			n, err := rt.Journal.Purge(ctx, time.Now().Add(-age), purgeLimit)
			e.printf("deleted %d journal entries older than %s\n", n, age)
			return err
		})
	cleanup.Flags().DurationVar(&olderThan, "older-than", 0, "age of the last status change (e.g. 72h)")
	cleanup.Flags().IntVar(&purgeLimit, "limit", 0, "delete at most this many (0: all)")
	cmd.AddCommand(
		withRuntime("status", "Show queue and DLQ depth, unsynced users, the breaker state and journal counts", "",
			func(ctx context.Context, rt *platform.Runtime) error { return e.syncStatus(ctx, rt) }),
		withRuntime("now", "Drain the queue once in-process (same code as the worker function)", "",
			func(ctx context.Context, rt *platform.Runtime) error {
				out, err := rt.Poller(1).Drain(ctx)
				e.printf("applied: %d, superseded: %d, dead-lettered: %d, failed (will retry): %d\n",
					out.Applied, out.Superseded, out.DeadLettered, out.Failed)
				return err
			}),
		withRuntime("run", "Poll the queue until interrupted (the local stand-in for the SQS event source)", "",
			func(ctx context.Context, rt *platform.Runtime) error {
				p := rt.Poller(10)
				e.log.Info("sync poller running; paused while the breaker is open", "queue", rt.Config.Sync.Queue)
				err := p.Run(ctx)
				rt.FlushAlerts(5 * time.Second)
				return err
			}),
		withRuntime("test", "Check Keycloak admin access for every package and that the queue answers", "",
			func(ctx context.Context, rt *platform.Runtime) error { return e.syncTest(ctx, rt) }),
		withRuntime("redrive", "Move dead-lettered jobs back to the sync queue (after fixing their cause)", "",
			func(ctx context.Context, rt *platform.Runtime) error {
				n, err := rt.DLQ.RedriveTo(ctx, rt.Queue)
				e.printf("moved %d jobs back to %s\n", n, rt.Config.Sync.Queue)
				return err
			}),
		reconcile,
		cleanup,
		newSyncPullCmd(e),
	)
	return cmd
}

func (e *env) runtime(ctx context.Context) (*platform.Runtime, error) {
	cfg, err := e.validated()
	if err != nil {
		return nil, err
	}
	awsCfg, err := e.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	return platform.Build(ctx, cfg, awsCfg, e.log)
}

// syncStatus prints the sync parts of the status read model (pkg/status,
// which also serves /status): the same counts with --json or without.
func (e *env) syncStatus(ctx context.Context, rt *platform.Runtime) error {
	r := rt.StatusReader()
	r.Probe, r.Sessions, r.Tokens, r.Runs = nil, nil, nil, nil
	if !e.asJSON {
		r.JobListLimit = 5 // the oldest pending job and the last failures
	}
	s := r.Read(ctx, time.Now())
	var readErr error
	if len(s.Errors) > 0 {
		readErr = fmt.Errorf("sync status: %s", strings.Join(s.Errors, "; "))
	}
	if e.asJSON {
		if readErr != nil {
			return readErr
		}
		waiting := map[string]int{}
		for _, p := range s.Packages {
			waiting[p.Name] = p.UsersWaiting
		}
		return e.printJSON(map[string]any{"breaker": s.Breaker, "queue": s.Queue, "journal": s.Journal, "users_waiting": waiting})
	}
	e.printf("queue %s: %d waiting, %d in flight\n", rt.Config.Sync.Queue, s.Queue.Waiting, s.Queue.InFlight)
	e.printf("dlq   %s: %d\n", rt.Config.Sync.DLQ, s.Queue.DLQ)
	for _, p := range s.Packages {
		e.printf("package %s: %d users waiting for Keycloak\n", p.Name, p.UsersWaiting)
	}
	if s.Queue.UsersWaiting > 0 {
		age := time.Duration(s.Queue.OldestPendingSeconds) * time.Second
		e.printf("oldest pending change: %s (%s ago)\n", s.At.Add(-age).Format(time.RFC3339), age)
	}
	e.printf("breaker: %s (generation %d)\n", s.Breaker.State, s.Breaker.Generation)
	if rt.SyncMapping != nil {
		switch paused, err := rt.SyncMapping.Paused(ctx); {
		case err != nil:
			e.printf("sync worker: unknown (%v)\n", err)
		case paused:
			e.printf("sync worker: paused (its event source mapping is disabled while the breaker is open)\n")
		default:
			e.printf("sync worker: running\n")
		}
	}
	if s.Journal == nil {
		e.printf("journal: off (tables.journal is empty)\n")
		return readErr
	}
	var counts []string
	for _, st := range journal.Statuses {
		counts = append(counts, fmt.Sprintf("%s %d", st, s.Journal.Counts[string(st)]))
	}
	e.printf("journal (last %s): %s\n", rt.Config.Sync.JournalRetention, strings.Join(counts, ", "))
	if len(s.Journal.Pending) > 0 {
		p := s.Journal.Pending[0]
		e.printf("oldest pending job: %s %s of %s/%s v%d, queued %s ago\n", p.ID, p.Type, p.Package, p.Username,
			p.Version, s.At.Sub(p.UpdatedAt).Round(time.Second))
	}
	for _, f := range s.Journal.Failed {
		e.printf("failed: %s %s of %s/%s v%d at %s: %s\n", f.ID, f.Type, f.Package, f.Username, f.Version,
			f.UpdatedAt.Format(time.RFC3339), f.Reason)
	}
	return readErr
}

func (e *env) syncTest(ctx context.Context, rt *platform.Runtime) error {
	failed := 0
	for _, pkg := range rt.Config.PackageNames() {
		_, err := rt.Keycloak.FindUser(ctx, pkg, "kcguard-sync-test-no-such-user")
		c := providerCheck("keycloak admin access, package "+pkg, err == nil || errors.Is(err, keycloak.ErrNotFound), err)
		e.mark(c)
		if !c.OK {
			failed++
		}
	}
	for _, q := range []struct {
		name string
		q    *syncjob.SQSQueue
	}{{"queue " + rt.Config.Sync.Queue, rt.Queue}, {"dlq " + rt.Config.Sync.DLQ, rt.DLQ}} {
		_, _, err := q.q.Depth(ctx)
		c := providerCheck(q.name, err == nil, err)
		e.mark(c)
		if !c.OK {
			failed++
		}
	}
	if rt.Journal != nil {
		_, err := rt.Journal.Count(ctx, journal.Failed)
		c := providerCheck("journal "+rt.Config.Tables.Journal, err == nil, err)
		e.mark(c)
		if !c.OK {
			failed++
		}
	}
	if failed > 0 {
		return errChecksFailed
	}
	return nil
}

func providerCheck(name string, ok bool, err error) provision.Check {
	c := provision.Check{Name: name, OK: ok, Detail: "ok"}
	if !ok && err != nil {
		c.Detail = err.Error()
	}
	return c
}
