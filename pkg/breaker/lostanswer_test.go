package breaker_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
)

// landingStore is a store whose next transition write lands but answers a
// timeout, as a PutItem against a stalled DynamoDB does when the client
// gives up after the server applied it. blindGets makes the reads after it
// fail too (the store is still stalled).
type landingStore struct {
	breaker.Store
	lose      atomic.Int64 // transition writes still to land with a lost answer
	blindGets atomic.Int64 // reads still to fail
}

var errLostAnswer = errors.New("operation error DynamoDB: PutItem, context deadline exceeded (test)")

func (s *landingStore) Swap(ctx context.Context, name string, expect uint64, next breaker.Record) error {
	if err := s.Store.Swap(ctx, name, expect, next); err != nil {
		return err
	}
	if s.lose.Add(-1) >= 0 {
		return errLostAnswer
	}
	return nil
}

func (s *landingStore) Get(ctx context.Context, name string) (breaker.Record, error) {
	if s.blindGets.Add(-1) >= 0 {
		return breaker.Record{}, errLostAnswer
	}
	return s.Store.Get(ctx, name)
}

func landingFixture() (*fixture, *landingStore) {
	f := newFixture()
	ls := &landingStore{Store: breaker.NewMemoryStore()}
	f.store = &flakyStore{Store: ls}
	return f, ls
}

// Finding 4: the open whose write landed but answered a timeout is the
// instance's transition: logged and notified once, and the instance acts
// on it (no call goes through an open breaker).
func TestTransitionWhoseAnswerWasLostIsReportedOnce(t *testing.T) {
	f, ls := landingFixture()
	a, b := f.instance("a"), f.instance("b")
	call(t, a, nil)
	call(t, a, errKeycloakDown)
	call(t, a, errKeycloakDown)
	ls.lose.Store(1)
	call(t, a, errKeycloakDown) // the third failure trips; the swap's answer is lost
	if call(t, a, nil) {
		t.Fatal("a called Keycloak through a breaker it had opened")
	}
	if call(t, b, nil) {
		t.Fatal("b called Keycloak through the open breaker")
	}
	if got, want := f.ev.transitions(), []string{"closed>open"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v (the open must be reported exactly once)", got, want)
	}
	// The probe lease and the verdict land with lost answers too: the probe
	// still runs and the close is reported (finding 16: the lease must not
	// be left to expire with nobody probing).
	f.clock.Advance(time.Minute)
	ls.lose.Store(2)
	if !call(t, a, nil) {
		t.Fatal("the probe whose lease landed did not run")
	}
	if st, _ := b.Status(context.Background()); st.State != breaker.StateClosed {
		t.Fatalf("state %s after a successful probe, want closed", st.State)
	}
	if got, want := f.ev.transitions(), []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// When even the read-back fails, the transition is unsure: reported by the
// first later read that shows it landed, once, and not at all when another
// instance's write is what the store holds.
func TestUnsureTransitionIsReportedWhenTheStoreAnswers(t *testing.T) {
	f, ls := landingFixture()
	a, b := f.instance("a"), f.instance("b")
	call(t, a, nil)
	call(t, a, errKeycloakDown)
	call(t, a, errKeycloakDown)
	ls.lose.Store(1)
	ls.blindGets.Store(1)
	call(t, a, errKeycloakDown) // trips; the answer and the read-back are lost
	if got := f.ev.transitions(); len(got) != 0 {
		t.Fatalf("events %v before anything showed the open landed", got)
	}
	f.clock.Advance(31 * time.Second) // a's fallback retries the store
	call(t, a, nil)
	if got, want := f.ev.transitions(), []string{"closed>open"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v: the open that landed is reported late, once", got, want)
	}
	for _, in := range []*breaker.Breaker{a, b, a} {
		call(t, in, nil) // later reads (state cache expired) must not report it again
		f.clock.Advance(31 * time.Second)
	}
	if got := f.ev.transitions(); slices.Index(got, "closed>open") != 0 || len(slices.DeleteFunc(got, func(s string) bool { return s != "closed>open" })) != 1 {
		t.Fatalf("events %v: the open reported more than once", got)
	}
}
