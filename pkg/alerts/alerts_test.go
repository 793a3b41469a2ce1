package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
)

func TestAlertText(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	opened, ok := alerts.Of(breaker.Event{Breaker: "http://kc", From: breaker.StateClosed, To: breaker.StateOpen,
		At: at, Reason: "3 consecutive failures", Failures: 3, NextProbe: at.Add(time.Minute)}, 0, nil)
	if !ok || opened.Severity != "warning" || opened.Kind != alerts.Opened {
		t.Fatalf("opened: %+v %v", opened, ok)
	}
	for _, want := range []string{"3 consecutive failures", "consecutive failures: 3", "kcguard breaker status", "kcguard sync status", "10:01:00"} {
		if !strings.Contains(opened.Text, want) {
			t.Errorf("opened alert lacks %q:\n%s", want, opened.Text)
		}
	}
	closed, ok := alerts.Of(breaker.Event{Breaker: "http://kc", From: breaker.StateHalfOpen, To: breaker.StateClosed,
		At: at.Add(25 * time.Second), OpenedAt: at, Reason: "probe succeeded"}, 42, nil)
	if !ok || closed.Severity != "info" || closed.Kind != alerts.Closed {
		t.Fatalf("closed: %+v %v", closed, ok)
	}
	for _, want := range []string{"Outage: 25s", "42 queued changes", "kcguard sync status", "kcguard sync redrive"} {
		if !strings.Contains(closed.Text, want) {
			t.Errorf("closed alert lacks %q:\n%s", want, closed.Text)
		}
	}
	if c, _ := alerts.Of(breaker.Event{From: breaker.StateHalfOpen, To: breaker.StateClosed}, 0, errors.New("x")); !strings.Contains(c.Text, "unknown") {
		t.Errorf("a backlog that cannot be read is reported as unknown:\n%s", c.Text)
	}
	for _, quiet := range []breaker.Event{
		{From: breaker.StateOpen, To: breaker.StateHalfOpen},
		{From: breaker.StateHalfOpen, To: breaker.StateOpen},
	} {
		if a, ok := alerts.Of(quiet, 0, nil); ok {
			t.Errorf("%s>%s must not alert (flapping would page per probe): %+v", quiet.From, quiet.To, a)
		}
	}
}

// Several instances share one breaker in moto's DynamoDB, each with its
// own SNS publisher; an SQS queue subscribed to the topic counts what
// operators would receive. Two outages, the second with three failed
// probes (a flapping Keycloak): exactly one opened and one closed alert
// per outage.
func TestAlertsOncePerTransitionAcrossInstances(t *testing.T) {
	const instances = 4
	cfg := testenv.AWS(t)
	ctx := context.Background()
	topic, read := subscribedTopic(t, cfg)
	table := testenv.Table(t, cfg, breaker.Table("breaker"))
	store := breaker.NewDynamoStore(dynamodb.NewFromConfig(cfg), table)
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	name := testenv.Unique("http://kc")
	fleet := make([]*breaker.Breaker, instances)
	for i := range fleet {
		fleet[i] = breaker.New(store, breaker.Settings{
			Name: name, FailureThreshold: 3, Cooldown: time.Minute, MaxCooldown: 4 * time.Minute,
			StateCacheTTL: time.Second, Now: clock, Instance: fmt.Sprint("i", i), Logger: slog.New(slog.DiscardHandler),
			Notifier: &alerts.Publisher{SNS: sns.NewFromConfig(cfg), TopicARN: topic, Backlog: fixedBacklog(7)},
		})
	}
	down := errors.New("keycloak unreachable")
	// every instance calls at once, as long as its breaker lets it; the
	// outcome of each call is outcome.
	wave := func(outcome error) {
		advance(2 * time.Second) // past every instance's state cache
		var wg sync.WaitGroup
		for _, b := range fleet {
			for range 5 {
				wg.Go(func() {
					if done, err := b.Allow(ctx); err == nil {
						done(outcome)
					}
				})
			}
		}
		wg.Wait()
	}
	for outage, failedProbes := range []int{0, 3} {
		for range 3 {
			wave(down)
		}
		if st, _ := fleet[0].Status(ctx); st.State != breaker.StateOpen {
			t.Fatalf("outage %d: breaker %s, want open", outage, st.State)
		}
		for range failedProbes {
			advance(5 * time.Minute)
			wave(down)
		}
		advance(5 * time.Minute)
		wave(nil)
		if st, _ := fleet[0].Status(ctx); st.State != breaker.StateClosed {
			t.Fatalf("outage %d: breaker %s after a good probe, want closed", outage, st.State)
		}
	}
	got := read(4)
	count := map[string]int{}
	for _, k := range got.kinds {
		count[k]++
	}
	if len(got.kinds) != 4 || count[alerts.Opened] != 2 || count[alerts.Closed] != 2 {
		t.Fatalf("alerts %v, want one opened and one closed per outage (2 outages)", got.kinds)
	}
	if !strings.Contains(strings.Join(got.texts, "\n"), "Outage: 20m") || !strings.Contains(strings.Join(got.texts, "\n"), "7 queued changes") {
		t.Errorf("the second closed alert must give the outage (3 failed probes, 4 × 5m) and the backlog:\n%s", strings.Join(got.texts, "\n---\n"))
	}
}

type fixedBacklog int

func (n fixedBacklog) Depth(context.Context) (int, error) { return int(n), nil }

type received struct{ kinds, texts []string }

// subscribedTopic makes an SNS topic with an SQS queue subscribed to it;
// read waits (up to 20s) for n messages, then a little longer for extras.
func subscribedTopic(t *testing.T, cfg aws.Config) (string, func(n int) received) {
	t.Helper()
	ctx := context.Background()
	sn, sq := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	name := testenv.Unique("replay-alerts")
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sn.DeleteTopic(context.Background(), &sns.DeleteTopicInput{TopicArn: topic.TopicArn}) })
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sq.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(topic.TopicArn), func(n int) received {
		var r received
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			wait := int32(1)
			if len(r.kinds) >= n {
				wait = 2 // one more look for alerts that should not exist
				deadline = time.Now()
			}
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var env struct {
					Message           string
					MessageAttributes map[string]struct{ Value string }
				}
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil {
					t.Fatalf("not an SNS envelope: %v", err)
				}
				r.kinds = append(r.kinds, env.MessageAttributes["event"].Value)
				r.texts = append(r.texts, env.Message)
				_, _ = sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
			}
		}
		return r
	}
}
