package syncjob_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// The replay against moto's Lambda: the open transition disables the sync
// worker's event source mapping (found by function and queue, as the
// worker itself must), the close enables it, wakes the poller and starts a
// reconciliation; the safety net re-enables a mapping left disabled under
// a closed breaker.
func TestReplayPausesAndResumesTheEventSourceMapping(t *testing.T) {
	cfg := testenv.AWS(t)
	ctx := context.Background()
	lc := lambda.NewFromConfig(cfg)
	spec, _ := testenv.Queue(t, cfg, 5)
	queue := syncjob.NewSQSQueue(sqs.NewFromConfig(cfg), spec.Name)
	fn := workerFunction(t, lc, queue)

	m := syncjob.NewEventSourceMapping(lc, fn, "", queue)
	var woken, reconciled atomic.Int32
	reconcileDone := make(chan struct{})
	r := &syncjob.Replay{Pauser: m, Wake: func() { woken.Add(1) },
		Reconcile: func(context.Context) { reconciled.Add(1); close(reconcileDone) }}
	paused := func() bool {
		t.Helper()
		p, err := m.Paused(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if paused() {
		t.Fatal("a new mapping is enabled")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateClosed, To: breaker.StateOpen})
	if !paused() {
		t.Fatal("the open transition must disable the mapping")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateOpen, To: breaker.StateHalfOpen})
	if !paused() || woken.Load() != 0 {
		t.Fatal("a probe must not resume delivery")
	}
	r.Notify(ctx, breaker.Event{From: breaker.StateHalfOpen, To: breaker.StateClosed})
	select {
	case <-reconcileDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the close must start a reconciliation pass")
	}
	if paused() || woken.Load() != 1 || reconciled.Load() != 1 {
		t.Fatalf("the close must enable the mapping and wake the poller: paused %v, woken %d", paused(), woken.Load())
	}

	// Safety net: a mapping left disabled under a closed breaker.
	if err := m.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateClosed}); err != nil || got != "resumed" || paused() {
		t.Fatalf("safety net under a closed breaker: %q %v", got, err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateOpen}); err != nil || got != "paused" || !paused() {
		t.Fatalf("safety net under an open breaker: %q %v", got, err)
	}
	if got, err := syncjob.Ensure(ctx, m, breaker.Status{State: breaker.StateOpen}); err != nil || got != "" {
		t.Fatalf("nothing to fix: %q %v", got, err)
	}
}

// A record received while the breaker is open goes back until the next
// probe, with the rest of its group; it is reported failed (so not
// deleted) but costs no Keycloak call and no journal failure.
func TestWorkerDefersRecordsWhileOpen(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := &deferrals{}
	w := &syncjob.Worker{Breaker: openBreaker{}, Defer: d, Now: func() time.Time { return now },
		NextProbe: func(context.Context) time.Time { return now.Add(42 * time.Second) }, Applier: &syncjob.Applier{}}
	var ev events.SQSEvent
	for i, g := range []string{"p#alice", "p#alice", "p#bob"} {
		j := syncjob.New(syncjob.UpdateUser, "p", strings.TrimPrefix(g, "p#"), int64(i+1), now)
		body, _ := jsonOf(j)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: string(rune('a' + i)), ReceiptHandle: "rh-" + string(rune('a'+i)),
			Body: body, Attributes: map[string]string{"MessageGroupId": g}})
	}
	resp, out := w.Process(context.Background(), ev)
	if out.Deferred != 3 || out.Failed != 0 || len(resp.BatchItemFailures) != 3 {
		t.Fatalf("outcome %+v, failures %d", out, len(resp.BatchItemFailures))
	}
	for h, dur := range d.all() {
		if dur != 42*time.Second {
			t.Errorf("%s deferred %s, want until the next probe (42s)", h, dur)
		}
	}
	// Unknown next probe (forced open): the fallback.
	w.NextProbe = func(context.Context) time.Time { return time.Time{} }
	w.DeferFallback = 90 * time.Second
	d.reset()
	w.Process(context.Background(), events.SQSEvent{Records: ev.Records[:1]})
	if got := d.all()["rh-a"]; got != 90*time.Second {
		t.Fatalf("forced open: deferred %s, want the fallback 90s", got)
	}
	// A deferral that fails leaves a plain failure (visibility timeout).
	d.fail = true
	_, out = w.Process(context.Background(), events.SQSEvent{Records: ev.Records[:1]})
	if out.Failed != 1 || out.Deferred != 0 {
		t.Fatalf("failed deferral: %+v", out)
	}
}

type openBreaker struct{}

func (openBreaker) Allow(context.Context) (func(error), error) { return nil, breaker.ErrOpen }

type deferrals struct {
	fail bool
	m    map[string]time.Duration
}

func (d *deferrals) Defer(_ context.Context, h string, dur time.Duration) error {
	if d.fail {
		return errors.New("sqs down")
	}
	if d.m == nil {
		d.m = map[string]time.Duration{}
	}
	d.m[h] = dur
	return nil
}
func (d *deferrals) all() map[string]time.Duration { return d.m }
func (d *deferrals) reset()                        { d.m = nil }

// workerFunction creates a stand-in sync worker function in moto with an
// event source mapping on queue, all deleted when the test ends.
func workerFunction(t *testing.T, lc *lambda.Client, queue *syncjob.SQSQueue) string {
	t.Helper()
	ctx := context.Background()
	name := testenv.Unique("replay-syncworker")
	role := motoRole(t, name)
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	f, _ := zw.Create("bootstrap")
	_, _ = f.Write([]byte("#!/bin/sh\n"))
	_ = zw.Close()
	if _, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: &name, Role: &role,
		Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Code: &lambdatypes.FunctionCode{ZipFile: zipped.Bytes()}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = lc.DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: &name})
	})
	arn, err := queue.ARN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	esm, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: &name,
		EventSourceArn: &arn, BatchSize: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = lc.DeleteEventSourceMapping(context.Background(), &lambda.DeleteEventSourceMappingInput{UUID: esm.UUID})
	})
	return name
}

// motoRole creates an IAM role in moto (moto's Lambda wants one that
// exists) with a plain query-API call: the project needs no IAM client.
func motoRole(t *testing.T, name string) string {
	t.Helper()
	form := url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {name},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`}}
	req, _ := http.NewRequest("POST", testenv.MotoEndpoint+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create role in moto: %s", resp.Status)
	}
	return "arn:aws:iam::123456789012:role/" + name
}
