package syncjob

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoCursors keeps the reconciliation cursors as one small item per
// package in the breaker-state table (tables.breaker): fleet-wide
// operational state that must outlive any instance, keyed by "pk" like the
// breaker records, under a prefix no breaker name (a URL) can have.
type DynamoCursors struct {
	DB    CursorAPI
	Table string
}

var _ Cursors = DynamoCursors{}

func (d DynamoCursors) key(pkg string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "reconcile-cursor#" + pkg}}
}

// Cursor implements Cursors ("" when none is stored).
func (d DynamoCursors) Cursor(ctx context.Context, pkg string) (string, error) {
	out, err := d.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.Table, Key: d.key(pkg), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", fmt.Errorf("read reconciliation cursor: %w", err)
	}
	if v, ok := out.Item["cursor"].(*types.AttributeValueMemberS); ok {
		return v.Value, nil
	}
	return "", nil
}

// SetCursor implements Cursors.
func (d DynamoCursors) SetCursor(ctx context.Context, pkg, cursor string) error {
	item := d.key(pkg)
	if cursor != "" {
		item["cursor"] = &types.AttributeValueMemberS{Value: cursor}
	}
	if _, err := d.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &d.Table, Item: item}); err != nil {
		return fmt.Errorf("save reconciliation cursor: %w", err)
	}
	return nil
}
