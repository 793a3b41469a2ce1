package ddbcount_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
)

func TestCountsEachOperation(t *testing.T) {
	cfg := testenv.AWS(t)
	c := ddbcount.New()
	c.Attach(&cfg)
	db := dynamodb.NewFromConfig(cfg)
	ctx := context.Background()

	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = db.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
		}()
	}
	wg.Wait()
	_, _ = db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("no-such-table-ddbcount")})

	if got := c.Count("ListTables"); got != 5 {
		t.Errorf("ListTables = %d, want 5 (%s)", got, c)
	}
	// A failed call was still a round trip.
	if got := c.Count("DescribeTable"); got != 1 {
		t.Errorf("DescribeTable = %d, want 1 (%s)", got, c)
	}
	if c.Total() != 6 || c.String() != "DescribeTable=1 ListTables=5" {
		t.Errorf("total %d, %q", c.Total(), c)
	}
	c.Reset()
	if c.Total() != 0 {
		t.Errorf("after reset: %s", c)
	}
}

func TestOptionCountsOneClient(t *testing.T) {
	cfg := testenv.AWS(t)
	c := ddbcount.New()
	counted := dynamodb.NewFromConfig(cfg, c.Option())
	other := dynamodb.NewFromConfig(cfg)
	ctx := context.Background()
	_, _ = counted.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	_, _ = other.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)})
	if got := c.Count("ListTables"); got != 1 {
		t.Errorf("ListTables = %d, want 1", got)
	}
}
