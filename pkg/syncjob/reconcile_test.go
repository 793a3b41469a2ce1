package syncjob_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// Issue 15: reconciliation never starves. More users stay stuck unsynced
// than one pass may re-queue (the queue takes the jobs, nothing applies
// them): bounded passes still reach every one of them within
// ceil(stuck / share) passes, and a second package is served from the
// first pass. Against the in-memory store and moto's DynamoDB alike.
func TestReconcileNeverStarves(t *testing.T) {
	type backend struct {
		users interface {
			syncjob.Unsynced
			Create(context.Context, users.User, time.Time) (users.User, error)
		}
		cursors syncjob.Cursors
	}
	backends := map[string]func(t *testing.T) backend{
		"memory": func(*testing.T) backend { return backend{users.NewMemory(), &memCursors{}} },
		"dynamodb": func(t *testing.T) backend {
			cfg := testenv.AWS(t)
			db := dynamodb.NewFromConfig(cfg)
			return backend{users.NewDynamo(db, testenv.Table(t, cfg, users.Table("users"))),
				syncjob.DynamoCursors{DB: db, Table: testenv.Table(t, cfg, breaker.Table("breaker"))}}
		},
	}
	const stuck, others, limit = 23, 3, 10 // two packages: a share of 5 each
	for name, newBackend := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			b := newBackend(t)
			h, err := testHasher.Hash("reconcile-password-1")
			if err != nil {
				t.Fatal(err)
			}
			sh := users.Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}
			for i := range stuck + others {
				pkg := "homechoice"
				if i >= stuck {
					pkg = "janee"
				}
				if _, err := b.users.Create(ctx, users.User{Package: pkg, Username: fmt.Sprintf("replay-%03d", i), Enabled: true, Hash: sh}, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			pkgs := []string{"homechoice", "janee"}
			q := &recordingQueue{}
			passes := 0
			for q.distinct("homechoice") < stuck {
				passes++
				if passes > 10 {
					t.Fatalf("after %d passes only %d of %d stuck users were re-queued: reconciliation starves", passes-1, q.distinct("homechoice"), stuck)
				}
				r, err := syncjob.ReconcileFrom(ctx, b.users, q, b.cursors, pkgs, limit, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if r.Found > limit {
					t.Fatalf("pass %d found %d users, bound %d", passes, r.Found, limit)
				}
				if passes == 1 && q.distinct("janee") != others {
					t.Fatalf("the second package must not wait for the first: %d of %d queued", q.distinct("janee"), others)
				}
			}
			if want := (stuck + 4) / 5; passes != want {
				t.Errorf("%d passes to reach %d stuck users, want ceil(%d/5) = %d", passes, stuck, stuck, want)
			}
			// Without a cursor the same bound never gets past the first share.
			q2 := &recordingQueue{}
			for range 5 {
				if _, err := syncjob.Reconcile(ctx, b.users, q2, pkgs, limit, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if q2.distinct("homechoice") != 5 {
				t.Errorf("control: %d distinct users without a cursor, want the same 5 each pass", q2.distinct("homechoice"))
			}
		})
	}
}

type recordingQueue struct {
	mu   sync.Mutex
	seen map[string]map[string]bool
}

func (q *recordingQueue) Enqueue(_ context.Context, j syncjob.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen == nil {
		q.seen = map[string]map[string]bool{}
	}
	if q.seen[j.Package] == nil {
		q.seen[j.Package] = map[string]bool{}
	}
	q.seen[j.Package][j.Username] = true
	return nil
}

func (q *recordingQueue) distinct(pkg string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.seen[pkg])
}

type memCursors struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *memCursors) Cursor(_ context.Context, pkg string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[pkg], nil
}

func (c *memCursors) SetCursor(_ context.Context, pkg, cursor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[pkg] = cursor
	return nil
}
