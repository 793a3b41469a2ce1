package breaker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Attribute names of the breaker item. One item per breaker, keyed by the
// breaker's name (the Keycloak server URL).
const (
	attrKey         = "pk"
	attrState       = "state"
	attrGeneration  = "gen"
	attrSince       = "since_ms"
	attrFailures    = "failures"
	attrOpenUntil   = "open_until_ms"
	attrReopens     = "reopens"
	attrLeaseUntil  = "lease_until_ms"
	attrLeaseHolder = "lease_holder"
	attrForced      = "forced"
	attrReason      = "reason"
	attrOpenedAt    = "opened_ms" // optional: absent in records written before it existed
)

// Table describes the breaker-state table; `kcguard config fix` creates it.
// No TTL: a breaker item must outlive any outage.
func Table(name string) schema.Table { return schema.Breaker.Named(name) }

// DynamoDB is the part of the DynamoDB client the store uses. Taking an
// interface (not *dynamodb.Client) lets tests count round trips.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// DynamoStore is the Store every Lambda instance shares.
type DynamoStore struct {
	db    DynamoDB
	table string
}

var _ Store = (*DynamoStore)(nil)

// NewDynamoStore returns a Store on the given table (shaped like Table).
func NewDynamoStore(db DynamoDB, table string) *DynamoStore {
	return &DynamoStore{db: db, table: table}
}

func (d *DynamoStore) key(name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: &types.AttributeValueMemberS{Value: name}}
}

// Get implements Store.
func (d *DynamoStore) Get(ctx context.Context, name string) (Record, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &d.table, Key: d.key(name),
		// Transitions made by other instances must be seen at once.
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Record{}, fmt.Errorf("get breaker %s: %w", name, err)
	}
	if len(out.Item) == 0 {
		return Record{}, ErrNotFound
	}
	return decodeRecord(out.Item)
}

// Swap implements Store.
func (d *DynamoStore) Swap(ctx context.Context, name string, expect uint64, next Record) error {
	item := encodeRecord(next)
	item[attrKey] = &types.AttributeValueMemberS{Value: name}
	in := &dynamodb.PutItemInput{TableName: &d.table, Item: item,
		ExpressionAttributeNames: map[string]string{"#g": attrGeneration}}
	if expect == 0 {
		// Absent, or corrupt with no readable generation (missing, zero or
		// not a number): the caller read it as "nothing usable".
		in.ConditionExpression = aws.String("attribute_not_exists(#g) OR NOT attribute_type(#g, :n) OR #g = :zero")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":n": &types.AttributeValueMemberS{Value: "N"}, ":zero": ddbitem.N(0),
		}
	} else {
		in.ConditionExpression = aws.String("#g = :g")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":g": ddbitem.N(int64(expect))}
	}
	if _, err := d.db.PutItem(ctx, in); err != nil {
		return conditional(fmt.Sprintf("swap breaker %s", name), err)
	}
	return nil
}

// AddFailure implements Store.
func (d *DynamoStore) AddFailure(ctx context.Context, name string, gen uint64) (Record, error) {
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &d.table, Key: d.key(name),
		UpdateExpression:         aws.String("ADD #f :one"),
		ConditionExpression:      aws.String("#g = :g AND #s = :closed"),
		ExpressionAttributeNames: map[string]string{"#f": attrFailures, "#g": attrGeneration, "#s": attrState},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": ddbitem.N(1), ":g": ddbitem.N(int64(gen)), ":closed": &types.AttributeValueMemberS{Value: string(StateClosed)},
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return Record{}, conditional(fmt.Sprintf("count failure on breaker %s", name), err)
	}
	return decodeRecord(out.Attributes)
}

// ClearFailures implements Store.
func (d *DynamoStore) ClearFailures(ctx context.Context, name string, gen uint64) error {
	_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &d.table, Key: d.key(name),
		UpdateExpression:         aws.String("SET #f = :zero"),
		ConditionExpression:      aws.String("#g = :g AND #s = :closed"),
		ExpressionAttributeNames: map[string]string{"#f": attrFailures, "#g": attrGeneration, "#s": attrState},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":zero": ddbitem.N(0), ":g": ddbitem.N(int64(gen)), ":closed": &types.AttributeValueMemberS{Value: string(StateClosed)},
		},
	})
	if err != nil {
		return conditional(fmt.Sprintf("clear failures on breaker %s", name), err)
	}
	return nil
}

func conditional(what string, err error) error {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func ms(t time.Time) types.AttributeValue {
	if t.IsZero() {
		return ddbitem.N(0)
	}
	return ddbitem.N(t.UnixMilli())
}

func encodeRecord(r Record) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrState:      &types.AttributeValueMemberS{Value: string(r.State)},
		attrGeneration: ddbitem.N(int64(r.Generation)),
		attrSince:      ms(r.Since),
		attrFailures:   ddbitem.N(int64(r.Failures)),
		attrOpenUntil:  ms(r.OpenUntil),
		attrReopens:    ddbitem.N(int64(r.Reopens)),
		attrLeaseUntil: ms(r.LeaseUntil),
		attrForced:     &types.AttributeValueMemberBOOL{Value: r.Forced},
	}
	// DynamoDB rejects empty strings in non-key attributes on some paths;
	// absent means empty.
	if r.LeaseHolder != "" {
		item[attrLeaseHolder] = &types.AttributeValueMemberS{Value: r.LeaseHolder}
	}
	if r.Reason != "" {
		item[attrReason] = &types.AttributeValueMemberS{Value: r.Reason}
	}
	if !r.OpenedAt.IsZero() {
		item[attrOpenedAt] = ms(r.OpenedAt)
	}
	return item
}

// decodeRecord is strict: an item that does not read back exactly is
// ErrCorrupt, and the breaker recreates it closed rather than guessing.
func decodeRecord(item map[string]types.AttributeValue) (Record, error) {
	var r Record
	var bad []string
	getN := func(attr string) int64 {
		v, ok := item[attr].(*types.AttributeValueMemberN)
		if !ok {
			bad = append(bad, attr)
			return 0
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil || n < 0 {
			bad = append(bad, attr)
			return 0
		}
		return n
	}
	getT := func(attr string) time.Time {
		if n := getN(attr); n > 0 {
			return time.UnixMilli(n)
		}
		return time.Time{}
	}
	getS := func(attr string) string {
		v, ok := item[attr].(*types.AttributeValueMemberS)
		if !ok {
			return ""
		}
		return v.Value
	}
	r.Generation = uint64(getN(attrGeneration))
	genOK := len(bad) == 0 && r.Generation > 0
	r.State = State(getS(attrState))
	r.Since = getT(attrSince)
	r.Failures = int(getN(attrFailures))
	r.OpenUntil = getT(attrOpenUntil)
	r.Reopens = int(getN(attrReopens))
	r.LeaseUntil = getT(attrLeaseUntil)
	r.LeaseHolder = getS(attrLeaseHolder)
	r.Reason = getS(attrReason)
	if _, ok := item[attrOpenedAt]; ok {
		r.OpenedAt = getT(attrOpenedAt)
	}
	if f, ok := item[attrForced].(*types.AttributeValueMemberBOOL); ok {
		r.Forced = f.Value
	} else {
		bad = append(bad, attrForced)
	}
	switch r.State {
	case StateClosed, StateOpen, StateHalfOpen:
	default:
		bad = append(bad, attrState)
	}
	if len(bad) > 0 || r.Generation == 0 {
		gen := uint64(0)
		if genOK {
			gen = r.Generation
		}
		return Record{Generation: gen}, fmt.Errorf("%w: bad attributes %v", ErrCorrupt, bad)
	}
	return r, nil
}
