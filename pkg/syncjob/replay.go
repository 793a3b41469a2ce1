package syncjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/kcguard/kcguard/pkg/breaker"
)

// The breaker drives the replay. While it is open nothing burns a receive:
// the worker's delivery is paused (in AWS the sync worker's SQS event source
// mapping is disabled; `kcguard sync run` stops polling), and a record that
// was already on its way is put back until the next probe (Worker.Defer).
// When it closes, the closing instance resumes delivery at once and starts
// a reconciliation pass, so Keycloak equals local within cooldown + drain
// time after an outage of any length. The instance that wins a transition
// is the one told (breaker.Notifier), so each pause and resume is done once.

// EventSourceMapping is the sync worker's SQS event source mapping, found
// by UUID (sync.event_source_mapping) or else by function and queue: the
// worker cannot be given its own mapping's UUID without a CloudFormation
// cycle, so it looks it up once.
type EventSourceMapping struct {
	Client   LambdaAPI
	Function string // sync.worker_function
	Queue    *SQSQueue

	mu   sync.Mutex
	uuid string
}

var _ Pauser = (*EventSourceMapping)(nil)

// NewEventSourceMapping controls the mapping uuid (may be empty) of
// function on queue.
func NewEventSourceMapping(client LambdaAPI, function, uuid string, queue *SQSQueue) *EventSourceMapping {
	return &EventSourceMapping{Client: client, Function: function, Queue: queue, uuid: uuid}
}

// ErrNoMapping: the worker function has no event source mapping on the queue.
var ErrNoMapping = errors.New("no event source mapping")

// UUID finds (once) the mapping's UUID.
func (m *EventSourceMapping) UUID(ctx context.Context) (string, error) {
	m.mu.Lock()
	id := m.uuid
	m.mu.Unlock()
	if id != "" {
		return id, nil
	}
	arn, err := m.Queue.ARN(ctx)
	if err != nil {
		return "", err
	}
	out, err := m.Client.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{
		FunctionName: aws.String(m.Function), EventSourceArn: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("find event source mapping of %s: %w", m.Function, err)
	}
	if len(out.EventSourceMappings) == 0 {
		return "", fmt.Errorf("%w: function %s, queue %s", ErrNoMapping, m.Function, arn)
	}
	id = aws.ToString(out.EventSourceMappings[0].UUID)
	m.mu.Lock()
	m.uuid = id
	m.mu.Unlock()
	return id, nil
}

// Pause implements Pauser (UpdateEventSourceMapping Enabled=false).
func (m *EventSourceMapping) Pause(ctx context.Context) error { return m.set(ctx, false) }

// Resume implements Pauser (UpdateEventSourceMapping Enabled=true).
func (m *EventSourceMapping) Resume(ctx context.Context) error { return m.set(ctx, true) }

func (m *EventSourceMapping) set(ctx context.Context, on bool) error {
	id, err := m.UUID(ctx)
	if err != nil {
		return err
	}
	for {
		_, err := m.Client.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{
			UUID: aws.String(id), Enabled: aws.Bool(on)})
		var busy *lambdatypes.ResourceInUseException
		if !errors.As(err, &busy) {
			if err != nil {
				return fmt.Errorf("set event source mapping %s enabled=%v: %w", id, on, err)
			}
			return nil
		}
		// The previous change (a close right after an open) is still
		// being applied: try again until the caller's deadline.
		select {
		case <-ctx.Done():
			return fmt.Errorf("set event source mapping %s enabled=%v: still updating: %w", id, on, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Paused implements Pauser: the mapping is neither enabled nor enabling.
func (m *EventSourceMapping) Paused(ctx context.Context) (bool, error) {
	id, err := m.UUID(ctx)
	if err != nil {
		return false, err
	}
	out, err := m.Client.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(id)})
	if err != nil {
		return false, fmt.Errorf("read event source mapping %s: %w", id, err)
	}
	switch aws.ToString(out.State) {
	case "Enabled", "Enabling", "Creating", "Updating":
		return false, nil
	}
	return true, nil
}

// Replay is the breaker notifier that pauses delivery on open and, on
// close, resumes it, wakes a local poller and starts a reconciliation pass.
type Replay struct {
	// Pauser is the worker's delivery; nil when there is none to control
	// (local: the poller watches the breaker itself).
	Pauser Pauser
	// Wake, if set, wakes a poller of this process at once.
	Wake func()
	// Reconcile, if set, is started in the background on close. It must
	// bound itself (a limit and a deadline); what it leaves, the scheduled
	// cleanup finds.
	Reconcile func(ctx context.Context)
	// Timeout bounds the pause or resume call; the transition's caller
	// waits for it (a login that opened the breaker). Default 3s.
	Timeout time.Duration
	Log     *slog.Logger
}

var _ breaker.Notifier = (*Replay)(nil)

// Notify implements breaker.Notifier.
func (r *Replay) Notify(ctx context.Context, ev breaker.Event) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	switch ev.To {
	case breaker.StateOpen:
		if r.Pauser != nil {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := r.Pauser.Pause(cctx); err != nil {
				// Records still delivered are deferred to the next probe;
				// the scheduled cleanup pauses it again.
				r.log().ErrorContext(ctx, "sync worker not paused", "event", "sync_pause_failed", "err", err)
			} else {
				r.log().InfoContext(ctx, "sync worker paused while the breaker is open", "event", "sync_paused", "generation", ev.Generation)
			}
		}
	case breaker.StateClosed:
		if r.Pauser != nil {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := r.Pauser.Resume(cctx); err != nil {
				r.log().ErrorContext(ctx, "sync worker not resumed; the scheduled cleanup re-enables it", "event", "sync_resume_failed", "err", err)
			} else {
				r.log().InfoContext(ctx, "sync worker resumed: replaying the backlog", "event", "sync_resumed", "generation", ev.Generation)
			}
		}
		if r.Wake != nil {
			r.Wake()
		}
		if r.Reconcile != nil {
			go r.Reconcile(context.WithoutCancel(ctx))
		}
	}
}

func (r *Replay) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// Ensure is the scheduled safety net: delivery must run while the breaker
// is closed and be paused while it is open, whatever a lost notification
// left behind. It returns what it changed ("", "resumed", "paused").
func Ensure(ctx context.Context, p Pauser, st breaker.Status) (string, error) {
	if p == nil {
		return "", nil
	}
	paused, err := p.Paused(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case paused && (st.State == breaker.StateClosed || st.State == breaker.StateDisabled):
		return "resumed", p.Resume(ctx)
	case !paused && st.State == breaker.StateOpen && !st.Fallback:
		return "paused", p.Pause(ctx)
	}
	return "", nil
}
