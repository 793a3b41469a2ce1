package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sns"

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
	topic, read := testenv.AlertTopic(t, cfg)
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
	count, texts := map[string]int{}, ""
	for _, a := range got {
		count[a.Event]++
		texts += a.Text + "\n---\n"
	}
	if len(got) != 4 || count[alerts.Opened] != 2 || count[alerts.Closed] != 2 {
		t.Fatalf("alerts %v, want one opened and one closed per outage (2 outages)", count)
	}
	if !strings.Contains(texts, "Outage: 20m") || !strings.Contains(texts, "7 queued changes") {
		t.Errorf("the second closed alert must give the outage (3 failed probes, 4 × 5m) and the backlog:\n%s", texts)
	}
}

type fixedBacklog int

func (n fixedBacklog) Depth(context.Context) (int, error) { return int(n), nil }
