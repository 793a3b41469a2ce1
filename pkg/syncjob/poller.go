package syncjob

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ReceiveAPI is the part of the SQS client the poller uses.
type ReceiveAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Poller feeds the Worker from the queue the way Lambda's SQS event source
// does (batches, partial failures, failed records left to time out), for
// `kcguard sync now|run` and local use.
type Poller struct {
	Client ReceiveAPI
	Queue  *SQSQueue
	Worker *Worker
	// WaitSeconds is the long-poll wait (0–20).
	WaitSeconds int32
	// Parallel is how many batches Drain works on at once, as Lambda runs
	// several instances of the worker; 0 or 1 is one at a time. SQS FIFO
	// keeps a user's messages in one batch at a time whatever this is;
	// moto does not, so keep 1 against the local stack (overlapping jobs of
	// a user stay correct, versions decide, but cost extra Keycloak writes).
	Parallel int
}

// PollOnce receives one batch and processes it; received is 0 when the
// queue had nothing visible.
func (p *Poller) PollOnce(ctx context.Context) (received int, out Outcome, err error) {
	url, err := p.Queue.URL(ctx)
	if err != nil {
		return 0, out, err
	}
	msgs, err := p.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: p.WaitSeconds,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		return 0, out, fmt.Errorf("receive sync jobs: %w", err)
	}
	if len(msgs.Messages) == 0 {
		return 0, out, nil
	}
	ev := events.SQSEvent{}
	handles := map[string]string{}
	for _, m := range msgs.Messages {
		id := aws.ToString(m.MessageId)
		handles[id] = aws.ToString(m.ReceiptHandle)
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: id, ReceiptHandle: handles[id], Body: aws.ToString(m.Body), Attributes: m.Attributes,
			EventSource: "aws:sqs",
		})
	}
	resp, out := p.Worker.Process(ctx, ev)
	for _, f := range resp.BatchItemFailures {
		delete(handles, f.ItemIdentifier)
	}
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for id, h := range handles {
		entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(id), ReceiptHandle: aws.String(h)})
	}
	if len(entries) > 0 {
		if _, err := p.Client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			// Undeleted jobs come back and are superseded or re-applied: harmless.
			return len(msgs.Messages), out, fmt.Errorf("acknowledge sync jobs: %w", err)
		}
	}
	return len(msgs.Messages), out, nil
}

// Drain polls until the queue has nothing visible and returns the totals.
// Records that failed stay invisible for the visibility timeout, so a
// drain during an outage ends instead of spinning on them.
func (p *Poller) Drain(ctx context.Context) (Outcome, error) {
	var (
		total    Outcome
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for range max(1, p.Parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, out, err := p.PollOnce(ctx)
				mu.Lock()
				total.Applied += out.Applied
				total.Superseded += out.Superseded
				total.DeadLettered += out.DeadLettered
				total.Failed += out.Failed
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				if err != nil || n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	return total, firstErr
}
