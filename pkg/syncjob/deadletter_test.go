package syncjob

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/users"
)

// Finding 6 of RELIABILITY.md, on moto's FIFO queue with maxReceiveCount 3:
// a change that keeps failing for an outage-class reason while the breaker
// is still closed (here Keycloak answering 503 to every import, for twice
// as many receives as the queue allows) backs off, is re-sent on its last
// allowed receive, and reaches Keycloak when Keycloak is back. The DLQ
// stays empty: it is for poison only, and a poison job still goes there.
func TestOutageFailuresNeverReachTheDLQ(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto")
	}
	const maxReceives = 3
	cfg := testenv.AWS(t)
	ctx := context.Background()
	client := sqs.NewFromConfig(cfg)
	spec, _ := testenv.Queue(t, cfg, maxReceives)
	queue, dlq := NewSQSQueue(client, spec.Name), NewSQSQueue(client, spec.DLQName)
	st, kc := users.NewMemory(), keycloaktest.New()
	w := &Worker{Applier: &Applier{Keycloak: kc, Users: st}, Breaker: fakeBreaker{}, DLQ: dlq,
		Defer: queue, Resend: queue, RetryBase: time.Second, MaxReceives: maxReceives}
	p := &Poller{Queue: queue, Worker: w, WaitSeconds: 1}

	j := changeTo(t, st, "alice", "alice-password-1")
	if err := queue.Enqueue(ctx, j); err != nil {
		t.Fatal(err)
	}
	kc.Fail(keycloaktest.All, keycloak.NewError("import hash", pkg, keycloak.ErrUnavailable, 503, "down (test)"), -1)
	var total Outcome
	for deadline := time.Now().Add(60 * time.Second); total.Failed < 2*maxReceives; {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %+v", total)
		}
		_, out, err := p.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total.Failed += out.Failed
		total.Resent += out.Resent
	}
	if total.Resent < 1 {
		t.Fatalf("%d failed receives and no re-send: %+v", total.Failed, total)
	}
	kc.ClearFailures()
	for deadline := time.Now().Add(60 * time.Second); total.Applied == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the change did not reach Keycloak within 60s of its return: %+v", total)
		}
		_, out, err := p.PollOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total.Applied += out.Applied
		total.DeadLettered += out.DeadLettered
	}
	if !grantOK(kc, "alice", "alice-password-1") {
		t.Fatal("Keycloak lacks the password")
	}
	if waiting, inFlight, err := dlq.Depth(ctx); err != nil || waiting+inFlight != 0 {
		t.Fatalf("DLQ holds %d+%d messages (err %v), want 0", waiting, inFlight, err)
	}
	// Poison still goes to the DLQ, once, however it is received.
	url, _ := queue.URL(ctx)
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("{not json"),
		MessageGroupId: aws.String("p#poison"), MessageDeduplicationId: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	if n, out, err := p.PollOnce(ctx); err != nil || n != 1 || out.DeadLettered != 1 {
		t.Fatalf("poison: received %d, %+v, %v", n, out, err)
	}
}

// The back-off of an outage-class failure doubles per receive from
// RetryBase up to RetryMax; a record's last allowed receive is re-sent
// whatever put it back (a failure or an open breaker).
func TestRetryBackOffAndResendRule(t *testing.T) {
	w := &Worker{RetryBase: 2 * time.Second, RetryMax: 10 * time.Second}
	for rc, want := range map[string]time.Duration{"1": 2 * time.Second, "2": 4 * time.Second, "3": 8 * time.Second, "4": 10 * time.Second, "40": 10 * time.Second} {
		if got := w.retryDelay(events.SQSMessage{Attributes: map[string]string{"ApproximateReceiveCount": rc}}); got != want {
			t.Errorf("receive %s: back-off %s, want %s", rc, got, want)
		}
	}
	if d := (&Worker{}).retryDelay(events.SQSMessage{}); d != 0 {
		t.Errorf("without RetryBase a failure must fall into the visibility timeout, got %s", d)
	}
}

// `kcguard sync redrive` moves each dead-lettered job back to the sync
// queue in its user's message group and empties the DLQ; a second run
// finds nothing to move.
func TestRedriveMovesDeadLettersBackInTheirGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto")
	}
	cfg := testenv.AWS(t)
	ctx := context.Background()
	client := sqs.NewFromConfig(cfg)
	spec, _ := testenv.Queue(t, cfg, 3)
	queue, dlq := NewSQSQueue(client, spec.Name), NewSQSQueue(client, spec.DLQName)
	want := map[string]string{} // body -> group
	for i, name := range []string{"alice", "bob"} {
		j := New(SetPassword, pkg, name, int64(i+1), t0)
		msg := events.SQSMessage{MessageId: "m-" + name, Body: `{"id":"` + j.ID + `"}`,
			Attributes: map[string]string{"MessageGroupId": j.GroupID(), "ApproximateReceiveCount": "1"}}
		if err := dlq.DeadLetter(ctx, msg, "rejected (test)"); err != nil {
			t.Fatal(err)
		}
		want[msg.Body] = j.GroupID()
	}
	n, err := dlq.RedriveTo(ctx, queue)
	if err != nil || n != 2 {
		t.Fatalf("redrive moved %d (err %v), want 2", n, err)
	}
	if waiting, inFlight, err := dlq.Depth(ctx); err != nil || waiting+inFlight != 0 {
		t.Fatalf("DLQ holds %d+%d messages after the redrive (err %v)", waiting, inFlight, err)
	}
	got := map[string]string{}
	for deadline := time.Now().Add(10 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		msgs, err := queue.Receive(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got[m.Body] = m.Attributes["MessageGroupId"]
		}
		if err := queue.Acknowledge(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	for body, group := range want {
		if got[body] != group {
			t.Errorf("message %s back in group %q, want %q", body, got[body], group)
		}
	}
	if len(got) != len(want) {
		t.Errorf("sync queue got %d messages, want %d", len(got), len(want))
	}
	if n, err := dlq.RedriveTo(ctx, queue); err != nil || n != 0 {
		t.Fatalf("second redrive moved %d (err %v), want 0", n, err)
	}
}
