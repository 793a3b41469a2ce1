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
		{"KeycloakIDAndDelete", testKeycloakIDDelete},
		{"RecordKeycloakState", testRecordKeycloakState},
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

// RunConcurrent checks that compare-and-swap and the failure counter hold
// under concurrent callers. It needs a backend that serialises writes to an
// item, as DynamoDB does; moto (5.2.x) does not, so run it against the
// in-memory store and real DynamoDB only.
func RunConcurrent(t *testing.T, newStore func(t *testing.T) users.Store) {
	run(t, newStore, []testCase{
		{"ConcurrentUpdateOneWins", testConcurrentUpdate},
		{"RecordFailureAtomic", testRecordFailureAtomic},
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

func key(t *testing.T, pkg, name string) users.Key {
	t.Helper()
	k, err := users.NewKey(pkg, name)
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
	if _, err := s.Get(ctx, users.Key{Package: pkg, Username: "  "}); !errors.Is(err, users.ErrInvalidKey) {
		t.Errorf("blank username: %v, want ErrInvalidKey", err)
	}
	if _, err := s.Create(ctx, newUser("a#b", "x"), t0); !errors.Is(err, users.ErrInvalidKey) {
		t.Errorf("package with #: %v, want ErrInvalidKey", err)
	}
	// An oversize username is refused before it reaches the table (where
	// it would be a validation error, i.e. a 500 instead of a 401).
	if _, err := s.Lookup(ctx, users.Key{Package: pkg, Username: strings.Repeat("x", 3000)}, t0); !errors.Is(err, users.ErrInvalidKey) {
		t.Errorf("oversize username: %v, want ErrInvalidKey", err)
	}
	if _, _, err := s.List(ctx, "", users.Filter{}, 10, ""); !errors.Is(err, users.ErrInvalidKey) {
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
	got, err := s.Get(ctx, users.Key{Package: pkg, Username: "BoB.sMiTh"})
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
		for i := 1; i <= 3; i++ {
			n, err := s.RecordFailure(ctx, k, t0.Add(time.Duration(i)*time.Second))
			if err != nil || n != i {
				t.Fatalf("%s failure %d: got %d, %v", name, i, n, err)
			}
		}
		until := t0.Add(5 * time.Minute)
		if err := s.SetLockedUntil(ctx, k, until, t0.Add(3*time.Second)); err != nil {
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
		if err := s.ResetFailures(ctx, k); err != nil {
			t.Fatal(err)
		}
		if l, _ := s.Lockout(ctx, k, t0); l != (users.Lockout{}) {
			t.Errorf("%s after reset: %+v", name, l)
		}
	}
	// The user record is untouched by lockout bookkeeping.
	if u, err := s.Get(ctx, key(t, pkg, "gus")); err != nil || u.Version != 1 {
		t.Errorf("user after lockout: %+v %v", u, err)
	}
	// Resetting a key with no counter is fine.
	if err := s.ResetFailures(ctx, key(t, pkg, "never-failed")); err != nil {
		t.Error(err)
	}
}

func testLockoutWindow(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	k := key(t, pkg, "hal")
	for range 4 {
		if _, err := s.RecordFailure(ctx, k, t0); err != nil {
			t.Fatal(err)
		}
	}
	late := t0.Add(Window + time.Second)
	if l, _ := s.Lockout(ctx, k, late); l.FailedAttempts != 0 {
		t.Errorf("counter outlived its window: %+v", l)
	}
	if n, err := s.RecordFailure(ctx, k, late); err != nil || n != 1 {
		t.Errorf("failure after window: %d %v, want 1", n, err)
	}
	// A lock set on a stale counter starts afresh rather than reviving it.
	stale := key(t, pkg, "hal-stale")
	for range 3 {
		if _, err := s.RecordFailure(ctx, stale, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetLockedUntil(ctx, stale, late.Add(time.Minute), late); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, stale, late); l.FailedAttempts != 0 || !l.LockedUntil.Equal(late.Add(time.Minute)) {
		t.Errorf("lock on stale counter: %+v", l)
	}
	// A lock ending after the failure window keeps the item alive.
	until := late.Add(30 * time.Minute)
	if err := s.SetLockedUntil(ctx, k, until, late); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Lockout(ctx, k, until.Add(Window/2)); l.FailedAttempts != 1 || !l.LockedUntil.Equal(until) {
		t.Errorf("lock forgotten early: %+v", l)
	}
}

func testRecordFailureAtomic(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	k := key(t, pkg, "ivy")
	const n = 10
	var wg sync.WaitGroup
	seen := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.RecordFailure(ctx, k, t0)
			if err != nil {
				t.Error(err)
			}
			seen <- c
		}()
	}
	wg.Wait()
	close(seen)
	counts := map[int]bool{}
	for c := range seen {
		counts[c] = true
	}
	// Every caller saw a distinct count: no increment was lost.
	if len(counts) != n {
		t.Errorf("distinct counts %v, want 1..%d", counts, n)
	}
	if l, _ := s.Lockout(ctx, k, t0); l.FailedAttempts != n {
		t.Errorf("count %d, want %d", l.FailedAttempts, n)
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

// Keycloak's decisions are recorded under the version check but are not a
// kcguard change: Version and the sync state stay, so nothing is synced back.
func testRecordKeycloakState(t *testing.T, s users.Store, pkg string) {
	ctx := context.Background()
	u := mustCreate(t, s, newUser(pkg, "dora"))
	k := key(t, pkg, "dora")
	at := t0.Add(time.Minute)
	got, err := s.RecordKeycloakState(ctx, k, u.Version, users.KeycloakState{
		Enabled: false, HashStale: true, RequiredActions: []string{"UPDATE_PASSWORD"}, ConfirmedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || !got.HashStale || len(got.RequiredActions) != 1 || got.RequiredActions[0] != "UPDATE_PASSWORD" ||
		!got.KeycloakConfirmedAt.Equal(at) || got.Version != u.Version || got.Unsynced() != u.Unsynced() {
		t.Errorf("after record: %+v", got)
	}
	read, err := s.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if read.Enabled || !read.HashStale || len(read.RequiredActions) != 1 || !read.KeycloakConfirmedAt.Equal(at) || read.Version != u.Version {
		t.Errorf("read back: %+v", read)
	}
	if unsynced, _, err := s.ListUnsynced(ctx, pkg, 10, ""); err != nil || len(unsynced) != 1 || unsynced[0].Version != u.Version {
		t.Errorf("unsynced index changed: %+v, %v", unsynced, err)
	}
	// Cleared actions really go away; a stale version is refused.
	got, err = s.RecordKeycloakState(ctx, k, u.Version, users.KeycloakState{Enabled: true, HashStale: true, ConfirmedAt: at})
	if err != nil || len(got.RequiredActions) != 0 || !got.Enabled {
		t.Errorf("clear actions: %+v, %v", got, err)
	}
	if _, err := s.RecordKeycloakState(ctx, k, u.Version+1, users.KeycloakState{Enabled: true}); !errors.Is(err, users.ErrVersionConflict) {
		t.Errorf("stale version: %v, want ErrVersionConflict", err)
	}
	if _, err := s.RecordKeycloakState(ctx, key(t, pkg, "nobody"), 1, users.KeycloakState{}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("missing user: %v, want ErrNotFound", err)
	}
}
