package platform_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/syncjob/syncjobtest"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Issue 11, finding 2 against the real Keycloak: two password changes whose
// direct syncs interleave (the older import held back until the newer sync
// has finished and marked its version synced), then a stale queued job of
// the older version redelivered. Keycloak must end with the newest password
// and refuse the older ones.
func TestSyncOrderingRealKeycloak(t *testing.T) {
	e := stacktest.New(t)
	ctx := context.Background()
	u := e.NewUserPrefixed(t, "homechoice", "replay")
	gate := syncjobtest.Gate(e.RT.Applier.Keycloak)
	e.RT.Applier.Keycloak = gate
	pw2, pw3 := u.Password+"-two", u.Password+"-three"

	arrived := gate.HoldNext()
	older := make(chan string, 1)
	go func() { older <- changePassword(t, e, u, u.Password, pw2) }()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the first password change never reached its Keycloak import")
	}
	if got := changePassword(t, e, u, pw2, pw3); got != string(syncjob.Applied) {
		t.Fatalf("second change: sync %q, want applied", got)
	}
	gate.Release()
	if got := <-older; got != string(syncjob.Applied) {
		t.Fatalf("first change: sync %q, want applied", got)
	}
	if n := len(gate.Imported()); n != 3 {
		t.Fatalf("%d imports landed; want v3, the late v2, and v3 again", n)
	}

	// A redelivered job of the older version is superseded, not replayed.
	rec, err := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := syncjob.CurrentPassword(rec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stale.Version = rec.Version - 1
	if res, err := e.RT.Applier.Apply(ctx, stale); err != nil || res != syncjob.Superseded {
		t.Fatalf("stale job: %s %v", res, err)
	}
	if rec.KeycloakSyncedVersion != rec.Version {
		t.Fatalf("local version %d, synced %d", rec.Version, rec.KeycloakSyncedVersion)
	}
	if err := grant(ctx, e, u.Package, u.Name, pw3); err != nil {
		t.Fatalf("Keycloak refuses the newest password: %v", err)
	}
	for _, old := range []string{u.Password, pw2} {
		if err := grant(ctx, e, u.Package, u.Name, old); err == nil {
			t.Fatal("Keycloak still accepts an older password")
		}
	}
	e.AssertNoSecrets(t, u.Password, pw2, pw3)
}

// Issue 15, "replay starts the moment the breaker closes", on the local
// stack: Keycloak is cut, logins open the breaker, a password change is
// queued, the `kcguard sync run` poller pauses; Keycloak comes back; the
// paused poller probes when the probe is due, the breaker closes and the
// poller drains at once. Measured: time from Keycloak back to Keycloak ==
// local. The job was received once (nothing burnt toward the DLQ), the DLQ
// is empty, and Keycloak accepts the new password and refuses the old.
// KCG_REPLAY_OUTAGE sets the outage (default 8s; the figure is for
// 25s), KCG_REPLAY_COOLDOWN the cooldown in seconds (default 5).
func TestReplayStartsWhenTheBreakerCloses(t *testing.T) {
	outageLen := 8 * time.Second
	if v := os.Getenv("KCG_REPLAY_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		outageLen = d
	}
	cooldown := 5
	if v := os.Getenv("KCG_REPLAY_COOLDOWN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		cooldown = n
	}
	e := stacktest.New(t, func(c *config.Config) {
		c.Keycloak.Resilience.CooldownSeconds = cooldown
		c.Keycloak.Resilience.HealthCheckCacheSeconds = 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := e.NewUserPrefixed(t, "homechoice", "replay")
	poller := e.RT.Poller(1)
	running := make(chan struct{})
	go func() { defer close(running); _ = poller.Run(ctx) }()
	defer func() { cancel(); <-running }()

	e.Proxy.Disable()
	cut := time.Now()
	for i := 0; i < 10 && e.RT.Breaker.State(ctx).State != breaker.StateOpen; i++ {
		_, _ = e.Login(u, u.Password) // answered locally; each pays the Keycloak timeout until the breaker opens
	}
	if st, _ := e.RT.Breaker.Status(ctx); st.State != breaker.StateOpen {
		t.Fatalf("breaker %s after logins against a cut Keycloak", st.State)
	}
	newPw := u.Password + "-during-outage"
	if got := changePassword(t, e, u, u.Password, newPw); got != string(syncjob.Queued) {
		t.Fatalf("password change during the outage: sync %q, want queued", got)
	}
	time.Sleep(time.Until(cut.Add(outageLen)))
	e.Proxy.Enable()
	back := time.Now()

	key := userkey.Key{Package: u.Package, Username: u.Name}
	var synced time.Time
	for deadline := back.Add(3*time.Minute + time.Duration(16*cooldown)*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rec, err := e.RT.Users.Get(ctx, key)
		if err != nil {
			t.Logf("reading the user (moto is shared and may be slow): %v", err)
			continue
		}
		if rec.KeycloakSyncedVersion == rec.Version {
			synced = time.Now()
			break
		}
	}
	if synced.IsZero() {
		t.Fatal("Keycloak never caught up with the change made during the outage")
	}
	st, _ := e.RT.Breaker.Status(ctx)
	closed := st.Since
	t.Logf("outage %s (cooldown %ds): Keycloak back -> breaker closed %s, -> Keycloak == local %s",
		outageLen, cooldown, closed.Sub(back).Round(10*time.Millisecond), synced.Sub(back).Round(10*time.Millisecond))
	if drain := synced.Sub(closed); st.State != breaker.StateClosed || drain > 15*time.Second {
		t.Errorf("replay must start when the breaker closes: state %s, synced %s after the close", st.State, drain)
	}
	if err := grant(ctx, e, u.Package, u.Name, newPw); err != nil {
		t.Errorf("Keycloak refuses the password changed during the outage: %v", err)
	}
	if err := grant(ctx, e, u.Package, u.Name, u.Password); err == nil {
		t.Error("Keycloak still accepts the password from before the outage")
	}
	if n := depth(t, e, e.RT.DLQ); n != 0 {
		t.Errorf("DLQ holds %d messages after the outage", n)
	}
	if n := strings.Count(e.Logs.String(), `"event":"sync_retry"`); n != 0 {
		t.Errorf("the queued change failed %d deliveries: each burnt a receive toward the DLQ", n)
	}
}

// grant asks the real Keycloak, retrying answers that are outages (the
// shared Keycloak is slow under load), not refusals.
func grant(ctx context.Context, e *stacktest.Env, pkg, name, pw string) error {
	var err error
	for range 5 {
		if _, err = e.RT.Keycloak.PasswordGrant(ctx, pkg, name, pw); err == nil || !keycloak.IsOutage(err) {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// The wiring as deployed: a runtime with sync.worker_function and
// alerts.topic_arn (moto's Lambda and SNS). An operator's forced open
// pauses the worker's event source mapping (found by function and queue)
// and alerts once; the forced close resumes it and alerts once; a mapping
// left disabled under a closed breaker is re-enabled by the scheduled
// cleanup.
func TestReplayWiringInAWS(t *testing.T) {
	e := stacktest.New(t)
	ctx := context.Background()
	arn, err := e.RT.Queue.ARN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Config
	cfg.Sync.WorkerFunction = testenv.WorkerFunction(t, e.RT.AWS, arn)
	topic, read := testenv.AlertTopic(t, e.RT.AWS)
	cfg.Alerts.TopicARN = topic
	rt, err := platform.Build(ctx, cfg, e.RT.AWS, slog.New(slog.NewJSONHandler(e.Logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	paused := func() bool {
		t.Helper()
		p, err := rt.SyncMapping.Paused(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := rt.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	if !paused() {
		t.Fatal("opening the breaker must disable the worker's event source mapping")
	}
	if _, err := rt.Breaker.ForceClose(ctx); err != nil {
		t.Fatal(err)
	}
	if paused() {
		t.Fatal("closing the breaker must enable the mapping")
	}
	var events []string
	for _, a := range read(2) {
		events = append(events, a.Event)
	}
	if strings.Join(events, ",") != "breaker_opened,breaker_closed" {
		t.Fatalf("alerts %v, want one opened then one closed", events)
	}
	if err := rt.SyncMapping.Pause(ctx); err != nil { // a resume that got lost
		t.Fatal(err)
	}
	res, err := rt.Cleaner(io.Discard).Run(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if paused() || !slices.Contains(res.Replay, "resumed") {
		t.Fatalf("the scheduled cleanup must re-enable a mapping left disabled under a closed breaker: %v", res.Replay)
	}
}

// The close's own reconciliation pass: a change whose queue send was lost
// during the outage reaches Keycloak after the breaker closes, with no
// scheduled run and no operator command.
func TestCloseReconcilesALostSend(t *testing.T) {
	e := stacktest.New(t, fastBreaker)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := e.NewUserPrefixed(t, "homechoice", "replay")
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	real := e.RT.Dispatcher.Queue
	e.RT.Dispatcher.Queue = &failingQueue{}
	pw := u.Password + "-lost-send"
	if got := changePassword(t, e, u, u.Password, pw); got != string(syncjob.Queued) {
		t.Fatalf("sync %q, want queued (and lost)", got)
	}
	e.RT.Dispatcher.Queue = real
	poller := e.RT.Poller(1)
	running := make(chan struct{})
	go func() { defer close(running); _ = poller.Run(ctx) }()
	defer func() { cancel(); <-running }()

	e.Proxy.Enable()
	if _, err := e.RT.Breaker.ForceClose(ctx); err != nil {
		t.Fatal(err)
	}
	key := userkey.Key{Package: u.Package, Username: u.Name}
	for deadline := time.Now().Add(platform.DrainWait + time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if rec, err := e.RT.Users.Get(ctx, key); err == nil && rec.KeycloakSyncedVersion == rec.Version {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lost change never reached Keycloak after the close")
		}
	}
	if err := grant(ctx, e, u.Package, u.Name, pw); err != nil {
		t.Fatalf("Keycloak refuses the password whose send was lost: %v", err)
	}
	if !strings.Contains(e.Logs.String(), `"event":"reconcile_on_close"`) {
		t.Error("no reconcile_on_close log line")
	}
}
