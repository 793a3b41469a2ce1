package users

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// VersionCheckTx is a ConditionCheck that the user is still at version, for
// a login transaction: a password change (or any change) that landed after
// the login read the user fails the transaction, so no session is made
// from a password that is no longer the user's.
func (d *Dynamo) VersionCheckTx(key userkey.Key, version int64) types.TransactWriteItem {
	if k, err := key.Normalize(); err == nil {
		key = k
	}
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: aws.String(d.table), Key: d.itemKey(key, skUser),
		ConditionExpression:       aws.String("version = :v"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": ddbitem.N(version)},
	}}
}
