package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/config"
)

// Finding 8: recovery after a long outage is bounded by the probe
// back-off; it is capped at five minutes whatever the cooldown (16 × 60 s
// would be 16 minutes), and is 16 cooldowns for short cooldowns.
func TestProbeBackoffIsCapped(t *testing.T) {
	for cooldown, want := range map[time.Duration]time.Duration{
		time.Second:      16 * time.Second,
		10 * time.Second: 160 * time.Second,
		time.Minute:      5 * time.Minute,
		10 * time.Minute: 10 * time.Minute, // never below one cooldown
	} {
		if got := MaxProbeBackoff(cooldown); got != want {
			t.Errorf("cooldown %s: max back-off %s, want %s", cooldown, got, want)
		}
	}
	cfg := config.Default()
	if got := BreakerSettings(cfg, nil).MaxCooldown; got != 5*time.Minute {
		t.Errorf("default config: breaker MaxCooldown %s, want 5m (cooldown %s)", got, cfg.Keycloak.Resilience.Cooldown())
	}
}

// A long poll never outlives one attempt of the SQS call (finding 6): at
// the defaults (2 s attempts) the poller waits 1 s.
func TestLongPollFitsInAnAttempt(t *testing.T) {
	for _, c := range []struct {
		wait    int32
		attempt time.Duration
		want    int32
	}{
		{10, 2 * time.Second, 1},
		{10, 3 * time.Second, 2},
		{10, time.Second, 0},
		{10, 500 * time.Millisecond, 0},
		{1, 20 * time.Second, 1},
		{10, 0, 10}, // unbounded attempts: as asked
	} {
		if got := LongPoll(c.wait, c.attempt); got != c.want {
			t.Errorf("LongPoll(%d, %s) = %d, want %d", c.wait, c.attempt, got, c.want)
		}
	}
	if got := LongPoll(10, config.Default().AWS.AttemptTimeout); got >= int32(config.Default().AWS.AttemptTimeout/time.Second) {
		t.Errorf("default config: long poll %ds does not fit in a %s attempt", got, config.Default().AWS.AttemptTimeout)
	}
}

// Finding 6: a receive slower than aws.attempt_timeout is waited for, once,
// not abandoned and retried (SQS may deliver into an abandoned receive,
// and the message then burns a receive with nobody working on it).
func TestSlowReceiveIsNotAbandoned(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(1500 * time.Millisecond) // slower than the attempt timeout and the call budget below
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{"Messages":[]}`))
	}))
	defer srv.Close()
	cfg := Bounded(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")},
		config.AWS{AttemptTimeout: 500 * time.Millisecond, CallBudget: time.Second, MaxAttempts: 3})
	client := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.URL + "/q"), WaitTimeSeconds: 1}
	if _, err := client.ReceiveMessage(context.Background(), in); err == nil {
		t.Fatal("without the receive options the slow receive should time out (the bounds of a request path)")
	}
	requests.Store(0)
	if _, err := client.ReceiveMessage(context.Background(), in, ReceiveOptions(1)); err != nil {
		t.Fatalf("receive with ReceiveOptions: %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d receive requests, want 1 (no retry of a receive)", n)
	}
}
