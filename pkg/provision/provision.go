// Package provision creates (Ensure) and checks (Check) the tables and queues
// described by package schema. It never deletes anything: `config fix` only
// adds what is missing, so it is safe to run against production.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kcguard/kcguard/pkg/schema"
)

// DynamoDB is the part of the DynamoDB client provisioning uses.
type DynamoDB interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// SQS is the part of the SQS client provisioning uses.
type SQS interface {
	GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
}

// Check is one line of a validation checklist.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// EnsureTable creates the table when it does not exist and turns on its TTL.
// It reports what it did; an existing table with a different shape is left
// alone (CheckTable reports it) because fixing keys means recreating data.
func EnsureTable(ctx context.Context, db DynamoDB, t schema.Table) (string, error) {
	_, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.Name})
	did := "exists"
	switch {
	case err == nil:
	case isTableMissing(err):
		// ResourceInUse: created meanwhile (another fix, or an SDK retry of
		// our own create whose answer was lost); wait for it like our own.
		if _, err := db.CreateTable(ctx, createTableInput(t)); err != nil && !isInUse(err) {
			return "", fmt.Errorf("create table %s: %w", t.Name, err)
		}
		w := dynamodb.NewTableExistsWaiter(db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 200 * time.Millisecond })
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &t.Name}, 2*time.Minute); err != nil {
			return "", fmt.Errorf("wait for table %s: %w", t.Name, err)
		}
		did = "created"
	default:
		return "", fmt.Errorf("describe table %s: %w", t.Name, err)
	}
	if t.TTLAttribute == "" {
		return did, nil
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &t.Name})
	if err != nil {
		return "", fmt.Errorf("describe ttl %s: %w", t.Name, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && d.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabled &&
		aws.ToString(d.AttributeName) == t.TTLAttribute {
		return did, nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &t.Name,
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: &t.TTLAttribute, Enabled: aws.Bool(true)},
	})
	if err != nil {
		return "", fmt.Errorf("enable ttl %s: %w", t.Name, err)
	}
	if did == "exists" {
		did = "ttl enabled"
	}
	return did, nil
}

func createTableInput(t schema.Table) *dynamodb.CreateTableInput {
	attrs := map[string]ddbtypes.ScalarAttributeType{}
	keySchema := func(pk schema.Key, sk *schema.Key) []ddbtypes.KeySchemaElement {
		attrs[pk.Name] = ddbtypes.ScalarAttributeType(pk.Type)
		ks := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(pk.Name), KeyType: ddbtypes.KeyTypeHash}}
		if sk != nil {
			attrs[sk.Name] = ddbtypes.ScalarAttributeType(sk.Type)
			ks = append(ks, ddbtypes.KeySchemaElement{AttributeName: aws.String(sk.Name), KeyType: ddbtypes.KeyTypeRange})
		}
		return ks
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(t.Name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		KeySchema:   keySchema(t.PartitionKey, t.SortKey),
	}
	for _, ix := range t.Indexes {
		proj := ddbtypes.ProjectionTypeAll
		if ix.KeysOnly {
			proj = ddbtypes.ProjectionTypeKeysOnly
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  keySchema(ix.PartitionKey, ix.SortKey),
			Projection: &ddbtypes.Projection{ProjectionType: proj},
		})
	}
	for name, typ := range attrs {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{AttributeName: aws.String(name), AttributeType: typ})
	}
	return in
}

// CheckTable compares the live table with its description.
func CheckTable(ctx context.Context, db DynamoDB, t schema.Table) Check {
	c := Check{Name: "table " + t.Name}
	out, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &t.Name})
	if err != nil {
		c.Detail = "missing"
		if !isTableMissing(err) {
			c.Detail = "cannot describe: " + err.Error()
		}
		return c
	}
	d := out.Table
	var problems []string
	if got, want := keysOf(d.KeySchema), keysText(t.PartitionKey, t.SortKey); got != want {
		problems = append(problems, fmt.Sprintf("keys are %s, want %s", got, want))
	}
	live := map[string]string{}
	for _, ix := range d.GlobalSecondaryIndexes {
		live[aws.ToString(ix.IndexName)] = keysOf(ix.KeySchema)
	}
	for _, ix := range t.Indexes {
		got, ok := live[ix.Name]
		switch want := keysText(ix.PartitionKey, ix.SortKey); {
		case !ok:
			problems = append(problems, "index "+ix.Name+" missing")
		case got != want:
			problems = append(problems, fmt.Sprintf("index %s keys are %s, want %s", ix.Name, got, want))
		}
	}
	if t.TTLAttribute != "" {
		ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &t.Name})
		switch {
		case err != nil:
			problems = append(problems, "cannot describe ttl: "+err.Error())
		case ttl.TimeToLiveDescription == nil || ttl.TimeToLiveDescription.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled:
			problems = append(problems, "ttl not enabled")
		case aws.ToString(ttl.TimeToLiveDescription.AttributeName) != t.TTLAttribute:
			problems = append(problems, fmt.Sprintf("ttl on %q, want %q", aws.ToString(ttl.TimeToLiveDescription.AttributeName), t.TTLAttribute))
		}
	}
	if len(problems) > 0 {
		c.Detail = fmt.Sprint(problems)
		return c
	}
	c.OK = true
	c.Detail = keysText(t.PartitionKey, t.SortKey)
	if t.TTLAttribute != "" {
		c.Detail += ", ttl " + t.TTLAttribute
	}
	return c
}

func keysText(pk schema.Key, sk *schema.Key) string {
	s := pk.Name
	if sk != nil {
		s += "+" + sk.Name
	}
	return s
}

func keysOf(ks []ddbtypes.KeySchemaElement) string {
	var pk, sk string
	for _, k := range ks {
		if k.KeyType == ddbtypes.KeyTypeHash {
			pk = aws.ToString(k.AttributeName)
		} else {
			sk = "+" + aws.ToString(k.AttributeName)
		}
	}
	return pk + sk
}

func isInUse(err error) bool {
	var inUse *ddbtypes.ResourceInUseException
	return errors.As(err, &inUse)
}

func isTableMissing(err error) bool {
	var nf *ddbtypes.ResourceNotFoundException
	return errors.As(err, &nf)
}

// EnsureQueue creates the FIFO dead-letter queue and the FIFO queue with its
// redrive policy, and attaches the policy to an existing queue that lacks it.
func EnsureQueue(ctx context.Context, q SQS, spec schema.Queue) (string, error) {
	dlqURL, err := createFIFO(ctx, q, spec.DLQName, nil)
	if err != nil {
		return "", err
	}
	dlqARN, err := queueARN(ctx, q, dlqURL)
	if err != nil {
		return "", err
	}
	redrive, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": dlqARN,
		"maxReceiveCount":     strconv.Itoa(spec.MaxReceiveCount),
	})
	attrs := map[string]string{
		"RedrivePolicy":     string(redrive),
		"VisibilityTimeout": strconv.Itoa(spec.VisibilityTimeoutSeconds),
	}
	existing, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &spec.Name})
	if err == nil {
		got, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: existing.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameRedrivePolicy},
		})
		if err != nil {
			return "", fmt.Errorf("queue attributes %s: %w", spec.Name, err)
		}
		if got.Attributes["RedrivePolicy"] != "" {
			return "exists", nil
		}
		if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: existing.QueueUrl, Attributes: attrs}); err != nil {
			return "", fmt.Errorf("attach dlq to %s: %w", spec.Name, err)
		}
		return "dlq attached", nil
	}
	if _, err := createFIFO(ctx, q, spec.Name, attrs); err != nil {
		return "", err
	}
	return "created", nil
}

func createFIFO(ctx context.Context, q SQS, name string, extra map[string]string) (string, error) {
	attrs := map[string]string{"FifoQueue": "true", "ContentBasedDeduplication": "false"}
	for k, v := range extra {
		attrs[k] = v
	}
	out, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

func queueARN(ctx context.Context, q SQS, url string) (string, error) {
	out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", fmt.Errorf("queue arn %s: %w", url, err)
	}
	return out.Attributes["QueueArn"], nil
}

// CheckQueue verifies the queue and its DLQ exist, are FIFO, and are linked.
func CheckQueue(ctx context.Context, q SQS, spec schema.Queue) Check {
	c := Check{Name: "queue " + spec.Name}
	attrsOf := func(name string) (map[string]string, error) {
		u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if err != nil {
			return nil, fmt.Errorf("%s missing", name)
		}
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: u.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
		})
		if err != nil {
			return nil, fmt.Errorf("%s attributes: %v", name, err)
		}
		return out.Attributes, nil
	}
	main, err := attrsOf(spec.Name)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	dlq, err := attrsOf(spec.DLQName)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	var rp struct {
		Target string `json:"deadLetterTargetArn"`
		Max    any    `json:"maxReceiveCount"`
	}
	_ = json.Unmarshal([]byte(main["RedrivePolicy"]), &rp)
	switch {
	case main["FifoQueue"] != "true":
		c.Detail = spec.Name + " is not FIFO"
	case dlq["FifoQueue"] != "true":
		c.Detail = spec.DLQName + " is not FIFO"
	case rp.Target == "":
		c.Detail = "no dead-letter queue attached"
	case rp.Target != dlq["QueueArn"]:
		c.Detail = "dead-letter target is " + rp.Target + ", want " + dlq["QueueArn"]
	default:
		c.OK = true
		c.Detail = fmt.Sprintf("FIFO, DLQ %s after %v receives", spec.DLQName, rp.Max)
	}
	return c
}
