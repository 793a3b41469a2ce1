package journal

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Names in the journal table.
const (
	// IndexByStatus lists one status's entries by last change: what is
	// pending, counts, and the purge, without a scan.
	IndexByStatus = schema.JournalByStatus
	// TTLAttribute holds the epoch second an entry's retention ends.
	TTLAttribute = schema.TTL
)

// Table describes the journal table (schema.Journal).
func Table(name string) schema.Table { return schema.Journal.Named(name) }

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
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
	Status    string `dynamodbav:"status"`
	StatusAt  string `dynamodbav:"status_at"`
	JobID     string `dynamodbav:"job_id"`
	Type      string `dynamodbav:"type,omitempty"`
	Package   string `dynamodbav:"pkg"`
	Username  string `dynamodbav:"username"`
	Version   int64  `dynamodbav:"version"`
	CreatedAt string `dynamodbav:"created_at"`
	UpdatedAt string `dynamodbav:"updated_at"`
	Reason    string `dynamodbav:"reason,omitempty"`
	Conflict  string `dynamodbav:"conflict,omitempty"`
	TTL       int64  `dynamodbav:"ttl"`
}

func (it item) entry() (Entry, error) {
	created, err := time.Parse(ddbitem.SortableTime, it.CreatedAt)
	if err != nil {
		return Entry{}, fmt.Errorf("decode journal entry %s: %w", it.JobID, err)
	}
	updated, err := time.Parse(ddbitem.SortableTime, it.UpdatedAt)
	if err != nil {
		return Entry{}, fmt.Errorf("decode journal entry %s: %w", it.JobID, err)
	}
	return Entry{JobID: it.JobID, Type: it.Type, Package: it.Package, Username: it.Username, Version: it.Version,
		CreatedAt: created, Status: Status(it.Status), Reason: it.Reason, Conflict: it.Conflict, UpdatedAt: updated}, nil
}

// Record costs one conditional PutItem; a job whose entry is already final
// is left as it is (the condition fails and that is not an error).
func (d *Dynamo) Record(ctx context.Context, e Entry) error {
	e, pk, err := prepare(e)
	if err != nil {
		return err
	}
	av, err := attributevalue.MarshalMap(item{
		PK: pk, SK: jobKey(e), Status: string(e.Status), StatusAt: statusKey(e), JobID: e.JobID, Type: e.Type,
		Package: e.Package, Username: e.Username, Version: e.Version,
		CreatedAt: e.CreatedAt.Format(ddbitem.SortableTime), UpdatedAt: e.UpdatedAt.Format(ddbitem.SortableTime),
		Reason: e.Reason, Conflict: e.Conflict, TTL: e.UpdatedAt.Add(d.opts.retention).Unix(),
	})
	if err != nil {
		return fmt.Errorf("encode journal entry: %w", err)
	}
	_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &d.table, Item: av,
		ConditionExpression:      aws.String("attribute_not_exists(pk) OR NOT (#s IN (:applied, :superseded))"),
		ExpressionAttributeNames: map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":applied": ddbitem.S(string(Applied)), ":superseded": ddbitem.S(string(Superseded)),
		},
	})
	var cf *types.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record journal entry %s %s: %w", e.JobID, e.Status, err)
	}
	return nil
}

func decodeItems(items []map[string]types.AttributeValue) ([]Entry, error) {
	out := []Entry{}
	for _, av := range items {
		var it item
		if err := attributevalue.UnmarshalMap(av, &it); err != nil {
			return nil, fmt.Errorf("decode journal entry: %w", err)
		}
		e, err := it.entry()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ListByUser costs one Query.
func (d *Dynamo) ListByUser(ctx context.Context, pkg, username string, limit int) ([]Entry, error) {
	_, pk, err := prepare(Entry{Package: pkg, Username: username, JobID: "-", CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(1, 0), Status: Pending})
	if err != nil {
		return nil, err
	}
	out, err := d.db.Query(ctx, &dynamodb.QueryInput{
		TableName: &d.table, KeyConditionExpression: aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": ddbitem.S(pk)},
		ScanIndexForward:          aws.Bool(false), Limit: aws.Int32(int32(limitOrDefault(limit))),
	})
	if err != nil {
		return nil, fmt.Errorf("list journal of %s: %w", pk, err)
	}
	return decodeItems(out.Items)
}

// statusQuery is a Query of the status index, optionally below a status_at.
func (d *Dynamo) statusQuery(st Status, before string) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName: &d.table, IndexName: aws.String(IndexByStatus),
		KeyConditionExpression:    aws.String("#s = :s"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": ddbitem.S(string(st))},
	}
	if before != "" {
		in.KeyConditionExpression = aws.String("#s = :s AND status_at < :before")
		in.ExpressionAttributeValues[":before"] = ddbitem.S(before)
	}
	return in
}

// ListByStatus costs one Query per page.
func (d *Dynamo) ListByStatus(ctx context.Context, st Status, limit int, cursor string) ([]Entry, string, error) {
	in := d.statusQuery(st, "")
	in.Limit = aws.Int32(int32(limitOrDefault(limit)))
	if cursor != "" {
		start, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		in.ExclusiveStartKey = start
	}
	out, err := d.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list %s journal entries: %w", st, err)
	}
	entries, err := decodeItems(out.Items)
	if err != nil {
		return nil, "", err
	}
	return entries, encodeCursor(out.LastEvaluatedKey), nil
}

// Count costs one Query (Select COUNT) per megabyte of index.
func (d *Dynamo) Count(ctx context.Context, st Status) (int, error) {
	in := d.statusQuery(st, "")
	in.Select = types.SelectCount
	n := 0
	for {
		out, err := d.db.Query(ctx, in)
		if err != nil {
			return n, fmt.Errorf("count %s journal entries: %w", st, err)
		}
		n += int(out.Count)
		if out.LastEvaluatedKey == nil {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Purge Queries the status index for entries last changed before before
// and deletes them one DeleteItem each (DynamoDB's TTL does the same in
// AWS, lazily; this is for operators and for moto, which has no TTL).
func (d *Dynamo) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	cut := before.UTC().Format(ddbitem.SortableTime)
	n := 0
	for _, st := range Statuses {
		in := d.statusQuery(st, cut)
		in.ProjectionExpression = aws.String("pk, sk")
		for {
			if limit > 0 {
				in.Limit = aws.Int32(int32(min(100, limit-n)))
				if limit-n <= 0 {
					return n, nil
				}
			}
			out, err := d.db.Query(ctx, in)
			if err != nil {
				return n, fmt.Errorf("purge %s journal entries: %w", st, err)
			}
			for _, key := range out.Items {
				if _, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &d.table,
					Key: map[string]types.AttributeValue{"pk": key["pk"], "sk": key["sk"]}}); err != nil {
					return n, fmt.Errorf("purge journal entry: %w", err)
				}
				n++
			}
			if out.LastEvaluatedKey == nil {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return n, nil
}

// Cursors carry a LastEvaluatedKey (all string attributes) as base64url JSON.
func encodeCursor(key map[string]types.AttributeValue) string {
	if key == nil {
		return ""
	}
	m := map[string]string{}
	for k, v := range key {
		if sv, ok := v.(*types.AttributeValueMemberS); ok {
			m[k] = sv.Value
		}
	}
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string) (map[string]types.AttributeValue, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	var m map[string]string
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: bad cursor: %w", err)
	}
	key := map[string]types.AttributeValue{}
	for k, v := range m {
		key[k] = ddbitem.S(v)
	}
	return key, nil
}
