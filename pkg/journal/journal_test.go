package journal_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/journal/journaltest"
)

func TestMemory(t *testing.T) {
	journaltest.Run(t, func(*testing.T) journal.Store { return journal.NewMemory() })
}

func TestDynamo(t *testing.T) {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	journaltest.Run(t, func(t *testing.T) journal.Store {
		return journal.NewDynamo(db, testenv.Table(t, cfg, journal.Table("journal")))
	})
}

// TestDynamoRecordIsOnePut: the worker pays one write per status change.
func TestDynamoRecordIsOnePut(t *testing.T) {
	cfg := testenv.AWS(t)
	calls := ddbcount.New()
	s := journal.NewDynamo(dynamodb.NewFromConfig(cfg, calls.Option()), testenv.Table(t, cfg, journal.Table("journal")))
	now := time.Now()
	e := journal.Entry{JobID: "j", Package: "homechoice", Username: "u", Version: 1, CreatedAt: now, UpdatedAt: now, Status: journal.Applied}
	for range 2 { // the second is a duplicate: still one call
		if err := s.Record(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Snapshot(); !maps.Equal(got, map[string]int{"PutItem": 2}) {
		t.Errorf("calls %v, want one PutItem per Record", got)
	}
}
