package syncjob

import (
	"context"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// The ports of the sync: everything it needs from the outside, in one
// place. The first group is what the Applier, the Dispatcher, the Worker
// and reconciliation need; the second is the part of each AWS client the
// adapters of this package (sqs.go, cursor.go, mapping.go) call.

// KeycloakAdmin is what applying jobs needs from Keycloak.
type KeycloakAdmin interface {
	FindUser(ctx context.Context, pkg, username string) (keycloak.User, error)
	CreateUser(ctx context.Context, pkg string, spec keycloak.UserSpec) (string, error)
	UpdateUser(ctx context.Context, pkg, userID string, u keycloak.UserUpdate) error
	ImportPasswordHash(ctx context.Context, pkg, userID string, h credential.Hash) error
	PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error)
	LogoutUser(ctx context.Context, pkg, userID string) error
}

// Users is what applying jobs needs from the local credential store.
type Users interface {
	Get(ctx context.Context, key userkey.Key) (users.User, error)
	MarkSynced(ctx context.Context, key userkey.Key, version int64) (bool, error)
	SetKeycloakID(ctx context.Context, key userkey.Key, id string) error
}

// Unsynced lists users whose local version is ahead of Keycloak's.
type Unsynced interface {
	ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]users.User, string, error)
}

// Breaker is the circuit breaker guarding Keycloak.
type Breaker interface {
	Allow(ctx context.Context) (done func(error), err error)
}

// PollerBreaker is what Poller.Run needs from the breaker (breaker.Breaker).
type PollerBreaker interface {
	// Status reads the fleet's breaker state afresh.
	Status(ctx context.Context) (breaker.Status, error)
	Execute(ctx context.Context, fn func(context.Context) error) error
}

var _ PollerBreaker = (*breaker.Breaker)(nil)

// Queue accepts jobs for later delivery to Keycloak.
type Queue interface {
	Enqueue(ctx context.Context, j Job) error
}

// DeadLetters takes jobs that can never be applied (SQSQueue.DeadLetter).
type DeadLetters interface {
	DeadLetter(ctx context.Context, msg events.SQSMessage, reason string) error
}

// Resender sends a received message again as a new one (a fresh receive
// count), in its message group (SQSQueue.Resend).
type Resender interface {
	Resend(ctx context.Context, msg events.SQSMessage) error
}

// Deferrer hides a received message for a while (SQSQueue.Defer).
type Deferrer interface {
	Defer(ctx context.Context, receiptHandle string, d time.Duration) error
}

// Journal records what became of queued jobs. JobJournal writes it for
// the Worker and for JournaledQueue; Apply itself never does, so a sync
// made during a request costs no journal write.
type Journal interface {
	Record(ctx context.Context, e journal.Entry) error
}

// Cursors keeps, per package, where the last reconciliation pass stopped,
// so a bounded pass continues there instead of starting again from the
// first username: users it could not settle (still unsynced next time) can
// then never starve the ones after them.
type Cursors interface {
	Cursor(ctx context.Context, pkg string) (string, error)
	SetCursor(ctx context.Context, pkg, cursor string) error
}

// Pauser stops and restarts delivery of queued jobs to the worker.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	// Paused reports whether delivery is stopped (for the safety net).
	Paused(ctx context.Context) (bool, error)
}

// SQSAPI is the part of the SQS client the queue adapter uses.
type SQSAPI interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	DeleteMessageBatch(context.Context, *sqs.DeleteMessageBatchInput, ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// CursorAPI is the part of the DynamoDB client the cursors use.
type CursorAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// LambdaAPI is the part of the Lambda client that controls the worker's
// event source mapping.
type LambdaAPI interface {
	UpdateEventSourceMapping(context.Context, *lambda.UpdateEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.UpdateEventSourceMappingOutput, error)
	GetEventSourceMapping(context.Context, *lambda.GetEventSourceMappingInput, ...func(*lambda.Options)) (*lambda.GetEventSourceMappingOutput, error)
	ListEventSourceMappings(context.Context, *lambda.ListEventSourceMappingsInput, ...func(*lambda.Options)) (*lambda.ListEventSourceMappingsOutput, error)
}
