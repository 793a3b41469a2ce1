package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// countingHasher counts password checks where they cost: at the hasher.
type countingHasher struct {
	PasswordHasher
	checks   atomic.Int64
	onVerify func(password string) // runs inside a check of a stored hash
}

func (c *countingHasher) Verify(h credential.Hash, password string) (bool, error) {
	c.checks.Add(1)
	if c.onVerify != nil {
		c.onVerify(password)
	}
	return c.PasswordHasher.Verify(h, password)
}

func (c *countingHasher) VerifyDummy(password string) bool {
	c.checks.Add(1)
	return c.PasswordHasher.VerifyDummy(password)
}

func withCountingHasher(c **countingHasher) func(*Deps, *Settings) {
	return func(d *Deps, _ *Settings) {
		*c = &countingHasher{PasswordHasher: d.Hasher}
		d.Hasher = *c
	}
}

// guessInParallel fires n logins with wrong passwords at once and sorts
// the answers.
func guessInParallel(h *harness, user string, n int, source func(i int) string) (refused, locked, other int) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: user,
				Password: fmt.Sprintf("guess-%03d", i), SourceIP: source(i)})
			var le *LockedError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrInvalidCredentials):
				refused++
			case errors.As(err, &le):
				locked++
			default:
				other++
			}
		}()
	}
	close(start)
	wg.Wait()
	return refused, locked, other
}

func TestParallelGuessesCheckAtMostMaxFailures(t *testing.T) {
	for _, user := range []string{"alice", "ghost"} { // a known user and an unknown one
		t.Run(user, func(t *testing.T) {
			var c *countingHasher
			h := newHarness(t, withCountingHasher(&c))
			h.addUser(t, "alice", "alice-password-1", "alice-password-1")
			const guesses, max = 200, 5
			// Every guess from its own address: the per-user lockout alone must hold.
			refused, locked, other := guessInParallel(h, user, guesses, func(i int) string { return fmt.Sprintf("198.51.100.%d", i) })
			t.Logf("%d parallel guesses: %d passwords checked, %d refused as wrong, %d refused as locked",
				guesses, c.checks.Load(), refused, locked)
			if got := c.checks.Load(); got > max {
				t.Fatalf("%d passwords checked at the hasher, want at most max_failures = %d", got, max)
			}
			if refused != max || locked != guesses-max || other != 0 {
				t.Fatalf("answers: %d wrong, %d locked, %d other; want %d / %d / 0", refused, locked, other, max, guesses-max)
			}
			before := c.checks.Load()
			_, err := h.login(user, "alice-password-1")
			var le *LockedError
			if !errors.As(err, &le) || le.RetryAfter != 30*time.Second {
				t.Fatalf("the right password while locked: %v, want locked for 30s", err)
			}
			if c.checks.Load() != before {
				t.Fatal("a locked attempt must not be hashed")
			}
			// After the lock exactly one more guess is checked, then 60 s.
			h.now = h.now.Add(31 * time.Second)
			refused, locked, _ = guessInParallel(h, user, 20, func(i int) string { return fmt.Sprintf("203.0.113.%d", i) })
			if refused != 1 || locked != 19 || c.checks.Load() != before+1 {
				t.Fatalf("after the lock: %d checked, %d locked, hasher +%d; want 1 / 19 / +1", refused, locked, c.checks.Load()-before)
			}
			if _, err := h.login(user, "alice-password-1"); !errors.As(err, &le) || le.RetryAfter != 60*time.Second {
				t.Fatalf("the delay must grow to 60s: %v", err)
			}
		})
	}
}

func TestSuccessRacingALockKeepsIt(t *testing.T) {
	var c *countingHasher
	h := newHarness(t, withCountingHasher(&c))
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	var once sync.Once
	c.onVerify = func(pw string) {
		if pw != "alice-password-1" {
			return
		}
		// While the right password is being checked, four wrong guesses
		// land and the last of them locks the key.
		once.Do(func() {
			for i := range 4 {
				if _, err := h.login("alice", fmt.Sprintf("wrong-%d", i)); !errors.Is(err, ErrInvalidCredentials) {
					t.Errorf("guess %d: %v", i, err)
				}
			}
		})
	}
	if _, err := h.login("alice", "alice-password-1"); err != nil {
		t.Fatalf("the right password, admitted before the lock, still logs in: %v", err)
	}
	lo, _ := h.users.Lockout(context.Background(), userkey.Key{Package: pkg, Username: "alice"}, h.now)
	if !lo.Locked(h.now) || lo.FailedAttempts != 5 {
		t.Fatalf("the success cleared the lock a parallel failure set: %+v", lo)
	}
	var le *LockedError
	if _, err := h.login("alice", "alice-password-1"); !errors.As(err, &le) {
		t.Fatalf("the lock must stand: %v", err)
	}
	// Once it is over, a success clears the count again.
	h.now = h.now.Add(time.Minute)
	if _, err := h.login("alice", "alice-password-1"); err != nil {
		t.Fatal(err)
	}
	if lo, _ := h.users.Lockout(context.Background(), userkey.Key{Package: pkg, Username: "alice"}, h.now); lo.FailedAttempts != 0 {
		t.Fatalf("count after a success: %+v", lo)
	}
}

func TestSourceThrottleSparesTheUsersItNamed(t *testing.T) {
	var c *countingHasher
	h := newHarness(t, withCountingHasher(&c))
	known := []string{"user-03", "user-42", "user-77"}
	for _, name := range known {
		h.addUser(t, name, name+"-password-1", name+"-password-1")
	}
	const attacker, names = "192.0.2.66", 100
	var checked, throttled int
	var first *ThrottledError
	for i := range names { // one guess per username, from one address
		_, err := h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: fmt.Sprintf("user-%02d", i),
			Password: "Summer2026!", SourceIP: attacker})
		var te *ThrottledError
		switch {
		case errors.Is(err, ErrInvalidCredentials):
			checked++
		case errors.As(err, &te):
			throttled++
			if first == nil {
				first = te
			}
		default:
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	t.Logf("1 source x %d usernames: %d checked, then 429 too_many_requests (first Retry-After %s); hasher checks %d",
		names, checked, first.RetryAfter, c.checks.Load())
	if checked != 20 || throttled != names-20 || c.checks.Load() != 20 {
		t.Fatalf("%d checked, %d throttled, %d hashed; want 20 / %d / 20", checked, throttled, c.checks.Load(), names-20)
	}
	if first.RetryAfter != 10*time.Second {
		t.Fatalf("first source delay %s, want 10s", first.RetryAfter)
	}
	for i := range names {
		k := userkey.Key{Package: pkg, Username: fmt.Sprintf("user-%02d", i)}
		if lo, _ := h.users.Lockout(context.Background(), k, h.now); lo.Locked(h.now) || lo.FailedAttempts > 1 {
			t.Fatalf("%s was locked by the source's spray: %+v", k.Username, lo)
		}
	}
	for _, name := range known {
		res, err := h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: name, Password: name + "-password-1",
			SourceIP: "198.51.100.7"})
		if err != nil || res.SessionToken == "" {
			t.Fatalf("%s from another address: %v", name, err)
		}
	}
	// The source's delay grows with each failure past the threshold.
	h.now = h.now.Add(11 * time.Second)
	h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: "user-99", Password: "x-password-x", SourceIP: attacker})
	_, err := h.svc.Login(context.Background(), LoginInput{Package: pkg, Username: "user-98", Password: "x-password-x", SourceIP: attacker})
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 20*time.Second {
		t.Fatalf("second source delay: %v, want 20s", err)
	}
}

func TestAuditKeepsUnknownUsernamesAsKeyedHashes(t *testing.T) {
	key := []byte("audit-key-for-tests")
	h := newHarness(t, func(d *Deps, _ *Settings) { d.UsernameKey = key })
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	typed := "Alice-Password-1" // the password, typed into the username field
	h.login(typed, "alice-password-1")
	h.login("alice", "wrong-password")
	h.login(typed, "again")
	var names []string
	for _, e := range h.recorder.audits {
		if strings.Contains(strings.ToLower(e.Username), strings.ToLower(typed)) {
			t.Fatalf("the typed username is in the audit trail: %+v", e)
		}
		names = append(names, e.Username)
	}
	if len(names) != 3 || !strings.HasPrefix(names[0], audit.PseudonymPrefix) || names[1] != "alice" || names[2] != names[0] {
		t.Fatalf("audit usernames %q: want a stable pseudonym, the known user's own name, the same pseudonym", names)
	}
	// The same key gives the same pseudonym in another instance; another key does not.
	if audit.NewPseudonyms(key).Username(pkg, userkey.NormalizeUsername(typed)) != names[0] ||
		audit.NewPseudonyms([]byte("other")).Username(pkg, userkey.NormalizeUsername(typed)) == names[0] {
		t.Fatal("pseudonyms must be keyed and stable")
	}
}

func TestAGuesserThatHangsUpIsStillCounted(t *testing.T) {
	var c *countingHasher
	h := newHarness(t, withCountingHasher(&c))
	h.addUser(t, "alice", "alice-password-1", "alice-password-1")
	for i := range 8 {
		ctx, cancel := context.WithCancel(context.Background())
		c.onVerify = func(string) { cancel() } // the client hangs up while its guess is checked
		h.svc.Login(ctx, LoginInput{Package: pkg, Username: "alice", Password: fmt.Sprintf("guess-%d", i), SourceIP: "192.0.2.5"})
	}
	if got := c.checks.Load(); got != 5 {
		t.Fatalf("%d guesses checked, want max_failures = 5: a hang-up must not skip the count or the lock", got)
	}
	c.onVerify = nil
	var le *LockedError
	if _, err := h.login("alice", "alice-password-1"); !errors.As(err, &le) || le.RetryAfter != 30*time.Second {
		t.Fatalf("want locked for 30s: %v", err)
	}
}
