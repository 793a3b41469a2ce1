package testenv_test

// These tests prove the local stack is made of real servers: a real Keycloak
// answering password grants through toxiproxy, and moto behaving like
// DynamoDB and SQS FIFO where kcguard depends on it.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/schema"
)

func TestKeycloakPasswordGrantThroughToxiproxy(t *testing.T) {
	url, proxy := testenv.Keycloak(t)
	kc := gocloak.NewClient(url)
	kc.RestyClient().SetTimeout(5 * time.Second)
	r := testenv.Homechoice
	ctx := context.Background()

	tok, err := kc.Login(ctx, r.ClientID, r.ClientSecret, r.Name, "alice.hc", r.Users["alice.hc"])
	if err != nil {
		t.Fatalf("password grant for a seeded user: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("incomplete token response: expires_in=%d", tok.ExpiresIn)
	}

	proxy.Disable()
	start := time.Now()
	_, err = kc.Login(ctx, r.ClientID, r.ClientSecret, r.Name, "alice.hc", r.Users["alice.hc"])
	took := time.Since(start)
	var apiErr *gocloak.APIError
	if err == nil {
		t.Fatal("grant succeeded with the proxy disabled")
	}
	if errors.As(err, &apiErr) && apiErr.Code != 0 {
		t.Fatalf("want a transport error with the proxy disabled, got HTTP %d", apiErr.Code)
	}
	if took > time.Second {
		t.Fatalf("a cut Keycloak must fail fast (connection refused), took %s", took)
	}

	proxy.Enable()
	if _, err := kc.Login(ctx, r.ClientID, r.ClientSecret, r.Name, "bob.hc", r.Users["bob.hc"]); err != nil {
		t.Fatalf("grant after re-enabling the proxy: %v", err)
	}
}

func TestMotoDynamoDBConditionalWriteAndTransaction(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, schema.Table{Name: "stack", PartitionKey: schema.Key{Name: "pk", Type: schema.String}})
	db := dynamodb.NewFromConfig(cfg)
	ctx := context.Background()
	put := func(pk string, version int) error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &table,
			Item: map[string]ddbtypes.AttributeValue{
				"pk": &ddbtypes.AttributeValueMemberS{Value: pk}, "version": &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(version)},
			},
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		})
		return err
	}
	if err := put("user#1", 1); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	var ccf *ddbtypes.ConditionalCheckFailedException
	if err := put("user#1", 2); !errors.As(err, &ccf) {
		t.Fatalf("second conditional put must fail its condition, got %v", err)
	}

	// A transaction whose second condition fails writes nothing.
	update := ddbtypes.TransactWriteItem{Update: &ddbtypes.Update{
		TableName:                 &table,
		Key:                       map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "user#1"}},
		UpdateExpression:          aws.String("SET version = :v"),
		ConditionExpression:       aws.String("version = :old"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": &ddbtypes.AttributeValueMemberN{Value: "2"}, ":old": &ddbtypes.AttributeValueMemberN{Value: "1"}},
	}}
	failing := ddbtypes.TransactWriteItem{ConditionCheck: &ddbtypes.ConditionCheck{
		TableName:           &table,
		Key:                 map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "user#missing"}},
		ConditionExpression: aws.String("attribute_exists(pk)"),
	}}
	_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{update, failing}})
	var tce *ddbtypes.TransactionCanceledException
	if !errors.As(err, &tce) {
		t.Fatalf("transaction with a failing condition: want TransactionCanceledException, got %v", err)
	}
	if v := version(t, db, table); v != "1" {
		t.Fatalf("cancelled transaction changed the item: version %s", v)
	}
	if _, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{update}}); err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if v := version(t, db, table); v != "2" {
		t.Fatalf("transaction did not apply: version %s", v)
	}
}

func version(t *testing.T, db *dynamodb.Client, table string) string {
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: &table, ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "user#1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item["version"].(*ddbtypes.AttributeValueMemberN).Value
}

func TestMotoSQSFIFOOrderAndDeduplication(t *testing.T) {
	cfg := testenv.AWS(t)
	_, url := testenv.Queue(t, cfg, 5)
	q := sqs.NewFromConfig(cfg)
	ctx := context.Background()
	send := func(group, body, dedup string) {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl: &url, MessageBody: &body, MessageGroupId: &group, MessageDeduplicationId: &dedup,
		}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	send("homechoice#alice", "v1", "set_password#alice#1")
	send("homechoice#alice", "v2", "set_password#alice#2")
	send("homechoice#alice", "v1-again", "set_password#alice#1") // deduplicated
	send("homechoice#alice", "v3", "set_password#alice#3")

	var got []string
	for i := 0; i < 5 && len(got) < 3; i++ {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
			if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
	}
	if fmt.Sprint(got) != "[v1 v2 v3]" {
		t.Fatalf("FIFO group delivered %v, want [v1 v2 v3] (in order, duplicate dropped)", got)
	}
}
