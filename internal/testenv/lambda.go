package testenv

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// WorkerFunction creates a stand-in sync worker function in moto with an
// SQS event source mapping on queueARN, all deleted when the test ends. It
// returns the function name. (Moto stores functions; it does not run them
// here, so send no messages to that queue while the mapping is enabled.)
func WorkerFunction(t testing.TB, cfg aws.Config, queueARN string) string {
	t.Helper()
	ctx := context.Background()
	lc := lambda.NewFromConfig(cfg)
	name := Unique("replay-syncworker")
	role := motoRole(t, name)
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	f, _ := zw.Create("bootstrap")
	_, _ = f.Write([]byte("#!/bin/sh\n"))
	_ = zw.Close()
	if _, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: &name, Role: &role,
		Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Code: &lambdatypes.FunctionCode{ZipFile: zipped.Bytes()}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = lc.DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: &name})
	})
	esm, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: &name,
		EventSourceArn: &queueARN, BatchSize: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = lc.DeleteEventSourceMapping(context.Background(), &lambda.DeleteEventSourceMappingInput{UUID: esm.UUID})
	})
	return name
}

// motoRole creates an IAM role in moto (moto's Lambda wants one that
// exists) with a plain query-API call: the project needs no IAM client.
func motoRole(t testing.TB, name string) string {
	t.Helper()
	form := url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {name},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`}}
	req, _ := http.NewRequest("POST", MotoEndpoint+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create role in moto: %s", resp.Status)
	}
	return "arn:aws:iam::123456789012:role/" + name
}

// Alert is one SNS message as a subscribed SQS queue receives it.
type Alert struct {
	Event, Text string
}

// AlertTopic makes an SNS topic with an SQS queue subscribed to it, both
// deleted when the test ends. read waits (up to 20 s) for n messages, then
// one more moment for any that should not exist, and returns them all.
func AlertTopic(t testing.TB, cfg aws.Config) (arn string, read func(n int) []Alert) {
	t.Helper()
	ctx := context.Background()
	sn, sq := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	name := Unique("replay-alerts")
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sn.DeleteTopic(context.Background(), &sns.DeleteTopicInput{TopicArn: topic.TopicArn}) })
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sq.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	attrs, err := sq.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes["QueueArn"])}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(topic.TopicArn), func(n int) []Alert {
		var got []Alert
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			wait := int32(1)
			if len(got) >= n {
				wait, deadline = 2, time.Now()
			}
			out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var env struct {
					Message           string
					MessageAttributes map[string]struct{ Value string }
				}
				if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &env); err != nil {
					t.Fatalf("not an SNS envelope: %v", err)
				}
				got = append(got, Alert{Event: env.MessageAttributes["event"].Value, Text: env.Message})
				_, _ = sq.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q.QueueUrl, ReceiptHandle: m.ReceiptHandle})
			}
		}
		return got
	}
}
