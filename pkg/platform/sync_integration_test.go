package platform_test

// The sync pipeline against the real local stack: changes made while
// Keycloak is cut reach it when it returns, in order, once, as hashes;
// lost sends and purged queues are found again by reconciliation.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// withJournal gives the test a journal table of its own.
func withJournal(c *config.Config) { c.Tables.Journal = testenv.Unique("it") + "-journal" }

// countingAdmin counts the Keycloak writes the sync makes.
type countingAdmin struct {
	syncjob.KeycloakAdmin
	creates, passwords, updates atomic.Int64
}

func (c *countingAdmin) CreateUser(ctx context.Context, pkg string, spec keycloak.UserSpec) (string, error) {
	c.creates.Add(1)
	return c.KeycloakAdmin.CreateUser(ctx, pkg, spec)
}

func (c *countingAdmin) ImportPasswordHash(ctx context.Context, pkg, id string, h credential.Hash) error {
	c.passwords.Add(1)
	return c.KeycloakAdmin.ImportPasswordHash(ctx, pkg, id, h)
}

func (c *countingAdmin) UpdateUser(ctx context.Context, pkg, id string, u keycloak.UserUpdate) error {
	c.updates.Add(1)
	return c.KeycloakAdmin.UpdateUser(ctx, pkg, id, u)
}

func (c *countingAdmin) writes() int64 {
	return c.creates.Load() + c.passwords.Load() + c.updates.Load()
}

func countWrites(e *stacktest.Env) *countingAdmin {
	c := &countingAdmin{KeycloakAdmin: e.RT.Applier.Keycloak}
	e.RT.Applier.Keycloak = c
	return c
}

// changePassword goes through the password function's handler.
func changePassword(t testing.TB, e *stacktest.Env, u stacktest.User, oldPw, newPw string) string {
	body, _ := json.Marshal(map[string]string{"package": u.Package, "username": u.Name, "old_password": oldPw, "new_password": newPw})
	resp, err := e.RT.AuthHandlers().ChangePassword(context.Background(), events.APIGatewayV2HTTPRequest{
		Body: string(body), Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "req-" + u.Name,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/password", SourceIP: "127.0.0.1"}},
	})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("change password of %s: %d %s %v", u.Name, resp.StatusCode, resp.Body, err)
		return ""
	}
	var out struct{ Sync string }
	_ = json.Unmarshal([]byte(resp.Body), &out)
	return out.Sync
}

func depth(t testing.TB, e *stacktest.Env, q *syncjob.SQSQueue) int {
	t.Helper()
	url, err := q.URL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.RT.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	b, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return a + b
}

// outage cuts Keycloak and tells the fleet; restore undoes both. The tests
// using it drive the drain and reconciliation themselves and count what
// each did, so the reconciliation pass the close starts in the background
// is left out (it is tested in replay_integration_test.go).
func outage(t testing.TB, e *stacktest.Env) (restore func()) {
	t.Helper()
	e.RT.Replay.Reconcile = nil
	ctx := context.Background()
	if _, err := e.RT.Breaker.ForceOpen(ctx); err != nil {
		t.Fatal(err)
	}
	e.Proxy.Disable()
	return func() {
		e.Proxy.Enable()
		if _, err := e.RT.Breaker.ForceClose(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOutageChangesReachKeycloakOnce(t *testing.T) {
	const nUsers, nChanges = 50, 3
	e := stacktest.New(t, fastBreaker, withJournal)
	ctx := context.Background()
	start := time.Now()
	us := make([]stacktest.User, nUsers)
	for i := range us {
		us[i] = e.NewUser(t, "homechoice")
	}
	t.Logf("%d users in both tiers in %s", nUsers, time.Since(start).Round(time.Millisecond))

	restore := outage(t, e)
	start = time.Now()
	passwords := make([][]string, nUsers) // every password each user had, oldest first
	var g errgroup.Group
	g.SetLimit(4)
	for i, u := range us {
		passwords[i] = []string{u.Password}
		g.Go(func() error {
			for c := range nChanges {
				pw := fmt.Sprintf("outage-%d-%s", c, u.Password)
				if got := changePassword(t, e, u, passwords[i][len(passwords[i])-1], pw); got != "queued" {
					return fmt.Errorf("change %d of %s: sync %q, want queued", c, u.Name, got)
				}
				passwords[i] = append(passwords[i], pw)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d password changes during the outage in %s", nUsers*nChanges, time.Since(start).Round(time.Millisecond))
	if n, _ := e.RT.Journal.Count(ctx, journal.Pending); n != nUsers*nChanges {
		t.Fatalf("journal: %d pending, want %d", n, nUsers*nChanges)
	}

	restore()
	kc := countWrites(e)
	start = time.Now()
	out, err := e.RT.Poller(0).Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drained %+v in %s; keycloak writes: %d (creates %d, passwords %d, updates %d)", out,
		time.Since(start).Round(time.Millisecond), kc.writes(), kc.creates.Load(), kc.passwords.Load(), kc.updates.Load())
	if out.Applied != nUsers || out.Superseded != nUsers*(nChanges-1) || out.DeadLettered != 0 || out.Failed != 0 {
		t.Fatalf("drain outcome %+v", out)
	}
	if w := kc.writes(); w < nUsers || w > nUsers+nUsers/10 {
		t.Fatalf("%d Keycloak writes for %d users × %d changes, want ≈ %d", w, nUsers, nChanges, nUsers)
	}
	if n := depth(t, e, e.RT.DLQ); n != 0 {
		t.Fatalf("DLQ holds %d jobs", n)
	}
	if n := depth(t, e, e.RT.Queue); n != 0 {
		t.Fatalf("queue still holds %d jobs", n)
	}

	want := map[journal.Status]int{journal.Applied: nUsers, journal.Superseded: nUsers * (nChanges - 1), journal.Pending: 0, journal.Failed: 0}
	for st, n := range want {
		if got, err := e.RT.Journal.Count(ctx, st); got != n || err != nil {
			t.Errorf("journal: %d %s, want %d (%v)", got, st, n, err)
		}
	}
	for i, u := range us {
		es, _ := e.RT.Journal.ListByUser(ctx, u.Package, u.Name, 0)
		if len(es) != nChanges || es[0].Status != journal.Applied || es[0].Version != int64(nChanges+1) {
			t.Errorf("user %d: the newest job must be the applied one: %+v", i, es)
			break
		}
	}

	start = time.Now()
	g = errgroup.Group{}
	g.SetLimit(4)
	for i, u := range us {
		g.Go(func() error {
			pws := passwords[i]
			// The current password first: Keycloak's brute-force detector
			// may refuse a right password right after wrong ones.
			if err := grant(ctx, e, u.Package, u.Name, pws[len(pws)-1]); err != nil {
				return fmt.Errorf("%s: Keycloak must accept the current password: %v", u.Name, err)
			}
			for _, old := range pws[:len(pws)-1] {
				if err := grant(ctx, e, u.Package, u.Name, old); !errors.Is(err, keycloak.ErrInvalidCredentials) {
					return fmt.Errorf("%s: Keycloak must refuse an older password: %v", u.Name, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d password grants checked in %s", nUsers*(nChanges+1), time.Since(start).Round(time.Millisecond))
	for _, u := range us {
		rec, err := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
		if err != nil || rec.Unsynced() {
			t.Fatalf("%s must be synced: %+v %v", u.Name, rec.KeycloakSyncedVersion, err)
		}
	}
	var secrets []string
	for _, pws := range passwords {
		secrets = append(secrets, pws...)
	}
	e.AssertNoSecrets(t, secrets...)
}

// failingQueue loses every send, as an SQS outage after the local write would.
type failingQueue struct{ n atomic.Int64 }

func (q *failingQueue) Enqueue(context.Context, syncjob.Job) error {
	q.n.Add(1)
	return errors.New("sqs: connection reset")
}

func TestLostSendAndPurgedQueueAreReconciled(t *testing.T) {
	e := stacktest.New(t, fastBreaker, withJournal)
	ctx := context.Background()
	lost, purged := e.NewUser(t, "homechoice"), e.NewUser(t, "janee")
	restore := outage(t, e)

	// lost: the send fails after the local write.
	real := e.RT.Dispatcher.Queue
	fq := &failingQueue{}
	e.RT.Dispatcher.Queue = fq
	lostPw := "after-lost-send-" + lost.Password
	if got := changePassword(t, e, lost, lost.Password, lostPw); got != "queued" || fq.n.Load() != 1 {
		t.Fatalf("sync %q, sends %d", got, fq.n.Load())
	}
	e.RT.Dispatcher.Queue = real
	es, _ := e.RT.Journal.ListByUser(ctx, lost.Package, lost.Name, 0)
	if len(es) != 1 || es[0].Status != journal.Failed || !strings.Contains(es[0].Reason, "not queued") {
		t.Fatalf("journal of the lost send: %+v", es)
	}

	// purged: the send worked, then the queue was purged.
	purgedPw := "after-purge-" + purged.Password
	if got := changePassword(t, e, purged, purged.Password, purgedPw); got != "queued" {
		t.Fatalf("sync %q", got)
	}
	if _, err := e.RT.SQS.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(e.QueueURL)}); err != nil {
		t.Fatal(err)
	}
	restore()
	if out, err := e.RT.Poller(0).Drain(ctx); err != nil || out.Applied != 0 {
		t.Fatalf("nothing is left in the queue: %+v %v", out, err)
	}

	jq := e.RT.JournaledQueue
	r, err := syncjob.Reconcile(ctx, e.RT.Users, jq, e.Config.PackageNames(), 0, time.Now())
	if err != nil || r.Found != 2 || r.Queued != 2 || !r.Done {
		t.Fatalf("reconcile: %+v %v", r, err)
	}
	if out, err := e.RT.Poller(0).Drain(ctx); err != nil || out.Applied != 2 {
		t.Fatalf("drain after reconcile: %+v %v", out, err)
	}
	for _, c := range []struct {
		u      stacktest.User
		now    string
		before string
	}{{lost, lostPw, lost.Password}, {purged, purgedPw, purged.Password}} {
		if err := grant(ctx, e, c.u.Package, c.u.Name, c.now); err != nil {
			t.Fatalf("%s: Keycloak must accept the new password: %v", c.u.Name, err)
		}
		if err := grant(ctx, e, c.u.Package, c.u.Name, c.before); !errors.Is(err, keycloak.ErrInvalidCredentials) {
			t.Fatalf("%s: Keycloak must refuse the old password: %v", c.u.Name, err)
		}
	}
	if r, _ := syncjob.Reconcile(ctx, e.RT.Users, jq, e.Config.PackageNames(), 0, time.Now()); r.Found != 0 {
		t.Fatalf("after the sync nobody is unsynced: %+v", r)
	}
	e.AssertNoSecrets(t, lost.Password, lostPw, purged.Password, purgedPw)
}

func TestDuplicateDeliveryChangesNothing(t *testing.T) {
	e := stacktest.New(t, fastBreaker, withJournal)
	ctx := context.Background()
	u := e.NewUser(t, "homechoice")
	restore := outage(t, e)
	pw := "changed-once-" + u.Password
	if got := changePassword(t, e, u, u.Password, pw); got != "queued" {
		t.Fatalf("sync %q", got)
	}
	restore()

	msgs, err := e.RT.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.QueueURL), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil || len(msgs.Messages) != 1 {
		t.Fatalf("receive: %v %v", msgs, err)
	}
	m := msgs.Messages[0]
	ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
		Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs"}}}
	kc := countWrites(e)
	w := e.RT.Worker()
	if _, out := w.Process(ctx, ev); out.Applied != 1 {
		t.Fatalf("first delivery: %+v", out)
	}
	writes := kc.writes()
	before, _ := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
	journalBefore, _ := e.RT.Journal.ListByUser(ctx, u.Package, u.Name, 0)

	// SQS delivers at least once: the same message again.
	resp, out := w.Process(ctx, ev)
	if len(resp.BatchItemFailures) != 0 || out.Superseded != 1 || kc.writes() != writes {
		t.Fatalf("second delivery: %+v, keycloak writes %d → %d", out, writes, kc.writes())
	}
	after, _ := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
	journalAfter, _ := e.RT.Journal.ListByUser(ctx, u.Package, u.Name, 0)
	if fmt.Sprint(before) != fmt.Sprint(after) || fmt.Sprint(journalBefore) != fmt.Sprint(journalAfter) {
		t.Fatalf("the second delivery changed state:\n%+v\n%+v\n%+v\n%+v", before, after, journalBefore, journalAfter)
	}
	if len(journalAfter) != 1 || journalAfter[0].Status != journal.Applied {
		t.Fatalf("journal %+v", journalAfter)
	}
	if err := grant(ctx, e, u.Package, u.Name, pw); err != nil {
		t.Fatalf("Keycloak must accept the new password: %v", err)
	}
}
