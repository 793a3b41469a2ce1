package audit_test

import (
	"context"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/audit/audittest"
	"github.com/kcguard/kcguard/pkg/ddbcount"
)

func TestMemory(t *testing.T) {
	audittest.Run(t, func(*testing.T) audit.Store { return audit.NewMemory() })
}

func TestDynamo(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, audit.Table("audit"))
	db := dynamodb.NewFromConfig(cfg)
	audittest.Run(t, func(*testing.T) audit.Store { return audit.NewDynamo(db, table) })
}

// TestDynamoRecordIsOnePut checks the write cost and the retention TTL.
func TestDynamoRecordIsOnePut(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, audit.Table("audit"))
	calls := ddbcount.New()
	db := dynamodb.NewFromConfig(cfg, calls.Option())
	s := audit.NewDynamo(db, table, audit.WithRetention(48*time.Hour))
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	err := s.Record(context.Background(), audit.Event{Package: "p", Username: "u", Action: audit.ActionLogin, Outcome: audit.OutcomeLocked, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if got := calls.Snapshot(); !maps.Equal(got, map[string]int{"PutItem": 1}) {
		t.Errorf("Record calls %v, want one PutItem", got)
	}
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: &table})
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("scan: %v", err)
	}
	n, ok := out.Items[0][audit.TTLAttribute]
	if !ok {
		t.Fatal("no ttl attribute")
	}
	want := strconv.FormatInt(at.Add(48*time.Hour).Unix(), 10)
	if got, _ := n.(*types.AttributeValueMemberN); got == nil || got.Value != want {
		t.Errorf("ttl %v, want %s", n, want)
	}
	calls.Reset()
	if _, err := s.ListByUser(context.Background(), "p", "u", 10); err != nil || calls.Count("Query") != 1 || calls.Total() != 1 {
		t.Errorf("ListByUser calls %s, %v", calls, err)
	}
}
