package syncjob_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// `kcguard sync run` pauses while the breaker is open: no receive at all
// (a receive would count toward maxReceiveCount), a probe with Ping when
// one is due, and polling again as soon as the breaker is closed.
func TestPollerRunPausesWhileOpen(t *testing.T) {
	br := &scriptedBreaker{st: breaker.Status{State: breaker.StateOpen, NextProbe: time.Now().Add(time.Hour)}}
	rx := &countingReceiver{}
	var pings atomic.Int32
	p := &syncjob.Poller{Queue: syncjob.NewSQSQueue(rx, "q.fifo"), Worker: &syncjob.Worker{},
		Breaker: br, PauseCheck: 10 * time.Millisecond,
		Ping: func(context.Context) error { pings.Add(1); return errors.New("keycloak still down") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond)
	if n := rx.calls.Load(); n != 0 || pings.Load() != 0 {
		t.Fatalf("while open before the probe is due: %d receives, %d pings", n, pings.Load())
	}
	br.set(breaker.Status{State: breaker.StateOpen, NextProbe: time.Now().Add(-time.Second)})
	waitFor(t, func() bool { return pings.Load() > 0 }, "a probe when it is due")
	if n := rx.calls.Load(); n != 0 {
		t.Fatalf("a probe must not be made with a job: %d receives", n)
	}
	br.set(breaker.Status{State: breaker.StateClosed})
	waitFor(t, func() bool { return rx.calls.Load() > 0 }, "polling once the breaker is closed")

	// Open again: polling stops; Wake alone does not resume it.
	br.set(breaker.Status{State: breaker.StateOpen, Forced: true})
	time.Sleep(50 * time.Millisecond)
	before := rx.calls.Load()
	p.Wake()
	time.Sleep(100 * time.Millisecond)
	if n := rx.calls.Load(); n > before+1 {
		t.Fatalf("polled %d times while forced open", n-before)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

type scriptedBreaker struct {
	mu sync.Mutex
	st breaker.Status
}

func (b *scriptedBreaker) set(st breaker.Status) { b.mu.Lock(); b.st = st; b.mu.Unlock() }

func (b *scriptedBreaker) Status(context.Context) (breaker.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st, nil
}

func (b *scriptedBreaker) Execute(ctx context.Context, fn func(context.Context) error) error {
	return fn(ctx)
}

// countingReceiver counts receives (always empty); its queue URL is fixed.
type countingReceiver struct {
	fixedURL
	calls atomic.Int32
}

func (r *countingReceiver) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	r.calls.Add(1)
	time.Sleep(5 * time.Millisecond) // an empty long poll
	return &sqs.ReceiveMessageOutput{}, nil
}

func (r *countingReceiver) DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	return &sqs.DeleteMessageBatchOutput{}, nil
}

// fixedURL answers the queue URL lookup; nothing else is called.
type fixedURL struct{ syncjob.SQSAPI }

func (fixedURL) GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return &sqs.GetQueueUrlOutput{QueueUrl: aws.String("http://q")}, nil
}

// A probe lease whose holder went away (or never learnt its write landed)
// must not pause the poller for good: when the lease runs out, the poller
// probes itself, the breaker closes and polling resumes.
func TestPollerProbesWhenALeaseRunsOut(t *testing.T) {
	br := breaker.New(breaker.NewMemoryStore(), breaker.Settings{Name: "http://kc", FailureThreshold: 1,
		Cooldown: 10 * time.Millisecond, ProbeLease: 200 * time.Millisecond, StateCacheTTL: time.Millisecond})
	ctx := context.Background()
	_ = br.Execute(ctx, func(context.Context) error { return errors.New("keycloak down") })
	time.Sleep(20 * time.Millisecond)
	if _, err := br.Allow(ctx); err != nil { // the lease taken by an instance that dies
		t.Fatalf("taking the probe lease: %v", err)
	}
	if st, _ := br.Status(ctx); st.State != breaker.StateHalfOpen {
		t.Fatalf("state %s, want half-open", st.State)
	}
	rx := &countingReceiver{}
	var pings atomic.Int32
	p := &syncjob.Poller{Queue: syncjob.NewSQSQueue(rx, "q.fifo"), Worker: &syncjob.Worker{},
		Breaker: br, PauseCheck: 10 * time.Millisecond, Ping: func(context.Context) error { pings.Add(1); return nil }}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return rx.calls.Load() > 0 }, "polling after the abandoned lease ran out")
	if pings.Load() != 1 {
		t.Fatalf("%d probes, want 1", pings.Load())
	}
	if st, _ := br.Status(ctx); st.State != breaker.StateClosed {
		t.Fatalf("state %s, want closed by the poller's probe", st.State)
	}
}
