package syncjob

import (
	"context"
	"log/slog"
	"time"

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
