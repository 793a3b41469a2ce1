package syncjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kcguard/kcguard/pkg/keycloak"
)

// DeadLetters takes jobs that can never be applied.
type DeadLetters interface {
	DeadLetter(ctx context.Context, msg events.SQSMessage, reason string) error
}

// Worker applies queued jobs. It is the SQS event handler of
// functions/syncworker and the engine of `kcguard sync now|run`.
type Worker struct {
	Applier *Applier
	Breaker Breaker
	DLQ     DeadLetters
	Log     *slog.Logger
}

// Outcome counts what one batch did.
type Outcome struct {
	Applied, Superseded, DeadLettered, Failed int
}

// HandleBatch applies an SQS batch and reports the records to retry. A
// failed record also fails the later records of its message group in the
// batch, so a user's changes are never applied out of order. A job that can
// never succeed (malformed, or refused by Keycloak validation) is moved to
// the DLQ and acknowledged, so it cannot block its group.
func (w *Worker) HandleBatch(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp, _ := w.Process(ctx, ev)
	return resp, nil
}

// Process is HandleBatch with counts.
func (w *Worker) Process(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, Outcome) {
	var (
		resp   events.SQSEventResponse
		out    Outcome
		failed = map[string]bool{}
	)
	for _, rec := range ev.Records {
		group := rec.Attributes["MessageGroupId"]
		if failed[group] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			out.Failed++
			continue
		}
		res, err := w.handle(ctx, rec)
		switch {
		case err != nil:
			failed[group] = true
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			out.Failed++
		case res == deadLettered:
			out.DeadLettered++
		case res == Superseded:
			out.Superseded++
		default:
			out.Applied++
		}
	}
	w.log().InfoContext(ctx, "sync batch", "records", len(ev.Records), "applied", out.Applied,
		"superseded", out.Superseded, "dead_lettered", out.DeadLettered, "failed", out.Failed)
	return resp, out
}

const deadLettered Result = "dead_lettered"

func (w *Worker) handle(ctx context.Context, rec events.SQSMessage) (Result, error) {
	job, err := Parse([]byte(rec.Body))
	if err != nil {
		return w.deadLetter(ctx, rec, err)
	}
	done, err := w.Breaker.Allow(ctx)
	if err != nil {
		// Fail fast: no Keycloak call while the fleet knows it is down.
		return "", err
	}
	res, err := w.Applier.Apply(ctx, job)
	done(err)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, ErrMalformed), errors.Is(err, keycloak.ErrRejected):
		return w.deadLetter(ctx, rec, err)
	default:
		w.log().WarnContext(ctx, "sync job failed; will retry", "job", job.ID, "type", job.Type,
			"package", job.Package, "username", job.Username, "version", job.Version, "err", err)
		return "", err
	}
}

func (w *Worker) deadLetter(ctx context.Context, rec events.SQSMessage, why error) (Result, error) {
	w.log().ErrorContext(ctx, "sync job dead-lettered", "event", "sync_dead_letter", "message", rec.MessageId,
		"group", rec.Attributes["MessageGroupId"], "reason", why.Error())
	if err := w.DLQ.DeadLetter(ctx, rec, why.Error()); err != nil {
		// Could not park it: retry it instead, the redrive policy will.
		return "", fmt.Errorf("dead-letter %s: %w", rec.MessageId, err)
	}
	return deadLettered, nil
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// SQSDeadLetters sends unusable jobs to the FIFO dead-letter queue with the
// reason as a message attribute.
type SQSDeadLetters struct{ Queue *SQSQueue }

// DeadLetter implements DeadLetters.
func (d SQSDeadLetters) DeadLetter(ctx context.Context, msg events.SQSMessage, reason string) error {
	url, err := d.Queue.URL(ctx)
	if err != nil {
		return err
	}
	group := msg.Attributes["MessageGroupId"]
	if group == "" {
		group = "unknown"
	}
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	_, err = d.Queue.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &url, MessageBody: aws.String(msg.Body),
		MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(fit("dlq#" + msg.MessageId)),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"reason":        {DataType: aws.String("String"), StringValue: aws.String(reason)},
			"receive_count": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(receiveCount(msg)))},
		},
	})
	return err
}

func receiveCount(msg events.SQSMessage) int {
	n, _ := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	return n
}
