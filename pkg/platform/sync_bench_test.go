package platform_test

// Sync throughput against the local stack (make bench; BENCHMARKS.md "Sync"):
//
//	BenchmarkMigration        provision N local users into Keycloak
//	                          (hashes imported); N = $KCGUARD_BENCH_MIGRATE_USERS, default 1000
//	BenchmarkDrainAfterOutage N users × 5 password changes queued during an
//	                          outage, drained by the worker (in-process
//	                          poller, as `kcguard sync now`);
//	                          N = $KCGUARD_BENCH_SYNC_USERS, default 200
//
// Reported: migrate_users/s; drain_jobs/s, kc_writes/user and s_until_equal
// (Keycloak restored → no user left with version > keycloak_synced_version).
// Each runs once (ns/op is the whole run) on a moto of its own. The drain
// default is 200 users because moto's FIFO queue costs O(queue length) per
// call: at 1,000 × 5 the run is bound by moto (see BENCHMARKS.md).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/migrate"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

func BenchmarkMigration(b *testing.B) {
	syncBench(b, envInt("KCGUARD_BENCH_MIGRATE_USERS", 1000), 0, false)
}

func BenchmarkDrainAfterOutage(b *testing.B) {
	syncBench(b, envInt("KCGUARD_BENCH_SYNC_USERS", 200), 5, false)
}

// BenchmarkDrainAfterOutageEvents is the full size, 1,000 users × 5
// changes, with the worker fed SQS events directly in send order, batches of
// 10 (what Lambda's event source hands one instance), instead of through
// moto's FIFO queue, whose per-call cost grows with its length and would be
// what is measured. Everything else (Keycloak, DynamoDB, journal) is real.
func BenchmarkDrainAfterOutageEvents(b *testing.B) {
	syncBench(b, envInt("KCGUARD_BENCH_SYNC_EVENT_USERS", 1000), 5, true)
}

// memJobs collects queued jobs in send order.
type memJobs struct {
	mu   sync.Mutex
	jobs []syncjob.Job
}

func (m *memJobs) Enqueue(_ context.Context, j syncjob.Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs = append(m.jobs, j)
	return nil
}

// feed drains jobs through the worker as SQS batches of 10, re-feeding
// reported failures after the rest (as redelivery would).
func feed(b *testing.B, w *syncjob.Worker, jobs []syncjob.Job) syncjob.Outcome {
	var out syncjob.Outcome
	for round := 0; len(jobs) > 0; round++ {
		if round == 5 {
			b.Fatalf("%d jobs still failing after 5 rounds", len(jobs))
		}
		var retry []syncjob.Job
		for i := 0; i < len(jobs); i += 10 {
			batch := jobs[i:min(i+10, len(jobs))]
			ev := events.SQSEvent{}
			byID := map[string]syncjob.Job{}
			for k, j := range batch {
				body, _ := json.Marshal(j)
				id := fmt.Sprintf("r%d-m%d", round, i+k)
				byID[id] = j
				ev.Records = append(ev.Records, events.SQSMessage{MessageId: id, Body: string(body),
					Attributes: map[string]string{"MessageGroupId": j.GroupID()}})
			}
			resp, o := w.Process(context.Background(), ev)
			out.Applied += o.Applied
			out.Superseded += o.Superseded
			out.DeadLettered += o.DeadLettered
			for _, f := range resp.BatchItemFailures {
				retry = append(retry, byID[f.ItemIdentifier])
			}
		}
		jobs = retry
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func syncBench(b *testing.B, n, changes int, direct bool) {
	// Batches at once. 1: moto does not hold back a message group while one
	// of its messages is in flight (SQS FIFO does), so parallel pollers
	// against moto would overlap a user's jobs.
	parallel := 1
	if v, err := strconv.Atoi(os.Getenv("KCGUARD_BENCH_SYNC_PARALLEL")); err == nil && v > 0 {
		parallel = v
	}
	// A moto of its own: the shared one carries every other test's tables
	// and load, and would measure them.
	b.Setenv("AWS_ENDPOINT_URL", testenv.PrivateMoto(b))
	e := stacktest.New(b, withJournal, func(c *config.Config) { c.Log.Level = "error"; c.Sync.VisibilityTimeoutSeconds = 30 })
	ctx := context.Background()
	const pkg = "homechoice"
	// Keycloak verifies an imported hash with the parameters it carries and
	// does not hash on import, so cheap parameters make setup fast without
	// changing what is measured.
	h, err := credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})
	if err != nil {
		b.Fatal(err)
	}
	prefix := testenv.Unique("bench")
	name := func(i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }
	hashOf := func(i, c int) (credential.Hash, users.Hash) {
		hh, err := h.Hash(fmt.Sprintf("bench-password-%d-%d", i, c))
		if err != nil {
			b.Fatal(err)
		}
		return hh, users.NewHash(hh)
	}
	par := func(f func(i int) error) {
		var g errgroup.Group
		g.SetLimit(8)
		for i := range n {
			g.Go(func() error { return f(i) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		var g errgroup.Group
		g.SetLimit(4)
		for i := range n {
			g.Go(func() error {
				if kc, err := e.RT.Keycloak.FindUser(context.Background(), pkg, name(i)); err == nil {
					_ = e.RT.Keycloak.DeleteUser(context.Background(), pkg, kc.ID)
				}
				return nil
			})
		}
		_ = g.Wait()
	})

	b.StopTimer()
	par(func(i int) error {
		_, sh := hashOf(i, 0)
		_, err := e.RT.Users.Create(ctx, users.User{Package: pkg, Username: name(i), Enabled: true, Email: name(i) + "@example.com",
			Attributes: map[string]string{"group": "BENCH"}, Hash: sh}, time.Now())
		return err
	})
	b.StartTimer()

	// Migration: every user into Keycloak.
	m := &migrate.Migrator{Users: e.RT.Users, Applier: e.RT.Applier, Keycloak: e.RT.Keycloak,
		Settings: migrate.Settings{Concurrency: 4}}
	start := time.Now()
	sum, err := m.Run(ctx, pkg, migrate.Where{Conds: []migrate.Cond{{Field: "username", Op: migrate.Prefix, Value: prefix}}})
	if err != nil || sum.Created != n {
		b.Fatalf("migrate: %+v %v", sum, err)
	}
	migrateSecs := time.Since(start).Seconds()
	b.ReportMetric(float64(n)/migrateSecs, "migrate_users/s")
	if changes == 0 {
		b.Logf("migrated %d users in %.1fs: %+v", n, migrateSecs, sum)
		return
	}

	// The outage: changes land locally and queue (as the Dispatcher does
	// with the breaker open).
	b.StopTimer()
	var q syncjob.Queue = e.RT.JournaledQueue
	fed := &memJobs{}
	if direct {
		q = syncjob.JournaledQueue{Queue: fed, Journal: e.RT.JobJournal}
	}
	queueStart := time.Now()
	par(func(i int) error {
		for c := 1; c <= changes; c++ {
			key := userkey.Key{Package: pkg, Username: name(i)}
			u, err := e.RT.Users.Get(ctx, key)
			if err != nil {
				return err
			}
			hh, sh := hashOf(i, c)
			if u, err = e.RT.Users.UpdatePassword(ctx, key, u.Version, sh, time.Now()); err != nil {
				return err
			}
			j := syncjob.New(syncjob.SetPassword, pkg, name(i), u.Version, time.Now())
			j.Hash = &hh
			if err := q.Enqueue(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
	b.Logf("queued %d jobs in %s", n*changes, time.Since(queueStart).Round(time.Millisecond))
	kc := countWrites(e)
	b.StartTimer()

	// Keycloak is back: drain.
	start = time.Now()
	var out syncjob.Outcome
	if direct {
		// One feeder in send order: a user's jobs arrive in order, as from a FIFO group.
		out = feed(b, e.RT.Worker(), fed.jobs)
	}
	for !direct {
		p := e.RT.Poller(1)
		p.Parallel = parallel
		o, err := p.Drain(ctx)
		if err != nil {
			b.Fatal(err)
		}
		out.Applied += o.Applied
		out.Superseded += o.Superseded
		out.Failed += o.Failed
		out.DeadLettered += o.DeadLettered
		if out.Applied+out.Superseded+out.DeadLettered >= n*changes || (o.Applied+o.Superseded+o.Failed == 0 && depth(b, e, e.RT.Queue) == 0) {
			break
		}
	}
	drainSecs := time.Since(start).Seconds()
	left, _, err := e.RT.Users.ListUnsynced(ctx, pkg, 1, "")
	if err != nil || len(left) != 0 {
		b.Fatalf("after the drain %d users are still behind: %v", len(left), err)
	}
	equalSecs := time.Since(start).Seconds()
	b.StopTimer()
	if out.DeadLettered != 0 || out.Applied != n {
		b.Fatalf("drain outcome %+v", out)
	}
	// Spot-check that Keycloak has each sampled user's last password.
	var bad atomic.Int64
	for i := 0; i < n; i += max(1, n/20) {
		if _, err := e.RT.Keycloak.PasswordGrant(ctx, pkg, name(i), fmt.Sprintf("bench-password-%d-%d", i, changes)); err != nil {
			bad.Add(1)
			b.Errorf("%s: %v", name(i), err)
		}
	}
	b.ReportMetric(float64(n*changes)/drainSecs, "drain_jobs/s")
	b.ReportMetric(float64(kc.writes())/float64(n), "kc_writes/user")
	b.ReportMetric(equalSecs, "s_until_equal")
	b.ReportMetric(float64(parallel), "pollers")
	b.Logf("users %d, changes %d: migrate %.1fs (%+v); drain %.1fs %+v, keycloak writes %d; equal after %.1fs",
		n, changes, migrateSecs, sum, drainSecs, out, kc.writes(), equalSecs)
}
