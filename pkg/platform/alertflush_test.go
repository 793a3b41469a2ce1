package platform

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// gatedSNS answers a publish once its gate opens; failing while down.
type gatedSNS struct {
	gate      chan struct{}
	down      atomic.Bool
	published atomic.Int32
}

func (s *gatedSNS) Publish(ctx context.Context, _ *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	<-s.gate
	if s.down.Load() {
		return nil, errors.New("sns unreachable (test)")
	}
	s.published.Add(1)
	return &sns.PublishOutput{}, nil
}

// A Lambda instance is frozen once its handler returns, so the alert an
// invocation raised (it won a breaker transition) goes out before the
// answer; the wait is bounded when SNS is down; and invocations that raised
// no alert never wait, not even while another's alert is pending.
func TestAnInvocationThatRaisedAnAlertAnswersAfterItsPublish(t *testing.T) {
	sns := &gatedSNS{gate: make(chan struct{})}
	pub := &alerts.Publisher{SNS: sns, TopicARN: "arn:aws:sns:us-east-1:000000000000:alerts", RetryWait: time.Second}
	gen := atomic.Uint64{}
	transition := flushingAlerts(pub, func(ctx context.Context, _ string) (string, error) {
		pub.Notify(ctx, breaker.Event{Breaker: "http://kc", From: breaker.StateClosed, To: breaker.StateOpen,
			Generation: gen.Add(1), At: time.Now()})
		return "answer", nil
	})
	plain := flushingAlerts(pub, func(context.Context, string) (string, error) { return "plain", nil })

	answered := make(chan string)
	go func() { out, _ := transition(context.Background(), "login"); answered <- out }()
	select {
	case <-answered:
		t.Fatal("answered while its alert was still unpublished")
	case <-time.After(100 * time.Millisecond):
	}
	// Meanwhile another invocation, which raised nothing, answers at once.
	start := time.Now()
	if out, err := plain(context.Background(), "login"); out != "plain" || err != nil {
		t.Fatalf("plain handler's answer changed: %q %v", out, err)
	}
	if took := time.Since(start); took >= AlertFlush/2 {
		t.Fatalf("an invocation that raised no alert waited %v for another's", took)
	}
	close(sns.gate)
	if out := <-answered; out != "answer" || sns.published.Load() != 1 {
		t.Fatalf("answer %q with %d alerts published, want the answer after the one alert", out, sns.published.Load())
	}

	// SNS down: the answer waits AlertFlush, not the publisher's retries
	// (1 s doubling, eight attempts: over a minute).
	sns.down.Store(true)
	start = time.Now()
	if out, _ := transition(context.Background(), "login"); out != "answer" {
		t.Fatalf("answer %q", out)
	}
	if took := time.Since(start); took < AlertFlush || took > AlertFlush+3*time.Second {
		t.Fatalf("a failing publish held the answer %v, want AlertFlush (%v)", took, AlertFlush)
	}
}
