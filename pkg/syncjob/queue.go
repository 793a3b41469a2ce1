package syncjob

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Queue accepts jobs for later delivery to Keycloak.
type Queue interface {
	Enqueue(ctx context.Context, j Job) error
}

// SQSAPI is the part of the SQS client the queue uses.
type SQSAPI interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
}

// SQSQueue sends jobs to an SQS FIFO queue, one message group per user.
type SQSQueue struct {
	client SQSAPI
	name   string

	mu  sync.Mutex
	url string
	arn string
}

var _ Queue = (*SQSQueue)(nil)

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
	url, err := q.URL(ctx)
	if err != nil {
		return err
	}
	_, err = q.client.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:               &url,
		MessageBody:            aws.String(string(body)),
		MessageGroupId:         aws.String(j.GroupID()),
		MessageDeduplicationId: aws.String(j.DeduplicationID()),
	})
	if err != nil {
		return fmt.Errorf("send sync job %s: %w", j.ID, err)
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
