package pull

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
)

// Cursor is how far a package's pull got.
type Cursor struct {
	// Through: every event before it has been applied (zero: never ran).
	Through time.Time
	// LastCompare is when every user was last compared page by page.
	LastCompare time.Time
}

// CursorStore persists one Cursor per package.
type CursorStore interface {
	// Get returns the package's cursor, the zero Cursor if there is none.
	Get(ctx context.Context, pkg string) (Cursor, error)
	// Put stores it; a cursor older than the stored one is ignored, so two
	// overlapping runs never move it back.
	Put(ctx context.Context, pkg string, c Cursor) error
}

// DynamoCursors keeps the cursors as items "pull#<package>" in the breaker
// table: like the breaker item they are a little fleet-wide state every
// instance shares, and a table of their own would be one more resource
// to deploy for two numbers per package.
type DynamoCursors struct {
	DB    DynamoDB
	Table string
}

// DynamoDB is the part of the client the cursors use.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

var _ CursorStore = (*DynamoCursors)(nil)

func cursorKey(pkg string) map[string]types.AttributeValue {
	// The breaker table's key attribute; breaker items are keyed by the
	// Keycloak URL, which never starts with "pull#".
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "pull#" + pkg}}
}

func ms(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.UnixMilli(), 10)}
}

func fromMS(av types.AttributeValue) time.Time {
	n, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return time.Time{}
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Get implements CursorStore.
func (d *DynamoCursors) Get(ctx context.Context, pkg string) (Cursor, error) {
	out, err := d.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.Table, Key: cursorKey(pkg), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Cursor{}, fmt.Errorf("get pull cursor %s: %w", pkg, err)
	}
	return Cursor{Through: fromMS(out.Item["through_ms"]), LastCompare: fromMS(out.Item["last_compare_ms"])}, nil
}

// Put implements CursorStore.
func (d *DynamoCursors) Put(ctx context.Context, pkg string, c Cursor) error {
	_, err := d.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &d.Table, Key: cursorKey(pkg),
		UpdateExpression:          aws.String("SET through_ms = :t, last_compare_ms = :c"),
		ConditionExpression:       aws.String("attribute_not_exists(through_ms) OR through_ms <= :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": ms(c.Through), ":c": ms(c.LastCompare)},
	})
	if ddbitem.ConditionFailed(err) {
		return nil // a later run already went further
	}
	if err != nil {
		return fmt.Errorf("put pull cursor %s: %w", pkg, err)
	}
	return nil
}

// MemoryCursors is a CursorStore for tests.
type MemoryCursors struct {
	mu sync.Mutex
	m  map[string]Cursor
}

// Get implements CursorStore.
func (m *MemoryCursors) Get(_ context.Context, pkg string) (Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[pkg], nil
}

// Put implements CursorStore.
func (m *MemoryCursors) Put(_ context.Context, pkg string, c Cursor) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Cursor{}
	}
	if c.Through.Before(m.m[pkg].Through) {
		return nil
	}
	m.m[pkg] = c
	return nil
}
