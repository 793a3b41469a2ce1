package cleanup_test

import (
	"context"
	"slices"
	"testing"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/cleanup"
)

// The scheduled run is the safety net of the breaker-driven replay: it
// does not re-queue while the breaker is open (the jobs could only wait),
// and it makes the sync worker's delivery match the breaker whatever a
// lost notification left: re-enabled under a closed breaker, paused under
// an open one.
func TestRunReplaySafetyNet(t *testing.T) {
	for _, tc := range []struct {
		state        breaker.State
		paused       bool
		wantReplay   []string
		wantPaused   bool
		wantRequeued int
	}{
		{breaker.StateClosed, true, []string{"resumed"}, false, 1},
		{breaker.StateClosed, false, nil, false, 1},
		{breaker.StateOpen, false, []string{"paused"}, true, 0},
		{breaker.StateOpen, true, nil, true, 0},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			f := newFixture(cleanup.Settings{})
			f.breaker.state = tc.state
			d := &delivery{paused: tc.paused}
			f.c.SyncDelivery = d
			if _, err := f.users.Create(context.Background(), pendingUser(t), t0); err != nil {
				t.Fatal(err)
			}
			res, err := f.c.Run(context.Background(), t0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Replay, tc.wantReplay) || d.paused != tc.wantPaused {
				t.Errorf("replay %v paused %v, want %v %v", res.Replay, d.paused, tc.wantReplay, tc.wantPaused)
			}
			if res.Reconcile.Queued != tc.wantRequeued || len(f.queue.jobs) != tc.wantRequeued {
				t.Errorf("re-queued %d, want %d", res.Reconcile.Queued, tc.wantRequeued)
			}
			if tc.state == breaker.StateOpen && res.Reconcile.Skipped != "breaker open" {
				t.Errorf("skipped %q", res.Reconcile.Skipped)
			}
		})
	}
}

type delivery struct{ paused bool }

func (d *delivery) Pause(context.Context) error          { d.paused = true; return nil }
func (d *delivery) Resume(context.Context) error         { d.paused = false; return nil }
func (d *delivery) Paused(context.Context) (bool, error) { return d.paused, nil }
