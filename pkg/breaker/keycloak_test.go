package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// TestFleetRealKeycloak cuts a private toxiproxy path to the real Keycloak
// under a fleet sharing a moto table: the fleet opens, one probe goes out
// after the cooldown, and it closes the breaker for everyone.
func TestFleetRealKeycloak(t *testing.T) {
	url, proxy := testenv.Keycloak(t)
	db, table := dynamoTable(t)
	store := breaker.NewDynamoStore(db, table)
	realm := testenv.Homechoice
	kcClient, err := keycloak.New(keycloak.Options{BaseURL: url, RequestTimeout: 5 * time.Second,
		Packages: map[string]keycloak.Realm{realm.Name: {Realm: realm.Name, ClientID: realm.ClientID, ClientSecret: realm.ClientSecret}}})
	if err != nil {
		t.Fatal(err)
	}

	const instances, perInstance = 8, 4
	clk, ev := newClock(), &events{}
	fleet := make([]*breaker.Breaker, instances)
	for i := range fleet {
		fleet[i] = breaker.New(store, breaker.Settings{
			Name: url, FailureThreshold: 3, Cooldown: time.Minute, StateCacheTTL: 30 * time.Second,
			ProbeLease: 20 * time.Second, StoreTimeout: 10 * time.Second, IsSuccessful: keycloakAnswered,
			Now: clk.Now, Notifier: ev, Instance: fmt.Sprint("i", i), Logger: slog.New(slog.DiscardHandler),
		})
	}
	// Calls that reached Keycloak (or tried to), and the probe window.
	var reached, failed atomic.Int64
	var mu sync.Mutex
	watching, returned, beforeFirst := false, false, 0
	login := func(ctx context.Context, user, pass string) error {
		reached.Add(1)
		mu.Lock()
		if watching && !returned {
			beforeFirst++
		}
		mu.Unlock()
		_, err := kcClient.PasswordGrant(ctx, realm.Name, user, pass)
		mu.Lock()
		returned = returned || watching
		mu.Unlock()
		if err != nil && !keycloakAnswered(err) {
			failed.Add(1)
		}
		return err
	}
	ctx := context.Background()
	// Other packages' tests may be changing seeded passwords right now, so
	// a healthy login is only required to get an answer from Keycloak.
	for user, pass := range realm.Users {
		for _, b := range fleet {
			if err := b.Execute(ctx, func(ctx context.Context) error { return login(ctx, user, pass) }); !keycloakAnswered(err) {
				t.Fatalf("healthy login %s: %v", user, err)
			}
		}
	}
	// A wrong password is Keycloak answering, not an outage. It goes to a
	// user of this test's own: wrong passwords for the seeded users would
	// trip Keycloak's brute-force detector for every other test.
	victim, victimPassword := createUser(t, kcClient, realm.Name)
	for _, b := range fleet {
		err := b.Execute(ctx, func(ctx context.Context) error { return login(ctx, victim, "wrong-"+victimPassword) })
		if !errors.Is(err, keycloak.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v, want invalid credentials from Keycloak", err)
		}
	}
	if st, _ := fleet[0].Status(ctx); st.State != breaker.StateClosed || st.Failures != 0 {
		t.Fatalf("after healthy and wrong-password logins: %+v", st)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Blind calls were let through before their instance had been told of
	// any failure (in flight); informed ones after (see runFleet).
	var saw [instances]atomic.Bool
	var blind, informed atomic.Int64
	for c := range instances * perInstance {
		i := c % instances
		b := fleet[i]
		wg.Go(func() {
			for runCtx.Err() == nil {
				knew := saw[i].Load()
				err := b.Execute(runCtx, func(ctx context.Context) error {
					err := login(ctx, "alice.hc", realm.Users["alice.hc"])
					if err != nil && !keycloakAnswered(err) {
						if knew {
							informed.Add(1)
						} else {
							blind.Add(1)
						}
					}
					return err
				})
				switch {
				case errors.Is(err, breaker.ErrOpen):
					time.Sleep(time.Millisecond) // an open breaker answers at once; do not spin
				case err != nil && !keycloakAnswered(err):
					saw[i].Store(true)
				}
			}
		})
	}
	defer func() { stop(); wg.Wait() }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s; events %v", what, ev.transitions())
			}
		}
	}
	all := func(want breaker.State) func() bool {
		return func() bool {
			for _, b := range fleet {
				if b.State(ctx).State != want {
					return false
				}
			}
			return true
		}
	}

	proxy.Disable()
	waitFor("every instance open", all(breaker.StateOpen))
	paid := failed.Load()
	t.Logf("real Keycloak cut: %d calls paid the failure before all %d instances (%d callers) stopped: %d in flight (blind), %d informed",
		paid, instances, instances*perInstance, blind.Load(), informed.Load())
	if limit := int64(3 + instances); informed.Load() > limit {
		t.Fatalf("%d calls let through after their instance saw a failure, want at most threshold+instances = %d", informed.Load(), limit)
	}
	before := reached.Load()
	time.Sleep(200 * time.Millisecond) // callers keep trying; none may get through
	if n := reached.Load() - before; n != 0 {
		t.Fatalf("%d calls reached Keycloak while the fleet was open", n)
	}

	proxy.Enable()
	mu.Lock()
	watching = true
	mu.Unlock()
	clk.Advance(time.Minute)
	waitFor("the probe to close the breaker", func() bool { return len(ev.list()) >= 3 })
	mu.Lock()
	probes := beforeFirst
	mu.Unlock()
	if probes != 1 {
		t.Fatalf("%d calls reached Keycloak in the half-open period, want exactly one probe", probes)
	}
	clk.Advance(30 * time.Second)
	waitFor("every instance closed", all(breaker.StateClosed))
	if got, want := ev.transitions(), []string{"closed>open", "open>half-open", "half-open>closed"}; !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
}

// createUser makes a user of the test's own in Keycloak (deleted at the end).
func createUser(t *testing.T, kc *keycloak.Client, pkg string) (string, string) {
	t.Helper()
	h, err := credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	name, password := testenv.Unique("breaker-user"), testenv.Unique("Pw")
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	id, err := kc.CreateUser(context.Background(), pkg, keycloak.UserSpec{Username: name, Email: name + "@example.com",
		EmailVerified: true, FirstName: "Breaker", LastName: "Test", Password: hash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.DeleteUser(context.Background(), pkg, id) })
	return name, password
}
