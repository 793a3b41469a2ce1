// Package testenv connects integration tests to the local stack that
// `make up` / `make test` start: moto (DynamoDB, SQS, KMS, SNS, Secrets
// Manager), Keycloak and toxiproxy.
//
// A test that needs the stack calls one of these helpers first. With
// `go test -short` it is skipped (the unit-test loop); otherwise a missing
// service is a test failure naming the service and how to start it. The
// tests never pass by skipping in `make test` or CI.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/provision"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Addresses of the local stack (see local/stack.env and the README).
const (
	MotoEndpoint       = "http://127.0.0.1:4566"
	KeycloakDirectURL  = "http://127.0.0.1:8180"
	KeycloakProxiedURL = "http://127.0.0.1:18180" // the shared `keycloak` toxiproxy proxy
	ToxiproxyAdmin     = "http://127.0.0.1:8474"
	KeycloakAdminUser  = "admin"
	KeycloakAdminPass  = "admin"
)

// Need fails the test (skips it under -short) unless every named service of
// the local stack answers on its port.
func Need(t testing.TB, services ...string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs the local stack (%s); skipped by -short", strings.Join(services, ", "))
	}
	addrs := map[string]string{
		"moto":      "127.0.0.1:4566",
		"keycloak":  "127.0.0.1:8180",
		"toxiproxy": "127.0.0.1:8474",
	}
	for _, s := range services {
		addr, ok := addrs[s]
		if !ok {
			t.Fatalf("testenv: unknown service %q", s)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("%s is not reachable at %s (%v): start the local stack with `make up` "+
				"(logs in .cache/logs/%s.log), or run unit tests only with `make test-short`", s, addr, err, s)
		}
		c.Close()
	}
}

// AWS returns an SDK config pointed at moto unless AWS_ENDPOINT_URL says otherwise.
func AWS(t testing.TB) aws.Config {
	t.Helper()
	Need(t, "moto")
	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	if endpoint == "" {
		endpoint = MotoEndpoint
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(),
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		awsconfig.WithBaseEndpoint(endpoint),
	)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return cfg
}

// Unique returns prefix plus a random suffix, for isolating tables, queues
// and Keycloak users between tests and runs.
func Unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Table creates a fresh table shaped like spec (with a unique name) in moto
// and deletes it when the test ends. It returns the table name.
func Table(t testing.TB, cfg aws.Config, spec schema.Table) string {
	t.Helper()
	spec.Name = Unique("test-" + spec.Name)
	db := dynamodb.NewFromConfig(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := provision.EnsureTable(ctx, db, spec); err != nil {
		t.Fatalf("create test table: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &spec.Name})
	})
	return spec.Name
}

// Queue creates a fresh FIFO queue with its DLQ in moto and deletes both when
// the test ends. It returns the queue spec with the unique names and the
// queue URL.
func Queue(t testing.TB, cfg aws.Config, maxReceive int) (schema.Queue, string) {
	t.Helper()
	base := Unique("test-sync")
	spec := schema.Queue{Name: base + ".fifo", DLQName: base + "-dlq.fifo", MaxReceiveCount: maxReceive, VisibilityTimeoutSeconds: 30}
	q := sqs.NewFromConfig(cfg)
	ctx := context.Background()
	if _, err := provision.EnsureQueue(ctx, q, spec); err != nil {
		t.Fatalf("create test queue: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range []string{spec.Name, spec.DLQName} {
			if u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(n)}); err == nil {
				_, _ = q.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			}
		}
	})
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &spec.Name})
	if err != nil {
		t.Fatalf("queue url: %v", err)
	}
	return spec, aws.ToString(u.QueueUrl)
}
