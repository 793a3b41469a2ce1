package syncjob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// statuses returns the user's journal as "version:status" in job order.
func statuses(t *testing.T, j journal.Store, name string) string {
	t.Helper()
	es, err := j.ListByUser(context.Background(), pkg, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, fmt.Sprintf("%d:%s", es[i].Version, es[i].Status))
	}
	return strings.Join(out, ",")
}

func journaled(f *workerFixture) *journal.Memory {
	j := journal.NewMemory()
	f.w.Journal = &JobJournal{Journal: j}
	return j
}

// jobAt is changeTo with the job made at a distinct time, so the journal
// orders a user's jobs as they were made.
func jobAt(t *testing.T, st *users.Memory, name, pw string, at time.Time) Job {
	j := changeTo(t, st, name, pw)
	j.CreatedAt = at
	return j
}

func TestWorkerJournalsEachJob(t *testing.T) {
	f := newWorkerFixture(false)
	jr := journaled(f)
	a1 := jobAt(t, f.users, "alice", "alice-password-1", t0)
	a2 := jobAt(t, f.users, "alice", "alice-password-2", t0.Add(time.Second))
	a3 := jobAt(t, f.users, "alice", "alice-password-3", t0.Add(2*time.Second))
	poison := New("rename_user", pkg, "bob", 1, t0)
	msgs := []events.SQSMessage{f.msg(a1), f.msg(a2), f.msg(a3), f.msg(poison)}
	_, out := f.w.Process(context.Background(), events.SQSEvent{Records: msgs})
	if out.Applied != 1 || out.Superseded != 2 || out.DeadLettered != 1 {
		t.Fatalf("outcome %+v", out)
	}
	// Keycloak got alice's newest password once, from the first job; the
	// journal names the job that carried it as the applied one.
	if got := statuses(t, jr, "alice"); got != "1:superseded,2:superseded,3:applied" {
		t.Fatalf("journal %s", got)
	}
	if got := statuses(t, jr, "bob"); got != "1:failed" {
		t.Fatalf("poison message journal %s", got)
	}
	es, _ := jr.ListByUser(context.Background(), pkg, "bob", 1)
	if !strings.Contains(es[0].Reason, "dead-lettered") || !strings.Contains(es[0].Reason, "unknown type") {
		t.Fatalf("reason %q", es[0].Reason)
	}
	// Duplicate delivery of the whole batch changes neither Keycloak nor the journal.
	writes := f.kc.Calls(keycloaktest.CreateUser) + f.kc.Calls(keycloaktest.ImportPasswordHash)
	_, out = f.w.Process(context.Background(), events.SQSEvent{Records: msgs[:3]})
	if out.Superseded != 3 || f.kc.Calls(keycloaktest.CreateUser)+f.kc.Calls(keycloaktest.ImportPasswordHash) != writes {
		t.Fatalf("duplicate delivery: %+v", out)
	}
	if got := statuses(t, jr, "alice"); got != "1:superseded,2:superseded,3:applied" {
		t.Fatalf("journal after duplicates %s", got)
	}
}

func TestWorkerJournalsRetriesThenSuccess(t *testing.T) {
	f := newWorkerFixture(false)
	jr := journaled(f)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	f.kc.Fail(keycloaktest.FindUser, keycloak.NewError("find user", pkg, keycloak.ErrUnavailable, 503, ""), 1)
	m := f.msg(a1)
	if resp, _ := f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{m}}); len(resp.BatchItemFailures) != 1 {
		t.Fatal("an outage must be retried")
	}
	es, _ := jr.ListByUser(context.Background(), pkg, "alice", 0)
	if len(es) != 1 || es[0].Status != journal.Failed || !strings.Contains(es[0].Reason, "will retry") {
		t.Fatalf("journal %+v", es)
	}
	f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{m}})
	if got := statuses(t, jr, "alice"); got != "1:applied" {
		t.Fatalf("journal after the retry %s", got)
	}
}

func TestWorkerBreakerOpenLeavesJobPending(t *testing.T) {
	f := newWorkerFixture(true)
	jr := journaled(f)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	d := &Dispatcher{Applier: f.w.Applier, Queue: &memQueue{}, Journal: f.w.Journal, Breaker: fakeBreaker{open: true}}
	if d.Dispatch(context.Background(), a1) != Queued {
		t.Fatal("breaker open: queued")
	}
	f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{f.msg(a1)}})
	if got := statuses(t, jr, "alice"); got != "1:pending" {
		t.Fatalf("journal %s", got)
	}
}

func TestDispatcherJournalsQueuedJobs(t *testing.T) {
	cases := []struct {
		name     string
		queueErr error
		want     journal.Status
	}{
		{"queued", nil, journal.Pending},
		{"send failed", errors.New("sqs down"), journal.Failed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, jr := users.NewMemory(), journal.NewMemory()
			d := &Dispatcher{Applier: &Applier{Keycloak: keycloaktest.New(), Users: st}, Journal: &JobJournal{Journal: jr},
				Queue: &memQueue{err: tc.queueErr}, Breaker: fakeBreaker{open: true}}
			d.Dispatch(context.Background(), changeTo(t, st, "alice", "alice-password-1"))
			es, _ := jr.ListByUser(context.Background(), pkg, "alice", 0)
			if len(es) != 1 || es[0].Status != tc.want || es[0].Type != string(SetPassword) {
				t.Fatalf("journal %+v", es)
			}
		})
	}
}

func TestConflictPolicy(t *testing.T) {
	cases := []struct {
		name           string
		policy         ConflictPolicy
		keycloakAt     time.Time // when the password was set in Keycloak
		wantPassword   string    // what Keycloak accepts afterwards
		wantStatus     journal.Status
		wantConflict   string
		wantKCPassword int // ImportPasswordHash calls
	}{
		{"keycloak older: no conflict", KeycloakWins, t0.Add(-time.Hour), "local-password-1", journal.Applied, "", 1},
		{"keycloak newer, local_wins", LocalWins, t0.Add(time.Hour), "local-password-1", journal.Applied, "local_wins", 1},
		{"keycloak newer, default is local_wins", "", t0.Add(time.Hour), "local-password-1", journal.Applied, "local_wins", 1},
		{"keycloak newer, keycloak_wins", KeycloakWins, t0.Add(time.Hour), "keycloak-password-1", journal.Superseded, "keycloak_wins", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newWorkerFixture(false)
			jr := journaled(f)
			f.w.Applier.Conflicts = tc.policy
			f.kc.Now = func() time.Time { return tc.keycloakAt }
			f.kc.AddUser(pkg, "alice", "keycloak-password-1")
			j := changeTo(t, f.users, "alice", "local-password-1") // changed locally at t0
			resp, _ := f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{f.msg(j)}})
			if len(resp.BatchItemFailures) != 0 {
				t.Fatal("a conflict is settled, not retried")
			}
			if !grantOK(f.kc, "alice", tc.wantPassword) {
				t.Fatalf("keycloak must accept %s", tc.wantPassword)
			}
			if n := f.kc.Calls(keycloaktest.ImportPasswordHash); n != tc.wantKCPassword {
				t.Fatalf("keycloak password writes %d, want %d", n, tc.wantKCPassword)
			}
			es, _ := jr.ListByUser(context.Background(), pkg, "alice", 0)
			if len(es) != 1 || es[0].Status != tc.wantStatus || es[0].Conflict != tc.wantConflict {
				t.Fatalf("journal %+v", es)
			}
			// Either way the change is settled: reconciliation must not re-queue it.
			if u, _ := f.users.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"}); u.Unsynced() {
				t.Fatal("a settled conflict leaves the user unsynced")
			}
		})
	}
}

// The login path's drift and rehash jobs go through Dispatcher.Enqueue:
// queued, and no journal write on the login's path.
func TestDispatcherEnqueueWritesNoJournal(t *testing.T) {
	st, jr, q := users.NewMemory(), journal.NewMemory(), &memQueue{}
	d := &Dispatcher{Applier: &Applier{Keycloak: keycloaktest.New(), Users: st}, Queue: q,
		Journal: &JobJournal{Journal: jr}, Breaker: fakeBreaker{}}
	if err := d.Enqueue(context.Background(), changeTo(t, st, "alice", "alice-password-1")); err != nil {
		t.Fatal(err)
	}
	if es, _ := jr.ListByUser(context.Background(), pkg, "alice", 0); len(es) != 0 {
		t.Fatalf("journal %+v, want no entry", es)
	}
	if len(q.jobs) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(q.jobs))
	}
}
