package breaker_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/breaker/breakertest"
)

func TestMemoryStoreConformance(t *testing.T) {
	breakertest.Run(t, func(t *testing.T) breakertest.Harness {
		m := breaker.NewMemoryStore()
		return breakertest.Harness{Store: m, Corrupt: func(_ *testing.T, name string, keep bool) { m.Corrupt(name, keep) }}
	})
}

// dynamoTable gives a fresh breaker table in moto and a client on it.
func dynamoTable(t testing.TB) (*dynamodb.Client, string) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, breaker.Table("breaker"))
	return dynamodb.NewFromConfig(cfg), table
}

func TestDynamoStoreConformance(t *testing.T) {
	db, table := dynamoTable(t)
	breakertest.Run(t, func(t *testing.T) breakertest.Harness {
		return breakertest.Harness{
			Store: breaker.NewDynamoStore(db, table),
			Corrupt: func(t *testing.T, name string, keep bool) {
				// What a hand edit or a half-migrated item looks like.
				update := "SET #s = :bogus REMOVE forced"
				vals := map[string]types.AttributeValue{":bogus": &types.AttributeValueMemberS{Value: "ajar"}}
				if !keep {
					update = "SET #s = :bogus, gen = :garbage REMOVE forced"
					vals[":garbage"] = &types.AttributeValueMemberS{Value: "not-a-number"}
				}
				_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
					TableName: &table, Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: name}},
					UpdateExpression: aws.String(update), ExpressionAttributeNames: map[string]string{"#s": "state"},
					ExpressionAttributeValues: vals,
				})
				if err != nil {
					t.Fatalf("corrupt item: %v", err)
				}
			},
		}
	})
}

func TestTableSpec(t *testing.T) {
	spec := breaker.Table("kcguard-breaker")
	if spec.Name != "kcguard-breaker" || spec.PartitionKey.Name != "pk" || spec.SortKey != nil || spec.TTLAttribute != "" {
		t.Fatalf("unexpected table spec %+v", spec)
	}
}
