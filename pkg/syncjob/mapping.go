package syncjob

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// EventSourceMapping is the sync worker's SQS event source mapping, found
// by UUID (sync.event_source_mapping) or else by function and queue: the
// worker cannot be given its own mapping's UUID without a CloudFormation
// cycle, so it looks it up once.
type EventSourceMapping struct {
	Client   LambdaAPI
	Function string // sync.worker_function
	Queue    *SQSQueue

	mu   sync.Mutex
	uuid string
}

var _ Pauser = (*EventSourceMapping)(nil)

// NewEventSourceMapping controls the mapping uuid (may be empty) of
// function on queue.
func NewEventSourceMapping(client LambdaAPI, function, uuid string, queue *SQSQueue) *EventSourceMapping {
	return &EventSourceMapping{Client: client, Function: function, Queue: queue, uuid: uuid}
}

// ErrNoMapping: the worker function has no event source mapping on the queue.
var ErrNoMapping = errors.New("no event source mapping")

// UUID finds (once) the mapping's UUID.
func (m *EventSourceMapping) UUID(ctx context.Context) (string, error) {
	m.mu.Lock()
	id := m.uuid
	m.mu.Unlock()
	if id != "" {
		return id, nil
	}
	arn, err := m.Queue.ARN(ctx)
	if err != nil {
		return "", err
	}
	out, err := m.Client.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{
		FunctionName: aws.String(m.Function), EventSourceArn: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("find event source mapping of %s: %w", m.Function, err)
	}
	if len(out.EventSourceMappings) == 0 {
		return "", fmt.Errorf("%w: function %s, queue %s", ErrNoMapping, m.Function, arn)
	}
	id = aws.ToString(out.EventSourceMappings[0].UUID)
	m.mu.Lock()
	m.uuid = id
	m.mu.Unlock()
	return id, nil
}

// Pause implements Pauser (UpdateEventSourceMapping Enabled=false).
func (m *EventSourceMapping) Pause(ctx context.Context) error { return m.set(ctx, false) }

// Resume implements Pauser (UpdateEventSourceMapping Enabled=true).
func (m *EventSourceMapping) Resume(ctx context.Context) error { return m.set(ctx, true) }

func (m *EventSourceMapping) set(ctx context.Context, on bool) error {
	id, err := m.UUID(ctx)
	if err != nil {
		return err
	}
	for {
		_, err := m.Client.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{
			UUID: aws.String(id), Enabled: aws.Bool(on)})
		var busy *lambdatypes.ResourceInUseException
		if !errors.As(err, &busy) {
			if err != nil {
				return fmt.Errorf("set event source mapping %s enabled=%v: %w", id, on, err)
			}
			return nil
		}
		// The previous change (a close right after an open) is still
		// being applied: try again until the caller's deadline.
		select {
		case <-ctx.Done():
			return fmt.Errorf("set event source mapping %s enabled=%v: still updating: %w", id, on, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Paused implements Pauser: the mapping is neither enabled nor enabling.
func (m *EventSourceMapping) Paused(ctx context.Context) (bool, error) {
	id, err := m.UUID(ctx)
	if err != nil {
		return false, err
	}
	out, err := m.Client.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: aws.String(id)})
	if err != nil {
		return false, fmt.Errorf("read event source mapping %s: %w", id, err)
	}
	switch aws.ToString(out.State) {
	case "Enabled", "Enabling", "Creating", "Updating":
		return false, nil
	}
	return true, nil
}
