package alerts_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
)

// flakySNS fails its first publishes: "lost" ones land (the subscriber gets
// them) but answer an error, as a publish whose answer timed out does;
// "down" ones do not land.
type flakySNS struct {
	mu          sync.Mutex
	lost, down  int
	delivered   []map[string]string // message attributes, as subscribers see them
	sdkAttempts []int
}

func (f *flakySNS) Publish(_ context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var o sns.Options
	for _, fn := range opts {
		fn(&o)
	}
	f.sdkAttempts = append(f.sdkAttempts, o.RetryMaxAttempts)
	if f.down > 0 {
		f.down--
		return nil, errors.New("sns unreachable (test)")
	}
	attrs := map[string]string{}
	for k, v := range in.MessageAttributes {
		attrs[k] = aws.ToString(v.StringValue)
	}
	f.delivered = append(f.delivered, attrs)
	if f.lost > 0 {
		f.lost--
		return nil, errors.New("context deadline exceeded (test)")
	}
	return &sns.PublishOutput{}, nil
}

// Findings 5 and 15: an alert whose publish fails is retried, in order,
// not dropped; a retry whose first attempt landed arrives twice, and the
// copies share one alert_id, so a subscriber counts each transition once.
// The SDK's own retries are off for Publish.
func TestAlertIsRetriedUntilPublishedAndCopiesShareTheirID(t *testing.T) {
	f := &flakySNS{lost: 1, down: 2}
	p := &alerts.Publisher{SNS: f, TopicARN: "arn:aws:sns:us-east-1:000000000000:alerts", RetryWait: time.Millisecond}
	at := time.Now()
	p.Notify(context.Background(), breaker.Event{Breaker: "http://kc", From: breaker.StateClosed, To: breaker.StateOpen, Generation: 7, At: at})
	p.Notify(context.Background(), breaker.Event{Breaker: "http://kc", From: breaker.StateHalfOpen, To: breaker.StateClosed, Generation: 9, At: at, OpenedAt: at})
	p.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids, events []string
	distinct := map[string]bool{}
	for _, a := range f.delivered {
		ids = append(ids, a["alert_id"])
		events = append(events, a["event"])
		distinct[a["alert_id"]] = true
	}
	// The open: lost answer (delivered), then SNS down twice, then the retry
	// that succeeds (delivered again). Then the close.
	if len(f.delivered) != 3 || ids[0] != "http://kc#7" || ids[1] != "http://kc#7" || ids[2] != "http://kc#9" {
		t.Fatalf("delivered %v (%v), want the open twice under one id, then the close", ids, events)
	}
	if len(distinct) != 2 || events[0] != alerts.Opened || events[2] != alerts.Closed {
		t.Fatalf("distinct alerts %v, events %v: want one opened, then one closed", distinct, events)
	}
	for i, n := range f.sdkAttempts {
		if n != 1 {
			t.Fatalf("publish %d allowed %d SDK attempts, want 1 (our retries are the only ones)", i, n)
		}
	}
}

// A publish that never succeeds is given up after Attempts.
func TestAlertRetriesAreBounded(t *testing.T) {
	f := &flakySNS{down: 100}
	p := &alerts.Publisher{SNS: f, TopicARN: "arn:aws:sns:us-east-1:000000000000:alerts", RetryWait: time.Millisecond, Attempts: 4}
	p.Notify(context.Background(), breaker.Event{Breaker: "http://kc", From: breaker.StateClosed, To: breaker.StateOpen, Generation: 2})
	p.Wait()
	if n := len(f.sdkAttempts); n != 4 {
		t.Fatalf("%d publishes, want 4", n)
	}
}
