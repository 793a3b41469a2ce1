package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/users"
)

// fakeClock is the injected clock: time moves only when a check "costs"
// something or the service sleeps.
type fakeClock struct{ now time.Time }

// pricedHasher checks passwords for real (with cheap parameters) but
// charges the clock what the stored algorithm costs at Keycloak's defaults.
type pricedHasher struct {
	PasswordHasher
	clock *fakeClock
	price map[credential.Algorithm]time.Duration
}

func (p pricedHasher) Verify(h credential.Hash, pw string) (bool, error) {
	p.clock.now = p.clock.now.Add(p.price[h.Algorithm])
	return p.PasswordHasher.Verify(h, pw)
}

func (p pricedHasher) VerifyDummy(pw string) bool {
	p.clock.now = p.clock.now.Add(p.price[p.Params().Algorithm]) // the dummy uses the configured algorithm
	return p.PasswordHasher.VerifyDummy(pw)
}

// The figures of issue 11 finding 5: pbkdf2-sha512 210k ~220 ms,
// argon2id m=7168 t=5 ~22 ms.
var keycloakPrices = map[credential.Algorithm]time.Duration{
	credential.PBKDF2SHA512: 220 * time.Millisecond,
	credential.Argon2:       22 * time.Millisecond,
}

func TestFailedChecksCostTheSameWhateverTheAlgorithm(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var slept []time.Duration
	h := newHarness(t, func(d *Deps, s *Settings) {
		d.Hasher = pricedHasher{PasswordHasher: d.Hasher, clock: clock, price: keycloakPrices}
		s.Now = func() time.Time { return clock.now }
		s.Sleep = func(_ context.Context, d time.Duration) {
			slept = append(slept, d)
			clock.now = clock.now.Add(d)
		}
		s.SourceMaxFailures = -1
	})
	// An imported user still on pbkdf2-sha512, and one on the configured argon2.
	pb, err := credential.NewHasher(credential.Params{Algorithm: credential.PBKDF2SHA512, Iterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := pb.Hash("imported-password-1")
	if _, err := h.users.Create(context.Background(), users.User{Package: pkg, Username: "imported", Enabled: true,
		Hash: users.NewHash(hash)}, h.now); err != nil {
		t.Fatal(err)
	}
	h.addUser(t, "native", "native-password-1", "native-password-1")

	cost := func(user, pw string) (time.Duration, error) {
		start := clock.now
		_, err := h.login(user, pw)
		return clock.now.Sub(start), err
	}
	// Before any pbkdf2 hash has been checked, failures cost what their own check costs.
	unknownBefore, _ := cost("nobody", "some-password")
	importedWrong, err := cost("imported", "wrong-password")
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	unknownAfter, _ := cost("nobody-else", "some-password")
	nativeWrong, _ := cost("native", "wrong-password")
	t.Logf("failed check, injected clock: unknown user before %s; pbkdf2 user %s, unknown user %s, argon2 user %s after",
		unknownBefore, importedWrong, unknownAfter, nativeWrong)
	if unknownBefore != 22*time.Millisecond || importedWrong != 220*time.Millisecond {
		t.Fatalf("unpadded costs %s / %s, want the prices 22ms / 220ms", unknownBefore, importedWrong)
	}
	// Once the dearest check in use is known, every failure costs as much: spread 0 (it was 198 ms).
	if unknownAfter != importedWrong || nativeWrong != importedWrong {
		t.Fatalf("failed checks cost %s (unknown) / %s (argon2) / %s (pbkdf2): the spread must be 0", unknownAfter, nativeWrong, importedWrong)
	}
	// A success is not padded: its answer already says the password was right.
	n := len(slept)
	if ok, _ := cost("native", "native-password-1"); ok != 22*time.Millisecond || len(slept) != n {
		t.Fatalf("success cost %s with %d sleeps, want 22ms and none", ok, len(slept)-n)
	}
}

func TestCheckCostsForgetAStall(t *testing.T) {
	var c checkCosts
	c.observe("argon2", 22*time.Millisecond)
	c.observe("argon2", 500*time.Millisecond) // one stalled check
	if p := c.padding(22 * time.Millisecond); p <= 0 || p > 100*time.Millisecond {
		t.Fatalf("after one stall the padding is %s: a moving average, not the maximum", p)
	}
	for range 40 {
		c.observe("argon2", 22*time.Millisecond)
	}
	if p := c.padding(22 * time.Millisecond); p > time.Millisecond {
		t.Fatalf("the stall is still paid for: %s", p)
	}
	if p := c.padding(time.Second); p != 0 {
		t.Fatalf("a check dearer than all costs waits no more: %s", p)
	}
}
