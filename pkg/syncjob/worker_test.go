package syncjob

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/users"
)

type memDLQ struct{ reasons map[string]string }

func (d *memDLQ) DeadLetter(_ context.Context, m events.SQSMessage, reason string) error {
	d.reasons[m.MessageId] = reason
	return nil
}

type workerFixture struct {
	users *users.Memory
	kc    *keycloaktest.Fake
	dlq   *memDLQ
	w     *Worker
	n     int
}

func newWorkerFixture(open bool) *workerFixture {
	f := &workerFixture{users: users.NewMemory(), kc: keycloaktest.New(), dlq: &memDLQ{reasons: map[string]string{}}}
	// One group at a time, so programmed Keycloak failures hit a known record.
	f.w = &Worker{Applier: &Applier{Keycloak: f.kc, Users: f.users}, Breaker: fakeBreaker{open: open}, DLQ: f.dlq, GroupConcurrency: 1}
	return f
}

func (f *workerFixture) msg(j Job) events.SQSMessage {
	body, _ := json.Marshal(j)
	return f.raw(string(body), j.GroupID())
}

func (f *workerFixture) raw(body, group string) events.SQSMessage {
	f.n++
	return events.SQSMessage{MessageId: fmt.Sprintf("m%d", f.n), Body: body, Attributes: map[string]string{"MessageGroupId": group}}
}

func failedIDs(r events.SQSEventResponse) string {
	var ids []string
	for _, f := range r.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return strings.Join(ids, ",")
}

func TestWorkerBatch(t *testing.T) {
	f := newWorkerFixture(false)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	a2 := changeTo(t, f.users, "alice", "alice-password-2")
	b1 := changeTo(t, f.users, "bob", "bob-password-1")
	ev := events.SQSEvent{Records: []events.SQSMessage{f.msg(a1), f.msg(a2), f.raw("{not json", "homechoice#carol"), f.msg(b1)}}
	resp, out := f.w.Process(context.Background(), ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %s", failedIDs(resp))
	}
	if out.Applied != 2 || out.Superseded != 1 || out.DeadLettered != 1 {
		t.Fatalf("outcome %+v", out)
	}
	if !strings.Contains(f.dlq.reasons["m3"], "malformed") {
		t.Fatalf("poison message must reach the DLQ with its reason: %v", f.dlq.reasons)
	}
	if !grantOK(f.kc, "alice", "alice-password-2") || !grantOK(f.kc, "bob", "bob-password-1") {
		t.Fatal("keycloak lacks the latest passwords")
	}
}

func TestWorkerFailureHoldsTheGroupsOrder(t *testing.T) {
	f := newWorkerFixture(false)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	b1 := changeTo(t, f.users, "bob", "bob-password-1")
	a2 := New(UpdateUser, pkg, "alice", a1.Version, t0)
	// The first Keycloak call fails (an outage): alice's first job fails,
	// so her second must not run ahead of it; bob is unaffected.
	f.kc.Fail(keycloaktest.FindUser, keycloak.NewError("find user", pkg, keycloak.ErrUnavailable, 503, ""), 1)
	ev := events.SQSEvent{Records: []events.SQSMessage{f.msg(a1), f.msg(b1), f.msg(a2)}}
	resp, out := f.w.Process(context.Background(), ev)
	if failedIDs(resp) != "m1,m3" || out.Applied != 1 {
		t.Fatalf("failed %q, outcome %+v", failedIDs(resp), out)
	}
}

func TestWorkerBreakerOpenFailsFast(t *testing.T) {
	f := newWorkerFixture(true)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	resp, _ := f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{f.msg(a1)}})
	if failedIDs(resp) != "m1" || f.kc.Calls(keycloaktest.All) != 0 {
		t.Fatalf("open breaker: failed %q, keycloak calls %d", failedIDs(resp), f.kc.Calls(keycloaktest.All))
	}
}

func TestWorkerRejectedJobIsDeadLettered(t *testing.T) {
	f := newWorkerFixture(false)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	f.kc.Fail(keycloaktest.FindUser, keycloak.NewError("find user", pkg, keycloak.ErrRejected, 400, "invalid username"), 1)
	resp, out := f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{f.msg(a1)}})
	if len(resp.BatchItemFailures) != 0 || out.DeadLettered != 1 || !strings.Contains(f.dlq.reasons["m1"], "invalid username") {
		t.Fatalf("a validation refusal must be parked, not retried: %s %+v %v", failedIDs(resp), out, f.dlq.reasons)
	}
}

func TestWorkerDuplicateDeliveryChangesNothing(t *testing.T) {
	f := newWorkerFixture(false)
	a1 := changeTo(t, f.users, "alice", "alice-password-1")
	m := f.msg(a1)
	f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{m}})
	writes := f.kc.Calls(keycloaktest.CreateUser) + f.kc.Calls(keycloaktest.ImportPasswordHash)
	_, out := f.w.Process(context.Background(), events.SQSEvent{Records: []events.SQSMessage{m}})
	if out.Superseded != 1 || f.kc.Calls(keycloaktest.CreateUser)+f.kc.Calls(keycloaktest.ImportPasswordHash) != writes {
		t.Fatalf("duplicate delivery wrote to Keycloak again: %+v", out)
	}
}

// inFlight measures how many Keycloak writes run at once.
type inFlight struct {
	KeycloakAdmin
	mu       sync.Mutex
	now, max int
}

func (k *inFlight) ImportPasswordHash(ctx context.Context, pkg, id string, h credential.Hash) error {
	k.mu.Lock()
	k.now++
	k.max = max(k.max, k.now)
	k.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	k.mu.Lock()
	k.now--
	k.mu.Unlock()
	return k.KeycloakAdmin.ImportPasswordHash(ctx, pkg, id, h)
}

func TestWorkerRunsGroupsInParallelInOrder(t *testing.T) {
	f := newWorkerFixture(false)
	f.w.GroupConcurrency = 3
	k := &inFlight{KeycloakAdmin: f.kc}
	f.w.Applier.Keycloak = k
	jr := journaled(f)
	f.kc.Now = func() time.Time { return t0.Add(-time.Hour) } // Keycloak's passwords predate the changes
	var msgs []events.SQSMessage
	for i := range 8 {
		name := fmt.Sprint("user", i)
		f.kc.AddUser(pkg, name, "keycloak-password-0")
		msgs = append(msgs, f.msg(jobAt(t, f.users, name, "first-password-1", t0)), f.msg(jobAt(t, f.users, name, "second-password-2", t0.Add(time.Second))))
	}
	_, out := f.w.Process(context.Background(), events.SQSEvent{Records: msgs})
	if out.Applied != 8 || out.Superseded != 8 {
		t.Fatalf("outcome %+v", out)
	}
	if k.max < 2 || k.max > 3 {
		t.Fatalf("%d Keycloak writes at once, want 2..3", k.max)
	}
	for i := range 8 {
		name := fmt.Sprint("user", i)
		if got := statuses(t, jr, name); got != "1:superseded,2:applied" || !grantOK(f.kc, name, "second-password-2") {
			t.Fatalf("%s: journal %s", name, got)
		}
	}
}
