package syncjob

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSQueue is the SQS adapter of the sync: every SQS call the sync, its
// worker and its operators make is made here (creating the queues is
// pkg/provision's). One FIFO queue, one message group per user; the DLQ is
// an SQSQueue too.
type SQSQueue struct {
	client SQSAPI
	name   string

	mu  sync.Mutex
	url string
	arn string
}

var (
	_ Queue       = (*SQSQueue)(nil)
	_ DeadLetters = (*SQSQueue)(nil)
	_ Resender    = (*SQSQueue)(nil)
	_ Deferrer    = (*SQSQueue)(nil)
)

// NewSQSQueue sends to the queue called name. Its URL is looked up on the
// first send, not at start-up: most logins never queue anything, so a cold
// start should not pay for the lookup.
func NewSQSQueue(client SQSAPI, name string) *SQSQueue { return &SQSQueue{client: client, name: name} }

// URL resolves (once) and returns the queue URL.
func (q *SQSQueue) URL(ctx context.Context) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.url != "" {
		return q.url, nil
	}
	out, err := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &q.name})
	if err != nil {
		return "", fmt.Errorf("sync queue %s: %w", q.name, err)
	}
	q.url = aws.ToString(out.QueueUrl)
	return q.url, nil
}

// Enqueue implements Queue.
func (q *SQSQueue) Enqueue(ctx context.Context, j Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode sync job: %w", err)
	}
	if err := q.send(ctx, string(body), j.GroupID(), j.DeduplicationID(), nil); err != nil {
		return fmt.Errorf("send sync job %s: %w", j.ID, err)
	}
	return nil
}

// send sends one message to the queue.
func (q *SQSQueue) send(ctx context.Context, body, group, dedup string, attrs map[string]sqstypes.MessageAttributeValue) error {
	url, err := q.URL(ctx)
	if err != nil {
		return err
	}
	_, err = q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: &url, MessageBody: aws.String(body), MessageGroupId: aws.String(group),
		MessageDeduplicationId: aws.String(dedup), MessageAttributes: attrs,
	})
	return err
}

// Resend implements Resender: msg's body again as a new message of its
// group. Its deduplication id comes from the received message's id, so a
// retried Resend is still one message.
func (q *SQSQueue) Resend(ctx context.Context, msg events.SQSMessage) error {
	group := msg.Attributes["MessageGroupId"]
	if group == "" {
		return fmt.Errorf("resend sync job %s: no message group", msg.MessageId)
	}
	if err := q.send(ctx, msg.Body, group, fit("resend#"+msg.MessageId), nil); err != nil {
		return fmt.Errorf("resend sync job %s: %w", msg.MessageId, err)
	}
	return nil
}

// Depth is the queue's approximate number of waiting and in-flight messages.
func (q *SQSQueue) Depth(ctx context.Context) (waiting, inFlight int, err error) {
	url, err := q.URL(ctx)
	if err != nil {
		return 0, 0, err
	}
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		return 0, 0, fmt.Errorf("queue depth %s: %w", q.name, err)
	}
	waiting, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return waiting, inFlight, nil
}

// ARN resolves (once) and returns the queue ARN (to find the worker's event
// source mapping).
func (q *SQSQueue) ARN(ctx context.Context) (string, error) {
	q.mu.Lock()
	arn := q.arn
	q.mu.Unlock()
	if arn != "" {
		return arn, nil
	}
	url, err := q.URL(ctx)
	if err != nil {
		return "", err
	}
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queue arn %s: %w", q.name, err)
	}
	arn = out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	q.mu.Lock()
	q.arn = arn
	q.mu.Unlock()
	return arn, nil
}

// MaxVisibility is SQS's longest visibility timeout (12 hours).
const MaxVisibility = 12 * time.Hour

// Defer hides a received message for d (ChangeMessageVisibility): it comes
// back then, without counting as a failure of its own; only the receive
// that got it counted toward maxReceiveCount.
func (q *SQSQueue) Defer(ctx context.Context, receiptHandle string, d time.Duration) error {
	url, err := q.URL(ctx)
	if err != nil {
		return err
	}
	secs := int32(min(max(d, time.Second), MaxVisibility).Round(time.Second) / time.Second)
	_, err = q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url,
		ReceiptHandle: aws.String(receiptHandle), VisibilityTimeout: secs})
	if err != nil {
		return fmt.Errorf("defer sync job on %s: %w", q.name, err)
	}
	return nil
}

// DeadLetter implements DeadLetters on the dead-letter queue: msg's body
// with the reason and receive count as message attributes.
func (q *SQSQueue) DeadLetter(ctx context.Context, msg events.SQSMessage, reason string) error {
	group := msg.Attributes["MessageGroupId"]
	if group == "" {
		group = "unknown"
	}
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	return q.send(ctx, msg.Body, group, fit("dlq#"+msg.MessageId), map[string]sqstypes.MessageAttributeValue{
		"reason":        {DataType: aws.String("String"), StringValue: aws.String(reason)},
		"receive_count": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(receiveCount(msg)))},
	})
}

// Receive takes up to 10 visible messages, waiting up to wait seconds for
// the first, as the event source mapping hands them to the worker (with
// their system attributes: message group, receive count).
func (q *SQSQueue) Receive(ctx context.Context, wait int32, opts ...func(*sqs.Options)) ([]events.SQSMessage, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return nil, err
	}
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	}, opts...)
	if err != nil {
		return nil, err
	}
	msgs := make([]events.SQSMessage, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Attributes: m.Attributes, EventSource: "aws:sqs",
		})
	}
	return msgs, nil
}

// Acknowledge deletes received messages (one call for up to 10).
func (q *SQSQueue) Acknowledge(ctx context.Context, msgs []events.SQSMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	url, err := q.URL(ctx)
	if err != nil {
		return err
	}
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, 0, len(msgs))
	for _, m := range msgs {
		entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(m.MessageId), ReceiptHandle: aws.String(m.ReceiptHandle)})
	}
	_, err = q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: entries})
	return err
}

// RedriveTo moves the messages of this queue (the DLQ) back to the sync
// queue to, each in its user's message group, and returns how many it moved.
// A message is deleted here only once it is sent there.
func (q *SQSQueue) RedriveTo(ctx context.Context, to *SQSQueue) (int, error) {
	url, err := q.URL(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := to.URL(ctx); err != nil {
		return 0, err
	}
	moved := 0
	for {
		msgs, err := q.Receive(ctx, 0)
		if err != nil || len(msgs) == 0 {
			return moved, err
		}
		for _, m := range msgs {
			if err := to.send(ctx, m.Body, m.Attributes["MessageGroupId"], "redrive-"+m.MessageId, nil); err != nil {
				return moved, err
			}
			if _, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: aws.String(m.ReceiptHandle)}); err != nil {
				return moved, err
			}
			moved++
		}
	}
}
