// Package breakertest is the conformance suite every breaker.Store backend
// must pass, so the in-memory fake cannot drift from DynamoDB.
package breakertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
)

// Harness is one backend under test.
type Harness struct {
	Store breaker.Store
	// Corrupt makes the named record unreadable; with keepGeneration false
	// even its generation is unreadable.
	Corrupt func(t *testing.T, name string, keepGeneration bool)
}

// Run runs the suite. newHarness is called per subtest; names are unique
// per subtest so a shared table is fine.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness, name string)
	}{
		{"GetMissing", testGetMissing},
		{"CreateOnce", testCreateOnce},
		{"RoundTrip", testRoundTrip},
		{"SwapIsConditional", testSwapConditional},
		{"AddFailure", testAddFailure},
		{"ClearFailures", testClearFailures},
		{"ConcurrentFailuresAllCount", testConcurrentFailures},
		{"ConcurrentSwapOneWinner", testConcurrentSwap},
		{"CorruptKeepsGeneration", func(t *testing.T, h Harness, n string) { testCorrupt(t, h, n, true) }},
		{"CorruptLosesGeneration", func(t *testing.T, h Harness, n string) { testCorrupt(t, h, n, false) }},
		{"NamesAreIndependent", testIndependent},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newHarness(t), fmt.Sprintf("http://keycloak-%d.test:8080/%s", i, c.name))
		})
	}
}

// t0 is whole milliseconds, the precision every backend keeps.
var t0 = time.UnixMilli(1_800_000_000_000)

func closedRec(gen uint64) breaker.Record {
	return breaker.Record{State: breaker.StateClosed, Generation: gen, Since: t0}
}

func mustSwap(t *testing.T, s breaker.Store, name string, expect uint64, r breaker.Record) {
	t.Helper()
	if err := s.Swap(context.Background(), name, expect, r); err != nil {
		t.Fatalf("Swap(expect %d): %v", expect, err)
	}
}

func mustGet(t *testing.T, s breaker.Store, name string) breaker.Record {
	t.Helper()
	r, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r
}

func testGetMissing(t *testing.T, h Harness, name string) {
	if _, err := h.Store.Get(context.Background(), name); !errors.Is(err, breaker.ErrNotFound) {
		t.Fatalf("Get missing = %v, want ErrNotFound", err)
	}
	if _, err := h.Store.AddFailure(context.Background(), name, 1); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("AddFailure missing = %v, want ErrConflict", err)
	}
}

func testCreateOnce(t *testing.T, h Harness, name string) {
	mustSwap(t, h.Store, name, 0, closedRec(1))
	if err := h.Store.Swap(context.Background(), name, 0, closedRec(1)); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
}

func testRoundTrip(t *testing.T, h Harness, name string) {
	for _, want := range []breaker.Record{
		closedRec(1),
		{State: breaker.StateOpen, Generation: 2, Since: t0.Add(time.Second), Failures: 3,
			OpenUntil: t0.Add(time.Minute), Reopens: 2, Reason: "3 consecutive failures", OpenedAt: t0.Add(-time.Minute)},
		{State: breaker.StateHalfOpen, Generation: 3, Since: t0.Add(2 * time.Minute), OpenUntil: t0.Add(time.Minute),
			Reopens: 2, LeaseUntil: t0.Add(3 * time.Minute), LeaseHolder: "i-1", Reason: "probing"},
		{State: breaker.StateOpen, Generation: 4, Since: t0, Forced: true, Reason: "forced"},
	} {
		mustSwap(t, h.Store, name, want.Generation-1, want)
		got := mustGet(t, h.Store, name)
		if !equal(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

func equal(a, b breaker.Record) bool {
	return a.State == b.State && a.Generation == b.Generation && a.Since.Equal(b.Since) &&
		a.Failures == b.Failures && a.OpenUntil.Equal(b.OpenUntil) && a.Reopens == b.Reopens &&
		a.LeaseUntil.Equal(b.LeaseUntil) && a.LeaseHolder == b.LeaseHolder && a.Forced == b.Forced && a.Reason == b.Reason &&
		a.OpenedAt.Equal(b.OpenedAt)
}

func testSwapConditional(t *testing.T, h Harness, name string) {
	ctx := context.Background()
	if err := h.Store.Swap(ctx, name, 1, closedRec(2)); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("Swap on missing with expect 1 = %v, want ErrConflict", err)
	}
	mustSwap(t, h.Store, name, 0, closedRec(1))
	if err := h.Store.Swap(ctx, name, 2, closedRec(3)); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("Swap with stale generation = %v, want ErrConflict", err)
	}
	mustSwap(t, h.Store, name, 1, breaker.Record{State: breaker.StateOpen, Generation: 2, Since: t0})
	if got := mustGet(t, h.Store, name); got.Generation != 2 || got.State != breaker.StateOpen {
		t.Fatalf("after swap: %+v", got)
	}
}

func testAddFailure(t *testing.T, h Harness, name string) {
	ctx := context.Background()
	mustSwap(t, h.Store, name, 0, closedRec(1))
	for want := 1; want <= 3; want++ {
		r, err := h.Store.AddFailure(ctx, name, 1)
		if err != nil || r.Failures != want || r.Generation != 1 || r.State != breaker.StateClosed {
			t.Fatalf("AddFailure #%d = %+v, %v", want, r, err)
		}
	}
	if _, err := h.Store.AddFailure(ctx, name, 7); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("AddFailure at stale generation = %v, want ErrConflict", err)
	}
	mustSwap(t, h.Store, name, 1, breaker.Record{State: breaker.StateOpen, Generation: 2, Since: t0, Failures: 3})
	if _, err := h.Store.AddFailure(ctx, name, 2); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("AddFailure while open = %v, want ErrConflict", err)
	}
	if got := mustGet(t, h.Store, name); got.Failures != 3 {
		t.Fatalf("failures while open changed to %d", got.Failures)
	}
}

func testClearFailures(t *testing.T, h Harness, name string) {
	ctx := context.Background()
	mustSwap(t, h.Store, name, 0, closedRec(1))
	if _, err := h.Store.AddFailure(ctx, name, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.ClearFailures(ctx, name, 2); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("ClearFailures at stale generation = %v, want ErrConflict", err)
	}
	if err := h.Store.ClearFailures(ctx, name, 1); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, h.Store, name); got.Failures != 0 || got.Generation != 1 {
		t.Fatalf("after clear: %+v", got)
	}
}

func testConcurrentFailures(t *testing.T, h Harness, name string) {
	mustSwap(t, h.Store, name, 0, closedRec(1))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := h.Store.AddFailure(context.Background(), name, 1); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("AddFailure: %v", err)
	}
	if got := mustGet(t, h.Store, name); got.Failures != n {
		t.Fatalf("failures = %d after %d concurrent AddFailure, want all counted", got.Failures, n)
	}
}

func testConcurrentSwap(t *testing.T, h Harness, name string) {
	mustSwap(t, h.Store, name, 0, closedRec(1))
	const n = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := breaker.Record{State: breaker.StateOpen, Generation: 2, Since: t0, Reason: fmt.Sprint("writer ", i)}
			switch err := h.Store.Swap(context.Background(), name, 1, next); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, breaker.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("Swap: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("%d writers won and %d lost, want exactly one winner", wins.Load(), conflicts.Load())
	}
}

func testCorrupt(t *testing.T, h Harness, name string, keepGen bool) {
	ctx := context.Background()
	mustSwap(t, h.Store, name, 0, closedRec(1))
	mustSwap(t, h.Store, name, 1, closedRec(5))
	h.Corrupt(t, name, keepGen)
	got, err := h.Store.Get(ctx, name)
	if !errors.Is(err, breaker.ErrCorrupt) {
		t.Fatalf("Get corrupt = %+v, %v; want ErrCorrupt", got, err)
	}
	wantGen := uint64(0)
	if keepGen {
		wantGen = 5
	}
	if got.Generation != wantGen {
		t.Fatalf("corrupt record generation = %d, want %d", got.Generation, wantGen)
	}
	if _, err := h.Store.AddFailure(ctx, name, 5); !errors.Is(err, breaker.ErrConflict) {
		t.Fatalf("AddFailure on corrupt = %v, want ErrConflict", err)
	}
	// The generation Get reported is the one that overwrites it.
	mustSwap(t, h.Store, name, got.Generation, closedRec(got.Generation+1))
	if r := mustGet(t, h.Store, name); r.Generation != got.Generation+1 || r.State != breaker.StateClosed {
		t.Fatalf("recreated record: %+v", r)
	}
}

func testIndependent(t *testing.T, h Harness, name string) {
	mustSwap(t, h.Store, name+"/a", 0, closedRec(1))
	mustSwap(t, h.Store, name+"/b", 0, breaker.Record{State: breaker.StateOpen, Generation: 9, Since: t0})
	if _, err := h.Store.AddFailure(context.Background(), name+"/a", 1); err != nil {
		t.Fatal(err)
	}
	if a, b := mustGet(t, h.Store, name+"/a"), mustGet(t, h.Store, name+"/b"); a.Failures != 1 || b.Failures != 0 || b.Generation != 9 {
		t.Fatalf("records leak into each other: a=%+v b=%+v", a, b)
	}
}
