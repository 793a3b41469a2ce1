package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// TTLAttribute holds the epoch second an event's retention ends.
const TTLAttribute = schema.TTL

// IndexByPackageHour lists a package's events hour by hour: partition
// pkg_hour "<package>#<UTC hour>", sort key sk. Hour partitions keep a busy
// package's writes spread and let a per-package report read only the hours
// it covers.
const IndexByPackageHour = schema.AuditByPackageHour

// Table describes the audit table (schema.Audit).
func Table(name string) schema.Table { return schema.Audit.Named(name) }

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Dynamo is the DynamoDB Store.
type Dynamo struct {
	db    DynamoDB
	table string
	opts  options
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns a store over table (shaped by Table).
func NewDynamo(db DynamoDB, table string, opts ...Option) *Dynamo {
	return &Dynamo{db: db, table: table, opts: buildOptions(opts)}
}

type item struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	ID        string `dynamodbav:"id"`
	Package   string `dynamodbav:"pkg"`
	Username  string `dynamodbav:"username"`
	Action    string `dynamodbav:"action"`
	AuthMode  string `dynamodbav:"auth_mode,omitempty"`
	Outcome   string `dynamodbav:"outcome"`
	SourceIP  string `dynamodbav:"source_ip,omitempty"`
	UserAgent string `dynamodbav:"user_agent,omitempty"`
	At        string `dynamodbav:"at"`
	RequestID string `dynamodbav:"request_id,omitempty"`
	PkgHour   string `dynamodbav:"pkg_hour"`
	TTL       int64  `dynamodbav:"ttl"`
}

// Record costs one PutItem.
func (d *Dynamo) Record(ctx context.Context, e Event) error {
	av, err := d.item(e)
	if err != nil {
		return err
	}
	if _, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &d.table, Item: av}); err != nil {
		return fmt.Errorf("record audit event %s: %w", e.Action, err)
	}
	return nil
}

// RecordTx builds the put Record would send, for a caller that writes all
// of a login's changes in one TransactWriteItems.
func (d *Dynamo) RecordTx(e Event) (types.TransactWriteItem, error) {
	av, err := d.item(e)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(d.table), Item: av}}, nil
}

func (d *Dynamo) item(e Event) (map[string]types.AttributeValue, error) {
	e, pk, err := prepare(e)
	if err != nil {
		return nil, err
	}
	av, err := attributevalue.MarshalMap(item{
		PK: pk, SK: sortKey(e), ID: e.ID, Package: e.Package, Username: e.Username,
		Action: string(e.Action), AuthMode: e.AuthMode, Outcome: string(e.Outcome),
		SourceIP: e.SourceIP, UserAgent: e.UserAgent, At: e.At.Format(ddbitem.SortableTime), RequestID: e.RequestID,
		PkgHour: packageHour(e.Package, e.At), TTL: e.At.Add(d.opts.retention).Unix(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode audit event: %w", err)
	}
	return av, nil
}

// ListByUser costs one Query (newest first, Limit pushed down).
func (d *Dynamo) ListByUser(ctx context.Context, pkg, username string, limit int) ([]Event, error) {
	pk, err := userKey(pkg, username)
	if err != nil {
		return nil, err
	}
	out, err := d.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &d.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limitOrDefault(limit))),
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events of %s: %w", pk, err)
	}
	events := []Event{}
	for _, av := range out.Items {
		e, err := decode(av)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

func decode(av map[string]types.AttributeValue) (Event, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Event{}, fmt.Errorf("decode audit event: %w", err)
	}
	at, err := time.Parse(ddbitem.SortableTime, it.At)
	if err != nil {
		return Event{}, fmt.Errorf("decode audit event %s: %w", it.ID, err)
	}
	return Event{
		ID: it.ID, Package: it.Package, Username: it.Username, Action: Action(it.Action), AuthMode: it.AuthMode,
		Outcome: Outcome(it.Outcome), SourceIP: it.SourceIP, UserAgent: it.UserAgent, At: at, RequestID: it.RequestID,
	}, nil
}

// ListByPackage costs one Query per hour in [from, to) (more for an hour
// holding over 1 MB of events): reads grow with the package's events in
// the range, never with the table.
func (d *Dynamo) ListByPackage(ctx context.Context, pkg string, from, to time.Time, each func(Event) error) error {
	lo, hi := from.UTC().Format(ddbitem.SortableTime), to.UTC().Format(ddbitem.SortableTime)
	for _, h := range hours(from, to) {
		in := &dynamodb.QueryInput{
			TableName:              &d.table,
			IndexName:              aws.String(IndexByPackageHour),
			KeyConditionExpression: aws.String("pkg_hour = :h AND sk BETWEEN :lo AND :hi"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":h":  &types.AttributeValueMemberS{Value: packageHour(pkg, h)},
				":lo": &types.AttributeValueMemberS{Value: lo}, ":hi": &types.AttributeValueMemberS{Value: hi},
			},
		}
		for {
			out, err := d.db.Query(ctx, in)
			if err != nil {
				return fmt.Errorf("list audit events of %s: %w", pkg, err)
			}
			for _, av := range out.Items {
				e, err := decode(av)
				if err != nil {
					return err
				}
				// BETWEEN is inclusive; [from, to) is not.
				if !e.At.Before(to) {
					continue
				}
				if err := each(e); err != nil {
					return err
				}
			}
			if out.LastEvaluatedKey == nil {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return nil
}
