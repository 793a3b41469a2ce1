package syncjob

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/breaker"
)

// Poller feeds the Worker from the queue the way Lambda's SQS event source
// does (batches, partial failures, failed records left to time out), for
// `kcguard sync now|run` and local use.
type Poller struct {
	Queue  *SQSQueue
	Worker *Worker
	// WaitSeconds is the long-poll wait (0–20).
	WaitSeconds int32
	// Parallel is how many batches Drain works on at once, as Lambda runs
	// several instances of the worker; 0 or 1 is one at a time. SQS FIFO
	// keeps a user's messages in one batch at a time whatever this is;
	// moto does not, so keep 1 against the local stack (overlapping jobs of
	// a user stay correct, versions decide, but cost extra Keycloak writes).
	Parallel int
	// Breaker, if set, pauses Run while it is open.
	Breaker PollerBreaker
	// Ping probes Keycloak when the paused Run finds a probe due.
	Ping func(ctx context.Context) error
	// ReceiveOptions are passed to every ReceiveMessage (platform gives a
	// receive one long attempt: an abandoned receive burns a receive).
	ReceiveOptions []func(*sqs.Options)
	// PauseCheck is how often a paused Run re-reads the breaker (default 1s).
	PauseCheck time.Duration
	Log        *slog.Logger

	once sync.Once
	wake chan struct{}
}

// PollOnce receives one batch and processes it; received is 0 when the
// queue had nothing visible.
func (p *Poller) PollOnce(ctx context.Context) (received int, out Outcome, err error) {
	msgs, err := p.Queue.Receive(ctx, p.WaitSeconds, p.ReceiveOptions...)
	if err != nil {
		return 0, out, fmt.Errorf("receive sync jobs: %w", err)
	}
	if len(msgs) == 0 {
		return 0, out, nil
	}
	resp, out := p.Worker.Process(ctx, events.SQSEvent{Records: msgs})
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var done []events.SQSMessage
	for _, m := range msgs {
		if !failed[m.MessageId] {
			done = append(done, m)
		}
	}
	if err := p.Queue.Acknowledge(ctx, done); err != nil {
		// Undeleted jobs come back and are superseded or re-applied: harmless.
		return len(msgs), out, fmt.Errorf("acknowledge sync jobs: %w", err)
	}
	return len(msgs), out, nil
}

// Drain polls until the queue has nothing visible and returns the totals.
// Records that failed stay invisible for the visibility timeout, so a
// drain during an outage ends instead of spinning on them.
func (p *Poller) Drain(ctx context.Context) (Outcome, error) {
	var (
		total    Outcome
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for range max(1, p.Parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, out, err := p.PollOnce(ctx)
				mu.Lock()
				total.Applied += out.Applied
				total.Superseded += out.Superseded
				total.DeadLettered += out.DeadLettered
				total.Failed += out.Failed
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil || n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	return total, firstErr
}

// Run polls until ctx ends (`kcguard sync run`, the local stand-in for the
// event source mapping). While the breaker is open it does not poll, so no
// queued change burns a receive; when the next probe is due it probes
// Keycloak with Ping (not with a job, which would cost a receive per failed
// probe), and it resumes the moment the breaker closes, whoever closed it
// (it re-reads the state every PauseCheck) or at once when Wake is called.
func (p *Poller) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		p.waitWhileOpen(ctx)
		if ctx.Err() != nil {
			break
		}
		if _, _, err := p.PollOnce(ctx); err != nil && ctx.Err() == nil {
			p.log().WarnContext(ctx, "sync poll failed", "err", err)
			p.sleep(ctx, 2*time.Second)
		}
	}
	return nil
}

// Wake ends a pause early (the breaker closed in this process).
func (p *Poller) Wake() {
	select {
	case p.wakeCh() <- struct{}{}:
	default:
	}
}

func (p *Poller) wakeCh() chan struct{} {
	p.once.Do(func() { p.wake = make(chan struct{}, 1) })
	return p.wake
}

func (p *Poller) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-p.wakeCh():
	case <-t.C:
	}
}

// waitWhileOpen returns when the poller may poll: the breaker is closed
// (or disabled), its state cannot be read (the worker then defers what it
// gets), or ctx ended.
func (p *Poller) waitWhileOpen(ctx context.Context) {
	if p.Breaker == nil {
		return
	}
	check := p.PauseCheck
	if check <= 0 {
		check = time.Second
	}
	paused := time.Time{}
	for ctx.Err() == nil {
		st, err := p.Breaker.Status(ctx)
		if err != nil || st.Fallback || st.State == breaker.StateClosed || st.State == breaker.StateDisabled {
			if !paused.IsZero() {
				p.log().InfoContext(ctx, "sync poller resumed", "event", "sync_resumed", "paused_for", time.Since(paused).Round(time.Millisecond).String())
			}
			return
		}
		if paused.IsZero() {
			paused = time.Now()
			p.log().InfoContext(ctx, "sync poller paused while the breaker is open", "event", "sync_paused",
				"state", string(st.State), "next_probe", st.NextProbe)
		}
		if !st.Forced && p.Ping != nil && !st.NextProbe.IsZero() && !time.Now().Before(st.NextProbe) {
			// Due: probe (one instance in the fleet wins the lease). On
			// success the breaker closes and the next check resumes. A
			// half-open breaker whose lease ran out counts as due too: its
			// holder died or never knew it held it, and once the logins have
			// stopped nobody else would ever probe (finding 16).
			if err := p.Breaker.Execute(ctx, p.Ping); err == nil {
				continue
			}
		}
		p.sleep(ctx, check)
	}
}

func (p *Poller) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}
