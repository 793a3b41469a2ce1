package syncjob_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

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
	jobs []syncjob.Job
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
	q.jobs = append(q.jobs, j)
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

// Finding 7: a change dead-lettered (or lost) within SQS's five-minute
// deduplication window is still re-queued by reconciliation (moto's FIFO
// deduplicates as SQS does), while a retried send of the same re-queue is
// still one message, and the next pass re-queues again.
func TestReconcileRequeuesWithinTheDeduplicationWindow(t *testing.T) {
	cfg := testenv.AWS(t)
	ctx := context.Background()
	client := sqs.NewFromConfig(cfg)
	spec, url := testenv.Queue(t, cfg, 3)
	q := syncjob.NewSQSQueue(client, spec.Name)
	st := users.NewMemory()
	h, err := testHasher.Hash("requeue-password-1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Create(ctx, users.User{Package: "homechoice", Username: "requeue-1", Enabled: true,
		Hash: users.Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first, err := syncjob.CurrentPassword(u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The first send fails its 3 receives and the redrive policy moves it
	// to the DLQ.
	if err := q.Enqueue(ctx, first); err != nil {
		t.Fatal(err)
	}
	for receives := 0; ; receives++ {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		if receives > 3 {
			t.Fatalf("received %d times, not dead-lettered", receives)
		}
		if _, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url,
			ReceiptHandle: out.Messages[0].ReceiptHandle, VisibilityTimeout: 0}); err != nil {
			t.Fatal(err)
		}
	}
	// moto forgets the deduplication id of a message that left the queue
	// (SQS keeps it five minutes), so the ids themselves are checked too:
	// each pass's re-queue differs from the first send and from the other
	// passes.
	ids := recordingQueue{}
	now := time.Now()
	for pass := range 2 {
		if _, err := syncjob.Reconcile(ctx, st, &ids, []string{"homechoice"}, 0, now.Add(time.Duration(pass)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids.jobs) != 2 || ids.jobs[0].DeduplicationID() == first.DeduplicationID() ||
		ids.jobs[1].DeduplicationID() == first.DeduplicationID() || ids.jobs[0].DeduplicationID() == ids.jobs[1].DeduplicationID() {
		var got []string
		for _, j := range ids.jobs {
			got = append(got, j.DeduplicationID())
		}
		t.Fatalf("re-queues must each have a deduplication id of their own: first %s, passes %v", first.DeduplicationID(), got)
	}
	for pass := range 2 {
		r, err := syncjob.Reconcile(ctx, st, q, []string{"homechoice"}, 0, now)
		if err != nil || r.Queued != 1 {
			t.Fatalf("pass %d: %+v %v", pass, r, err)
		}
		// The same pass's send retried (as the SDK does after a lost answer).
		if _, err := syncjob.Reconcile(ctx, st, q, []string{"homechoice"}, 0, now); err != nil {
			t.Fatal(err)
		}
		if got := takeAll(t, client, url); got != 1 {
			t.Fatalf("pass %d: %d messages arrived, want exactly 1 (re-queued, and its retry deduplicated)", pass, got)
		}
		now = now.Add(time.Minute)
	}
}

// takeAll receives and deletes what the queue holds and counts it.
func takeAll(t *testing.T, client *sqs.Client, url string) int {
	t.Helper()
	n := 0
	for {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return n
		}
		for _, m := range out.Messages {
			n++
			if _, err := client.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
