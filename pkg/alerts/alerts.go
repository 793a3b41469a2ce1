// Package alerts tells operators about breaker transitions through an SNS
// topic (alerts.topic_arn). Only the instance that won a transition is
// notified (pkg/breaker), so each transition is published once however
// many instances saw the outage; and only the two transitions an operator
// acts on are published: opened (from closed) and closed. A probe, or a
// failed probe re-opening the breaker, is logged, not published: a flapping
// Keycloak costs one opened and one closed alert per outage, not one per
// probe.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/kcguard/kcguard/pkg/breaker"
)

// SNSAPI is the part of the SNS client alerts use.
type SNSAPI interface {
	Publish(context.Context, *sns.PublishInput, ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// Backlog reports what waits for Keycloak when the breaker closes.
type Backlog interface {
	// Depth is the sync queue's waiting plus in-flight messages.
	Depth(ctx context.Context) (int, error)
}

// Publisher publishes breaker alerts to one SNS topic.
//
// Delivery is at least once, with an idempotency key: a publish that fails
// (SNS or the network down when the breaker closes) is retried in the
// background, in order, up to Attempts times, so the alert is not lost;
// and since a retried publish whose first answer was lost arrives twice
// (SNS standard topics do not deduplicate, and FIFO topics cannot deliver
// to email or SMS), every message carries "alert_id" (breaker#generation
// of the transition) and "generation": subscribers count transitions by
// it. The SDK's own retries are off for Publish, so each attempt is one
// message at most and the retries here are the only ones.
type Publisher struct {
	SNS      SNSAPI
	TopicARN string
	// Backlog, if set, is reported in the closed alert.
	Backlog Backlog
	Log     *slog.Logger
	// Attempts bounds the publishes of one alert. Default 8.
	Attempts int
	// RetryWait is the first wait between attempts, doubled each time up to
	// 30s. Default 1s (8 attempts span about two minutes).
	RetryWait time.Duration

	once   sync.Once
	outbox chan outgoing
	wg     sync.WaitGroup
	raised atomic.Uint64
}

type outgoing struct {
	ctx context.Context
	in  *sns.PublishInput
	a   Alert
	gen uint64
}

var _ breaker.Notifier = (*Publisher)(nil)

// Kinds of alert, also the "event" message attribute.
const (
	Opened = "breaker_opened"
	Closed = "breaker_closed"
)

// Alert is one message for operators.
type Alert struct {
	Kind, Severity, Subject, Text string
}

// Of returns the alert for a transition, and false for transitions that
// are not alerted (probes, re-opens after a failed probe).
func Of(ev breaker.Event, backlog int, backlogErr error) (Alert, bool) {
	switch {
	case ev.To == breaker.StateOpen && ev.From == breaker.StateClosed:
		var b strings.Builder
		fmt.Fprintf(&b, "kcguard's circuit breaker for Keycloak %s opened at %s.\n", ev.Breaker, ev.At.UTC().Format(time.RFC3339))
		fmt.Fprintf(&b, "Reason: %s (consecutive failures: %d).\n", ev.Reason, ev.Failures)
		if !ev.NextProbe.IsZero() {
			fmt.Fprintf(&b, "First probe: %s.\n", ev.NextProbe.UTC().Format(time.RFC3339))
		}
		b.WriteString("\nLogins continue on the local tier (auth_mode cached or local); password changes are stored\n" +
			"and queued; the sync worker is paused, so no queued change is dead-lettered by the outage.\n" +
			"\nWhat to do:\n" +
			"  kcguard breaker status   # state, failures, next probe\n" +
			"  kcguard sync status      # queue, DLQ and users waiting for Keycloak\n" +
			"  check Keycloak itself; the breaker closes by itself after a successful probe.\n" +
			"  kcguard breaker open     # keep Keycloak out of the login path (maintenance)\n")
		return Alert{Kind: Opened, Severity: "warning", Subject: "kcguard: Keycloak unreachable, breaker opened", Text: b.String()}, true
	case ev.To == breaker.StateClosed && ev.From != breaker.StateClosed:
		var b strings.Builder
		fmt.Fprintf(&b, "kcguard's circuit breaker for Keycloak %s closed at %s (%s).\n", ev.Breaker, ev.At.UTC().Format(time.RFC3339), ev.Reason)
		if !ev.OpenedAt.IsZero() {
			fmt.Fprintf(&b, "Outage: %s (opened %s).\n", ev.At.Sub(ev.OpenedAt).Round(time.Second), ev.OpenedAt.UTC().Format(time.RFC3339))
		}
		switch {
		case backlogErr != nil:
			b.WriteString("Backlog: unknown (the sync queue did not answer).\n")
		default:
			fmt.Fprintf(&b, "Backlog replaying now: %d queued changes; unsynced users are re-queued by reconciliation.\n", backlog)
		}
		b.WriteString("\nNothing to do. To watch the replay:\n" +
			"  kcguard sync status      # the queue drains; users waiting for Keycloak go to 0\n" +
			"If the DLQ is not empty afterwards, those jobs are poison (malformed or refused by Keycloak):\n" +
			"  kcguard sync status      # shows the failed jobs and why\n" +
			"  kcguard sync redrive     # after fixing their cause\n")
		return Alert{Kind: Closed, Severity: "info", Subject: "kcguard: Keycloak back, breaker closed", Text: b.String()}, true
	}
	return Alert{}, false
}

// Notify implements breaker.Notifier: it publishes the transition's alert,
// if it has one. A failed publish is logged; it never fails the caller.
func (p *Publisher) Notify(ctx context.Context, ev breaker.Event) {
	backlog, backlogErr := 0, error(nil)
	if ev.To == breaker.StateClosed && p.Backlog != nil {
		backlog, backlogErr = p.Backlog.Depth(ctx)
	}
	a, ok := Of(ev, backlog, backlogErr)
	if !ok || p.TopicARN == "" {
		return
	}
	in := &sns.PublishInput{
		TopicArn: aws.String(p.TopicARN), Subject: aws.String(a.Subject), Message: aws.String(a.Text),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"event":      {DataType: aws.String("String"), StringValue: aws.String(a.Kind)},
			"severity":   {DataType: aws.String("String"), StringValue: aws.String(a.Severity)},
			"breaker":    {DataType: aws.String("String"), StringValue: aws.String(ev.Breaker)},
			"generation": {DataType: aws.String("Number"), StringValue: aws.String(strconv.FormatUint(ev.Generation, 10))},
			"alert_id":   {DataType: aws.String("String"), StringValue: aws.String(AlertID(ev))},
		},
	}
	p.once.Do(func() {
		p.outbox = make(chan outgoing, 64)
		go p.send()
	})
	p.wg.Add(1)
	p.raised.Add(1)
	select {
	case p.outbox <- outgoing{ctx: context.WithoutCancel(ctx), in: in, a: a, gen: ev.Generation}:
	default:
		p.wg.Done()
		p.log().ErrorContext(ctx, "breaker alert not published: too many alerts waiting", "event", a.Kind, "generation", ev.Generation)
	}
}

// Raised counts the alerts handed to Notify so far: a Lambda invocation
// compares it before and after to know whether it raised one.
func (p *Publisher) Raised() uint64 { return p.raised.Load() }

// AlertID is the idempotency key of a transition's alert: copies of one
// alert share it, and no two transitions have the same.
func AlertID(ev breaker.Event) string {
	return ev.Breaker + "#" + strconv.FormatUint(ev.Generation, 10)
}

// Wait blocks until every alert handed to Notify so far is published or
// given up (tests, and a process that is about to exit).
func (p *Publisher) Wait() { p.wg.Wait() }

// WaitFor is Wait for at most d; it reports whether every alert was done.
func (p *Publisher) WaitFor(d time.Duration) bool {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// send publishes the outbox in order, each alert with bounded retries.
func (p *Publisher) send() {
	for o := range p.outbox {
		p.publish(o)
		p.wg.Done()
	}
}

func (p *Publisher) publish(o outgoing) {
	attempts, wait := p.Attempts, p.RetryWait
	if attempts <= 0 {
		attempts = 8
	}
	if wait <= 0 {
		wait = time.Second
	}
	noSDKRetry := func(opt *sns.Options) { opt.RetryMaxAttempts = 1 }
	for n := 1; ; n++ {
		_, err := p.SNS.Publish(o.ctx, o.in, noSDKRetry)
		if err == nil {
			p.log().InfoContext(o.ctx, "breaker alert published", "event", o.a.Kind, "generation", o.gen, "attempt", n)
			return
		}
		if n >= attempts {
			p.log().ErrorContext(o.ctx, "breaker alert not published", "event", o.a.Kind, "generation", o.gen, "topic", p.TopicARN,
				"attempts", n, "err", err)
			return
		}
		p.log().WarnContext(o.ctx, "breaker alert publish failed; retrying", "event", o.a.Kind, "generation", o.gen, "attempt", n,
			"retry_in", wait.String(), "err", err)
		time.Sleep(wait)
		wait = min(2*wait, 30*time.Second)
	}
}

func (p *Publisher) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}
