package syncjob_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// The replay against moto's Lambda: the open transition disables the sync
// worker's event source mapping (found by function and queue, as the
// worker itself must), the close enables it, wakes the poller and starts a
// reconciliation; the safety net re-enables a mapping left disabled under
// a closed breaker.
func TestReplayPausesAndResumesTheEventSourceMapping(t *testing.T) {
	cfg := testenv.AWS(t)
	ctx := context.Background()
	lc := lambda.NewFromConfig(cfg)
	spec, _ := testenv.Queue(t, cfg, 5)
	queue := syncjob.NewSQSQueue(sqs.NewFromConfig(cfg), spec.Name)
	arn, err := queue.ARN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fn := testenv.WorkerFunction(t, cfg, arn)

	m := syncjob.NewEventSourceMapping(lc, fn, "", queue)
	var woken, reconciled atomic.Int32
	reconcileDone := make(chan struct{})
	r := &syncjob.Replay{Pauser: m, Wake: func() { woken.Add(1) },
		Reconcile: func(context.Context) { reconciled.Add(1); close(reconcileDone) }}
	paused := func() bool {
		t.Helper()
		p, err := m.Paused(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if paused() {
		t.Fatal("a new mapping is enabled")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateClosed, To: breaker.StateOpen})
	if !paused() {
		t.Fatal("the open transition must disable the mapping")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateOpen, To: breaker.StateHalfOpen})
	if !paused() || woken.Load() != 0 {
		t.Fatal("a probe must not resume delivery")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateHalfOpen, To: breaker.StateClosed})
	select {
	case <-reconcileDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the close must start a reconciliation pass")
	}
	if paused() || woken.Load() != 1 || reconciled.Load() != 1 {
		t.Fatalf("the close must enable the mapping and wake the poller: paused %v, woken %d", paused(), woken.Load())
	}

	// Safety net: a mapping left disabled under a closed breaker.
	if err := m.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateClosed}); err != nil || got != "resumed" || paused() {
		t.Fatalf("safety net under a closed breaker: %q %v", got, err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateOpen}); err != nil || got != "paused" || !paused() {
		t.Fatalf("safety net under an open breaker: %q %v", got, err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateOpen}); err != nil || got != "" {
		t.Fatalf("nothing to fix: %q %v", got, err)
	}
}

// A record received while the breaker is open goes back until the next
// probe, with the rest of its group; it is reported failed (so not
// deleted) but costs no Keycloak call and no journal failure.
func TestWorkerDefersRecordsWhileOpen(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := &deferrals{}
	w := &syncjob.Worker{Breaker: openBreaker{}, Defer: d, Now: func() time.Time { return now },
		NextProbe: func(context.Context) time.Time { return now.Add(42 * time.Second) }, Applier: &syncjob.Applier{}}
	var ev events.SQSEvent
	for i, g := range []string{"p#alice", "p#alice", "p#bob"} {
		j := syncjob.New(syncjob.UpdateUser, "p", strings.TrimPrefix(g, "p#"), int64(i+1), now)
		body, _ := jsonOf(j)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: string(rune('a' + i)), ReceiptHandle: "rh-" + string(rune('a'+i)),
			Body: body, Attributes: map[string]string{"MessageGroupId": g}})
	}
	resp, out := w.Process(context.Background(), ev)
	if out.Deferred != 3 || out.Failed != 0 || len(resp.BatchItemFailures) != 3 {
		t.Fatalf("outcome %+v, failures %d", out, len(resp.BatchItemFailures))
	}
	for h, dur := range d.all() {
		if dur != 42*time.Second {
			t.Errorf("%s deferred %s, want until the next probe (42s)", h, dur)
		}
	}
	// Unknown next probe (forced open): the fallback.
	w.NextProbe = func(context.Context) time.Time { return time.Time{} }
	w.DeferFallback = 90 * time.Second
	d.reset()
	w.Process(context.Background(), events.SQSEvent{Records: ev.Records[:1]})
	if got := d.all()["rh-a"]; got != 90*time.Second {
		t.Fatalf("forced open: deferred %s, want the fallback 90s", got)
	}
	// A deferral that fails leaves a plain failure (visibility timeout).
	d.failing()
	_, out = w.Process(context.Background(), events.SQSEvent{Records: ev.Records[:1]})
	if out.Failed != 1 || out.Deferred != 0 {
		t.Fatalf("failed deferral: %+v", out)
	}
}

type openBreaker struct{}

func (openBreaker) Allow(context.Context) (func(error), error) { return nil, breaker.ErrOpen }

type deferrals struct {
	mu   sync.Mutex
	fail bool
	m    map[string]time.Duration
}

func (d *deferrals) Defer(_ context.Context, h string, dur time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("sqs down")
	}
	if d.m == nil {
		d.m = map[string]time.Duration{}
	}
	d.m[h] = dur
	return nil
}

func (d *deferrals) all() map[string]time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.m)
}

func (d *deferrals) reset() { d.mu.Lock(); d.m = nil; d.mu.Unlock() }

func (d *deferrals) failing() { d.mu.Lock(); d.fail = true; d.mu.Unlock() }
