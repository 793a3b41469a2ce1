package pull_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/pull"
)

// The cursors live in the breaker table next to the breaker items; two
// overlapping runs never move a cursor back.
func TestDynamoCursors(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, breaker.Table("pull-cursors"))
	db := dynamodb.NewFromConfig(cfg)
	c := &pull.DynamoCursors{DB: db, Table: table}
	ctx := context.Background()
	if cur, err := c.Get(ctx, "homechoice"); err != nil || !cur.Through.IsZero() {
		t.Fatalf("no cursor yet: %+v %v", cur, err)
	}
	t1 := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	for _, put := range []pull.Cursor{{Through: t1, LastCompare: t1}, {Through: t1.Add(-time.Minute)}} {
		if err := c.Put(ctx, "homechoice", put); err != nil {
			t.Fatal(err)
		}
	}
	if cur, err := c.Get(ctx, "homechoice"); err != nil || !cur.Through.Equal(t1) || !cur.LastCompare.Equal(t1) {
		t.Fatalf("cursor moved back or lost: %+v %v", cur, err)
	}
	if cur, _ := c.Get(ctx, "janee"); !cur.Through.IsZero() {
		t.Fatalf("packages share a cursor: %+v", cur)
	}
}
