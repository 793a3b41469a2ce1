// Package userstest is the conformance suite every users.Store must pass.
// The in-memory fake and the DynamoDB store run the same cases, so the fake
// used by service tests cannot drift from production behaviour.
package userstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Window is the failure window the store under test must be built with
// (users.WithFailureWindow(userstest.Window)).
const Window = time.Hour

// Run runs every case against stores from newStore. newStore may return
// stores sharing one table: each case uses its own package names.
func Run(t *testing.T, newStore func(t *testing.T) users.Store) {
	cases := []testCase{
		{"CreateGet", testCreateGet},
		{"UsernameNormalised", testUsernameNormalised},
		{"UpdatePasswordCAS", testUpdatePasswordCAS},
		{"UpdateProfile", testUpdateProfile},
		{"MarkSyncedOnlyRaises", testMarkSynced},
		{"ListUnsyncedPages", testListUnsynced},
		{"ListFilterPages", testListFilter},
		{"LockoutKnownAndUnknown", testLockout},
		{"LockoutWindowExpires", testLockoutWindow},
		{"ReserveGateAndLock", testReserve},
		{"ReserveWindowRestarts", testReserveWindow},
		{"ReleaseKeepsALock", testReleaseKeepsLock},
		{"SourceFailures", testSourceFailures},
		{"KeycloakIDAndDelete", testKeycloakIDDelete},
		{"KeycloakVerdict", testVerdict},
		{"LearntHash", testLearntHash},
	}
	run(t, newStore, cases)
}

type testCase struct {
	name string
	fn   func(t *testing.T, s users.Store, pkg string)
}

func run(t *testing.T, newStore func(t *testing.T) users.Store, cases []testCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newStore(t), uniquePackage())
		})
	}
}

// RunConcurrent checks that compare-and-swap and the attempt reservation hold
// under concurrent callers. It needs a backend that serialises writes to an
// item, as DynamoDB does; moto (5.2.x) does not, so run it against the
// in-memory store and real DynamoDB only.
func RunConcurrent(t *testing.T, newStore func(t *testing.T) users.Store) {
	run(t, newStore, []testCase{
		{"ConcurrentUpdateOneWins", testConcurrentUpdate},
		{"ReserveAdmitsAtMostTheGate", testReserveConcurrent},
	})
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)

func uniquePackage() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "pkg-" + hex.EncodeToString(b)
}

func newUser(pkg, name string) users.User {
	return users.User{
		Package: pkg, Username: name, Email: name + "@example.test", Enabled: true,
		Attributes: map[string]string{"group": "staff"},
		Hash:       users.Hash{Algorithm: "argon2", SecretData: `{"value":"h-` + name + `"}`, CredentialData: `{"hashIterations":5}`},
	}
}

func mustCreate(t *testing.T, s users.Store, u users.User) users.User {
	t.Helper()
	got, err := s.Create(context.Background(), u, t0)
	if err != nil {
		t.Fatalf("create %s: %v", u.Username, err)
	}
	return got
}

func key(t *testing.T, pkg, name string) userkey.Key {
	t.Helper()
	k, err := userkey.New(pkg, name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sameUser(t *testing.T, got, want users.User) {
	t.Helper()
	g, w := fmt.Sprintf("%+v", strip(got)), fmt.Sprintf("%+v", strip(want))
	if g != w {
		t.Errorf("user differs\n got %s\nwant %s", g, w)
	}
	for _, p := range [][2]time.Time{{got.CreatedAt, want.CreatedAt}, {got.UpdatedAt, want.UpdatedAt}, {got.PasswordChangedAt, want.PasswordChangedAt}} {
		if !p[0].Equal(p[1]) {
			t.Errorf("time %v, want %v", p[0], p[1])
		}
	}
}

func strip(u users.User) users.User {
	u.CreatedAt, u.UpdatedAt, u.PasswordChangedAt = time.Time{}, time.Time{}, time.Time{}
	return u
}

func testCreateGet(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	created := mustCreate(t, s, newUser(pkg, "alice"))
	if created.Version != 1 || created.KeycloakSyncedVersion != 0 || !created.CreatedAt.Equal(t0) || !created.PasswordChangedAt.Equal(t0) {
		t.Errorf("create defaults: %+v", created)
	}
	got, err := s.Get(ctx, key(t, pkg, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, got, created)

	other := newUser(pkg, "alice")
	other.Email = "someone-else@example.test"
	if _, err := s.Create(ctx, other, t0); !errors.Is(err, users.ErrAlreadyExists) {
		t.Errorf("second create: %v, want ErrAlreadyExists", err)
	}
	// Exactly the same create again is what an SDK retry of a write whose
	// response was lost looks like: it succeeds and changes nothing.
	if again, err := s.Create(ctx, newUser(pkg, "alice"), t0); err != nil || again.Version != 1 {
		t.Errorf("replayed create: %+v, %v", again, err)
	}
	if _, err := s.Get(ctx, key(t, pkg, "nobody")); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("get missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, userkey.Key{Package: pkg, Username: "  "}); !errors.Is(err, userkey.ErrInvalid) {
		t.Errorf("blank username: %v, want ErrInvalidKey", err)
	}
	if _, err := s.Create(ctx, newUser("a#b", "x"), t0); !errors.Is(err, userkey.ErrInvalid) {
		t.Errorf("package with #: %v, want ErrInvalidKey", err)
	}
	// An oversize username is refused before it reaches the table (where
	// it would be a validation error, i.e. a 500 instead of a 401).
	if _, err := s.Lookup(ctx, userkey.Key{Package: pkg, Username: strings.Repeat("x", 3000)}, t0); !errors.Is(err, userkey.ErrInvalid) {
		t.Errorf("oversize username: %v, want ErrInvalidKey", err)
	}
	if _, _, err := s.List(ctx, "", users.Filter{}, 10, ""); !errors.Is(err, userkey.ErrInvalid) {
		t.Errorf("list without package: %v, want ErrInvalidKey", err)
	}
	// A migrated user arrives already in Keycloak: version 3, synced 3.
	m := newUser(pkg, "migrated")
	m.Version, m.KeycloakSyncedVersion, m.KeycloakID = 3, 3, "kc-1"
	mustCreate(t, s, m)
	e, err := s.Lookup(ctx, key(t, pkg, "migrated"), t0)
	if err != nil || !e.Found || e.User.Version != 3 || e.User.Unsynced() || e.Lockout.FailedAttempts != 0 {
		t.Errorf("lookup migrated: %+v, %v", e, err)
	}
	e, err = s.Lookup(ctx, key(t, pkg, "ghost"), t0)
	if err != nil || e.Found {
		t.Errorf("lookup unknown: %+v, %v", e, err)
	}
}

func testUsernameNormalised(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	created := mustCreate(t, s, newUser(pkg, " Bob.Smith "))
	if created.Username != "bob.smith" {
		t.Errorf("stored username %q, want bob.smith", created.Username)
	}
	if _, err := s.Create(ctx, newUser(pkg, "BOB.SMITH"), t0); !errors.Is(err, users.ErrAlreadyExists) {
		t.Errorf("case variant create: %v, want ErrAlreadyExists", err)
	}
	got, err := s.Get(ctx, userkey.Key{Package: pkg, Username: "BoB.sMiTh"})
	if err != nil || got.Username != "bob.smith" {
		t.Errorf("get by case variant: %+v, %v", got, err)
	}
}

func testUpdatePasswordCAS(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "carol"))
	k := key(t, pkg, "carol")
	h2 := users.Hash{Algorithm: "pbkdf2-sha512", SecretData: "s2", CredentialData: "c2"}
	t1 := t0.Add(time.Hour)
	u, err := s.UpdatePassword(ctx, k, 1, h2, t1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.Hash != h2 || !u.PasswordChangedAt.Equal(t1) || !u.UpdatedAt.Equal(t1) || !u.CreatedAt.Equal(t0) || !u.Unsynced() {
		t.Errorf("after update: %+v", u)
	}
	got, _ := s.Get(ctx, k)
	sameUser(t, got, u)

	// A replay of the same change (an SDK retry) is not a conflict...
	if again, err := s.UpdatePassword(ctx, k, 1, h2, t1); err != nil || again.Version != 2 {
		t.Errorf("replayed update: %+v, %v", again, err)
	}
	// ...another change from the same version is.
	h3 := users.Hash{Algorithm: "pbkdf2-sha512", SecretData: "s3", CredentialData: "c3"}
	if _, err := s.UpdatePassword(ctx, k, 1, h3, t1); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("stale version: %v, want ErrVersionConflict", err)
	}
	if got, _ := s.Get(ctx, k); got.Version != 2 || got.Hash != h2 {
		t.Errorf("after conflict: %+v", got)
	}
	if _, err := s.UpdatePassword(ctx, key(t, pkg, "nobody"), 1, h2, t1); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("missing user: %v, want ErrNotFound", err)
	}
}

func testConcurrentUpdate(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "dora"))
	k := key(t, pkg, "dora")
	const n = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		wins      int
		conflicts int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdatePassword(ctx, k, 1, users.Hash{Algorithm: "argon2", SecretData: fmt.Sprint(i)}, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, users.ErrVersionConflict):
				conflicts++
			default:
				t.Errorf("update: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != n-1 {
		t.Errorf("wins %d conflicts %d, want 1 and %d", wins, conflicts, n-1)
	}
}

func testUpdateProfile(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "erin"))
	k := key(t, pkg, "erin")
	t1 := t0.Add(time.Minute)
	u, err := s.UpdateProfile(ctx, k, 1, users.Profile{Email: "new@example.test", Attributes: map[string]string{"group": "ADMIN"}}, t1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || u.Email != "new@example.test" || u.Enabled || u.Attributes["group"] != "ADMIN" ||
		!u.UpdatedAt.Equal(t1) || !u.PasswordChangedAt.Equal(t0) || u.Hash.SecretData == "" {
		t.Errorf("after profile update: %+v", u)
	}
	u, err = s.UpdateProfile(ctx, k, 2, users.Profile{Enabled: true}, t1)
	if err != nil || u.Attributes != nil || !u.Enabled || u.Version != 3 {
		t.Errorf("clearing attributes: %+v, %v", u, err)
	}
	if _, err := s.UpdateProfile(ctx, k, 2, users.Profile{Email: "x@example.test"}, t1); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("stale: %v", err)
	}
}

func unsyncedNames(t *testing.T, s users.Store, pkg string) []string {
	t.Helper()
	var names []string
	cursor := ""
	for range 100 {
		page, next, err := s.ListUnsynced(context.Background(), pkg, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page {
			if !u.Unsynced() {
				t.Errorf("listed %s as unsynced: v%d synced %d", u.Username, u.Version, u.KeycloakSyncedVersion)
			}
			names = append(names, u.Username)
		}
		if next == "" {
			return names
		}
		cursor = next
	}
	t.Fatal("cursor never ended")
	return nil
}

func testMarkSynced(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "fay"))
	k := key(t, pkg, "fay")
	for v := int64(1); v <= 2; v++ {
		if _, err := s.UpdatePassword(ctx, k, v, users.Hash{Algorithm: "argon2", SecretData: fmt.Sprint(v)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Version is 3. A sync of version 2 finishing late raises the synced
	// version but the user stays unsynced.
	if ok, err := s.MarkSynced(ctx, k, 2); !ok || err != nil {
		t.Fatalf("mark 2: %v %v", ok, err)
	}
	if got := unsyncedNames(t, s, pkg); len(got) != 1 {
		t.Errorf("after sync of an older version: unsynced %v, want [fay]", got)
	}
	if ok, err := s.MarkSynced(ctx, k, 3); !ok || err != nil {
		t.Fatalf("mark 3: %v %v", ok, err)
	}
	if got := unsyncedNames(t, s, pkg); len(got) != 0 {
		t.Errorf("after catching up: unsynced %v", got)
	}
	// Duplicates and stragglers never lower it.
	for _, v := range []int64{3, 1} {
		if ok, err := s.MarkSynced(ctx, k, v); ok || err != nil {
			t.Errorf("mark %d again: %v %v, want false nil", v, ok, err)
		}
	}
	if u, _ := s.Get(ctx, k); u.KeycloakSyncedVersion != 3 || u.Unsynced() {
		t.Errorf("synced version %d", u.KeycloakSyncedVersion)
	}
	if _, err := s.MarkSynced(ctx, k, 4); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("future version: %v, want ErrVersionConflict", err)
	}
	if _, err := s.MarkSynced(ctx, key(t, pkg, "nobody"), 1); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("missing user: %v, want ErrNotFound", err)
	}
	// A new change puts the user back in the unsynced index.
	if _, err := s.UpdatePassword(ctx, k, 3, users.Hash{Algorithm: "argon2"}, t0); err != nil {
		t.Fatal(err)
	}
	if got := unsyncedNames(t, s, pkg); len(got) != 1 {
		t.Errorf("after new change: unsynced %v", got)
	}
}

func testListUnsynced(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	want := []string{}
	for i := range 5 {
		u := newUser(pkg, fmt.Sprintf("u%d", i))
		if i%2 == 1 {
			u.KeycloakSyncedVersion = 1 // already in Keycloak
		} else {
			want = append(want, u.Username)
		}
		mustCreate(t, s, u)
	}
	mustCreate(t, s, newUser(uniquePackage(), "u0")) // another package
	if got := unsyncedNames(t, s, pkg); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("unsynced %v, want %v", got, want)
	}
	if _, _, err := s.ListUnsynced(ctx, pkg, 2, "!!!not-base64"); err == nil {
		t.Error("bad cursor accepted")
	}
}

func testListFilter(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	var admins []string
	for i := range 7 {
		u := newUser(pkg, fmt.Sprintf("user%02d", i))
		if i%3 == 0 {
			u.Attributes = map[string]string{"group": "kcg-ADMIN-ops"}
			admins = append(admins, u.Username)
		}
		mustCreate(t, s, u)
	}
	list := func(f users.Filter, limit int) []string {
		var names []string
		cursor := ""
		for range 100 {
			page, next, err := s.List(ctx, pkg, f, limit, cursor)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Errorf("page of %d, limit %d", len(page), limit)
			}
			for _, u := range page {
				names = append(names, u.Username)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		return names
	}
	all := list(users.Filter{}, 3)
	if len(all) != 7 || !sort.StringsAreSorted(all) {
		t.Errorf("all users: %v", all)
	}
	if got := list(users.Filter{Attributes: map[string]string{"group": "admin"}}, 2); fmt.Sprint(got) != fmt.Sprint(admins) {
		t.Errorf("admins %v, want %v", got, admins)
	}
	if got := list(users.Filter{Attributes: map[string]string{"nope": "x"}}, 2); len(got) != 0 {
		t.Errorf("no match: %v", got)
	}
}

func testLockout(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "gus"))
	for _, name := range []string{"gus", "nobody-here"} {
		k := key(t, pkg, name)
		var a users.Attempt
		for i := 1; i <= 3; i++ {
			if a = reserve(t, s, k, 3, t0); !a.Admitted || a.N != i {
				t.Fatalf("%s attempt %d: %+v", name, i, a)
			}
		}
		until := t0.Add(5 * time.Minute)
		if err := s.FailAttempt(ctx, k, a, until, t0.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		e, err := s.Lookup(ctx, k, t0.Add(4*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		l := e.Lockout
		if e.Found != (name == "gus") || l.FailedAttempts != 3 || !l.LastFailureAt.Equal(t0.Add(3*time.Second)) ||
			!l.LockedUntil.Equal(until) || !l.Locked(t0.Add(4*time.Second)) || l.Locked(until) {
			t.Errorf("%s lookup: %+v", name, e)
		}
		if l2, _ := s.Lockout(ctx, k, t0.Add(4*time.Second)); l2 != l {
			t.Errorf("%s Lockout %+v, Lookup %+v", name, l2, l)
		}
		if ok, err := s.Release(ctx, k, until); err != nil || !ok {
			t.Fatalf("%s release: %v %v", name, ok, err)
		}
		if l, _ := s.Lockout(ctx, k, t0); l != (users.Lockout{}) {
			t.Errorf("%s after release: %+v", name, l)
		}
	}
	// The user record is untouched by lockout bookkeeping.
	if u, err := s.Get(ctx, key(t, pkg, "gus")); err != nil || u.Version != 1 {
		t.Errorf("user after lockout: %+v %v", u, err)
	}
	// Releasing a key with no counter is fine.
	if _, err := s.Release(ctx, key(t, pkg, "never-failed"), t0); err != nil {
		t.Error(err)
	}
}

func testLockoutWindow(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	k := key(t, pkg, "hal")
	for range 4 {
		a := reserve(t, s, k, 5, t0)
		if err := s.FailAttempt(ctx, k, a, time.Time{}, t0); err != nil {
			t.Fatal(err)
		}
	}
	late := t0.Add(Window + time.Second)
	if l, _ := s.Lockout(ctx, k, late); l.FailedAttempts != 0 {
		t.Errorf("counter outlived its window: %+v", l)
	}
	// A lock ending after the failure window keeps the item alive.
	a := reserve(t, s, k, 1, late)
	until := late.Add(30 * time.Minute)
	if err := s.FailAttempt(ctx, k, a, until, late); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, until.Add(Window/2)); l.FailedAttempts != 1 || !l.LockedUntil.Equal(until) {
		t.Errorf("lock forgotten early: %+v", l)
	}
}

func testKeycloakIDDelete(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "jo"))
	k := key(t, pkg, "jo")
	if err := s.SetKeycloakID(ctx, k, "kc-42"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Get(ctx, k); u.KeycloakID != "kc-42" || u.Version != 1 {
		t.Errorf("after SetKeycloakID: %+v", u)
	}
	if err := s.SetKeycloakID(ctx, key(t, pkg, "nobody"), "x"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
}

func testVerdict(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	u := newUser(pkg, "vera")
	u.Version, u.KeycloakSyncedVersion = 2, 2
	created := mustCreate(t, s, u)
	if created.HashStale || created.RequiredActions != nil || !created.KeycloakConfirmedAt.IsZero() {
		t.Fatalf("new user carries Keycloak state: %+v", created)
	}
	off, yes := false, true
	conf := t0.Add(time.Hour)
	got, err := s.ApplyVerdict(ctx, key(t, pkg, "vera"), 2, users.Verdict{
		Enabled: &off, HashStale: &yes, RequiredActions: []string{"UPDATE_PASSWORD", "VERIFY_EMAIL"},
		ConfirmedAt: conf, KeycloakID: "kc-vera"})
	if err != nil {
		t.Fatal(err)
	}
	want := created
	want.Enabled, want.HashStale, want.RequiredActions, want.KeycloakConfirmedAt, want.KeycloakID =
		false, true, []string{"UPDATE_PASSWORD", "VERIFY_EMAIL"}, conf, "kc-vera"
	sameUser(t, got, want)
	if !got.KeycloakConfirmedAt.Equal(conf) {
		t.Errorf("confirmed at %v, want %v", got.KeycloakConfirmedAt, conf)
	}
	read, err := s.Get(ctx, key(t, pkg, "vera"))
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, read, want)
	if read.Version != 2 || read.Unsynced() {
		t.Errorf("a verdict is not a kcguard change: version %d synced %d", read.Version, read.KeycloakSyncedVersion)
	}
	if names := unsyncedNames(t, s, pkg); len(names) != 0 {
		t.Errorf("a verdict must never make a user unsynced (it would be queued): %v", names)
	}
	// A kcguard change made since the verdict was formed wins.
	if _, err := s.ApplyVerdict(ctx, key(t, pkg, "vera"), 1, users.Verdict{Enabled: &yes}); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("stale expected version: %v, want ErrVersionConflict", err)
	}
	// Clearing: flags off, the actions list emptied; untouched fields stay.
	no := false
	got, err = s.ApplyVerdict(ctx, key(t, pkg, "vera"), users.AnyVersion, users.Verdict{Enabled: &yes, HashStale: &no, RequiredActions: []string{}})
	if err != nil || !got.Enabled || got.HashStale || got.RequiredActions != nil || got.KeycloakID != "kc-vera" || !got.KeycloakConfirmedAt.Equal(conf) {
		t.Errorf("clear: %+v %v", got, err)
	}
	if read, _ := s.Get(ctx, key(t, pkg, "vera")); read.HashStale || read.RequiredActions != nil || !read.Enabled {
		t.Errorf("cleared state not stored: %+v", read)
	}
	if _, err := s.ApplyVerdict(ctx, key(t, pkg, "nobody"), users.AnyVersion, users.Verdict{Enabled: &yes}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("missing user: %v, want ErrNotFound", err)
	}
}

func testLearntHash(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	u := newUser(pkg, "lena")
	u.Version, u.KeycloakSyncedVersion, u.HashStale = 4, 4, true
	mustCreate(t, s, u)
	learnt := users.Hash{Algorithm: "argon2", SecretData: `{"value":"learnt"}`, CredentialData: `{"hashIterations":5}`}
	no := false
	conf := t0.Add(2 * time.Hour)
	if _, err := s.ApplyVerdict(ctx, key(t, pkg, "lena"), 4, users.Verdict{Hash: &learnt}); err == nil {
		t.Error("a learnt hash without ConfirmedAt must be refused")
	}
	got, err := s.ApplyVerdict(ctx, key(t, pkg, "lena"), 4, users.Verdict{Hash: &learnt, HashStale: &no, ConfirmedAt: conf})
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != learnt || got.HashStale || got.Version != 4 || got.Unsynced() || !got.PasswordChangedAt.Equal(conf) {
		t.Errorf("learnt: %+v", got)
	}
	// kcguard's own pending change is never overwritten by a learnt hash.
	yes := true
	if _, err := s.ApplyVerdict(ctx, key(t, pkg, "lena"), 4, users.Verdict{HashStale: &yes}); err != nil {
		t.Fatal(err)
	}
	mine := users.Hash{Algorithm: "argon2", SecretData: `{"value":"mine"}`, CredentialData: `{"hashIterations":5}`}
	changed, err := s.UpdatePassword(ctx, key(t, pkg, "lena"), 4, mine, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if changed.HashStale {
		t.Error("a new local hash (an operator's set-password) is no longer the stale one")
	}
	if _, err := s.ApplyVerdict(ctx, key(t, pkg, "lena"), changed.Version, users.Verdict{Hash: &learnt, ConfirmedAt: conf}); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("learn over an unsynced change: %v, want ErrVersionConflict", err)
	}
	if read, _ := s.Get(ctx, key(t, pkg, "lena")); read.Hash != mine {
		t.Errorf("the pending change was overwritten: %+v", read.Hash)
	}
}
func reserve(t *testing.T, s users.Store, k userkey.Key, maxFailures int, now time.Time) users.Attempt {
	t.Helper()
	a, err := s.Reserve(context.Background(), k, maxFailures, now)
	if err != nil {
		t.Fatalf("reserve %s: %v", k, err)
	}
	return a
}

func testReserve(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	mustCreate(t, s, newUser(pkg, "kit"))
	const max = 3
	for _, name := range []string{"kit", "nobody-at-all"} {
		k := key(t, pkg, name)
		for i := 1; i <= max; i++ {
			if a := reserve(t, s, k, max, t0); !a.Admitted || a.N != i {
				t.Fatalf("%s attempt %d: %+v", name, i, a)
			}
		}
		// The gate is reached while the third check is in flight: refused, nothing counted.
		if a := reserve(t, s, k, max, t0); a.Admitted || !a.LockedUntil.IsZero() {
			t.Fatalf("%s over the gate: %+v", name, a)
		}
		until := t0.Add(30 * time.Second)
		if err := s.FailAttempt(ctx, k, users.Attempt{Admitted: true, N: max}, until, t0); err != nil {
			t.Fatal(err)
		}
		if a := reserve(t, s, k, max, t0.Add(time.Second)); a.Admitted || !a.LockedUntil.Equal(until) {
			t.Fatalf("%s while locked: %+v", name, a)
		}
		e, err := s.Lookup(ctx, k, t0.Add(time.Second))
		if err != nil || e.Lockout.FailedAttempts != max || !e.Lockout.LockedUntil.Equal(until) || !e.Lockout.LastFailureAt.Equal(t0) {
			t.Fatalf("%s lookup while locked: %+v %v", name, e.Lockout, err)
		}
		// Once the lock is over exactly one more attempt runs.
		after := until.Add(time.Second)
		if a := reserve(t, s, k, max, after); !a.Admitted || a.N != max+1 {
			t.Fatalf("%s after the lock: %+v", name, a)
		}
		if a := reserve(t, s, k, max, after); a.Admitted {
			t.Fatalf("%s second attempt after the lock must wait for the first: %+v", name, a)
		}
		// An attempt whose outcome never came (a crash, a dropped write)
		// holds the gate only so long: then one more is admitted.
		if a := reserve(t, s, k, max, after.Add(users.LostReservation-time.Second)); a.Admitted {
			t.Fatalf("%s admitted while the last attempt may still report: %+v", name, a)
		}
		lost := after.Add(users.LostReservation)
		if a := reserve(t, s, k, max, lost); !a.Admitted || a.N != max+2 {
			t.Fatalf("%s after a lost reservation: %+v", name, a)
		}
		if a := reserve(t, s, k, max, lost); a.Admitted {
			t.Fatalf("%s only one attempt replaces a lost one: %+v", name, a)
		}
		after = lost
		// A failure below the threshold never lifts or sets a lock.
		if err := s.FailAttempt(ctx, k, users.Attempt{Admitted: true, N: 1}, time.Time{}, after); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Release(ctx, k, after); err != nil || !ok {
			t.Fatalf("%s release after the lock: %v %v", name, ok, err)
		}
		if a := reserve(t, s, k, max, after); !a.Admitted || a.N != 1 {
			t.Fatalf("%s after release: %+v", name, a)
		}
	}
	if u, err := s.Get(ctx, key(t, pkg, "kit")); err != nil || u.Version != 1 {
		t.Errorf("user after reservations: %+v %v", u, err)
	}
}

func testReserveWindow(t *testing.T, s users.Store, pkg string) {
	k := key(t, pkg, "lou")
	for i := 1; i <= 2; i++ {
		reserve(t, s, k, 5, t0)
	}
	if a := reserve(t, s, k, 5, t0.Add(Window+time.Second)); !a.Admitted || a.N != 1 {
		t.Errorf("a counter past its window must restart: %+v", a)
	}
}

func testReleaseKeepsLock(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	k := key(t, pkg, "max")
	reserve(t, s, k, 2, t0)
	right := reserve(t, s, k, 2, t0) // a correct password, still being checked
	until := t0.Add(time.Minute)
	// A parallel wrong guess at the threshold locks the key first ...
	if err := s.FailAttempt(ctx, k, users.Attempt{Admitted: true, N: 2}, until, t0); err != nil {
		t.Fatal(err)
	}
	// ... so the success racing it must not clear the lock.
	if ok, err := s.Release(ctx, k, t0); err != nil || ok {
		t.Fatalf("release while locked: %v %v (attempt %+v)", ok, err, right)
	}
	if l, _ := s.Lockout(ctx, k, t0); !l.LockedUntil.Equal(until) || l.FailedAttempts != 2 {
		t.Fatalf("lock lost: %+v", l)
	}
	// A failure never shortens a lock either.
	if err := s.FailAttempt(ctx, k, users.Attempt{Admitted: true, N: 1}, time.Time{}, t0); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, t0); !l.LockedUntil.Equal(until) {
		t.Fatalf("a later failure below the threshold lifted the lock: %+v", l)
	}
}

func testSourceFailures(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	src := "src-" + pkg
	if l, err := s.SourceFailures(ctx, src, t0); err != nil || l != (users.Lockout{}) {
		t.Fatalf("fresh source: %+v %v", l, err)
	}
	until := t0.Add(10 * time.Second)
	for i := 1; i <= 3; i++ {
		l := users.Lockout{FailedAttempts: i}
		if i == 3 {
			l.LockedUntil = until
		}
		if err := s.RecordSourceFailure(ctx, src, l, t0); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.SourceFailures(ctx, src, t0)
	if err != nil || l.FailedAttempts != 3 || !l.LockedUntil.Equal(until) || !l.LastFailureAt.Equal(t0) {
		t.Fatalf("source after 3 failures: %+v %v", l, err)
	}
	// Source counters are apart from user keys: the users it named are untouched.
	if lo, _ := s.Lockout(ctx, key(t, pkg, src), t0); lo != (users.Lockout{}) {
		t.Fatalf("a source counter leaked into a user key: %+v", lo)
	}
	if l, _ := s.SourceFailures(ctx, src, until.Add(users.DefaultSourceWindow+time.Second)); l != (users.Lockout{}) {
		t.Fatalf("source counter outlived its window: %+v", l)
	}
	if _, err := s.SourceFailures(ctx, "", t0); !errors.Is(err, userkey.ErrInvalid) {
		t.Fatalf("empty source: %v", err)
	}
}

// Parallel reserves the gate admits, and what one test run admits.
const (
	ParallelGuesses = 200
	GuessGate       = 5
)

func testReserveConcurrent(t *testing.T, s users.Store, pkg string) {
	k := key(t, pkg, "ned")
	admitted := ReserveInParallel(t, s, k, ParallelGuesses, GuessGate)
	if len(admitted) != GuessGate {
		t.Errorf("%d of %d parallel reservations admitted, want %d", len(admitted), ParallelGuesses, GuessGate)
	}
	for i, n := range admitted {
		if n != i+1 {
			t.Errorf("admitted attempt numbers %v, want 1..%d", admitted, GuessGate)
			break
		}
	}
}

// ReserveInParallel fires n reservations at once and returns the sorted
// attempt numbers of those admitted.
func ReserveInParallel(t *testing.T, s users.Store, k userkey.Key, n, maxFailures int) []int {
	t.Helper()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted []int
		start    = make(chan struct{})
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := s.Reserve(context.Background(), k, maxFailures, t0)
			if err != nil {
				t.Error(err)
				return
			}
			if a.Admitted {
				mu.Lock()
				admitted = append(admitted, a.N)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	sort.Ints(admitted)
	return admitted
}

// T0 is the suite's clock.
func T0() time.Time { return t0 }
