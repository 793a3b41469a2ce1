package pull_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// fakeKeycloak serves fixed events and users.
type fakeKeycloak struct {
	admin   []keycloak.AdminEvent
	user    []keycloak.UserEvent
	users   map[string]keycloak.User // by id
	created map[string]time.Time     // password createdDate by id
	self    string
	// unlisted users exist but a page of ListUsers missed them (offset
	// paging while users are created or deleted).
	unlisted map[string]bool
}

func (f *fakeKeycloak) AdminEvents(_ context.Context, _ string, q keycloak.EventQuery) ([]keycloak.AdminEvent, error) {
	return page(f.admin, q), nil
}

func (f *fakeKeycloak) UserEvents(_ context.Context, _ string, q keycloak.EventQuery) ([]keycloak.UserEvent, error) {
	return page(f.user, q), nil
}

func page[T any](all []T, q keycloak.EventQuery) []T {
	if q.First >= len(all) {
		return nil
	}
	return all[q.First:min(len(all), q.First+q.Max)]
}

func (f *fakeKeycloak) ListUsers(_ context.Context, _ string, first, max int) ([]keycloak.User, error) {
	var all []keycloak.User
	for _, u := range f.users {
		if !f.unlisted[u.ID] {
			all = append(all, u)
		}
	}
	return page(all, keycloak.EventQuery{First: first, Max: max}), nil
}

func (f *fakeKeycloak) GetUser(_ context.Context, pkg, id string) (keycloak.User, error) {
	u, ok := f.users[id]
	if !ok {
		return u, keycloak.NewError("get user", pkg, keycloak.ErrNotFound, 404, "")
	}
	return u, nil
}

func (f *fakeKeycloak) PasswordCredentialCreatedAt(_ context.Context, pkg, id string) (time.Time, error) {
	t, ok := f.created[id]
	if !ok {
		return t, keycloak.NewError("get credentials", pkg, keycloak.ErrNotFound, 0, "")
	}
	return t, nil
}

func (f *fakeKeycloak) ServiceAccountUserID(context.Context, string) (string, error) {
	return f.self, nil
}

func (f *fakeKeycloak) GetEventsConfig(context.Context, string) (keycloak.EventsConfig, error) {
	return keycloak.EventsConfig{EventsEnabled: true, AdminEventsEnabled: true, AdminEventsDetailsEnabled: true}, nil
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func seed(t *testing.T, st users.Store, name, kcID string) users.User {
	t.Helper()
	u, err := st.Create(context.Background(), users.User{Package: "p", Username: name, Enabled: true, KeycloakID: kcID,
		Hash: users.Hash{Algorithm: "argon2", SecretData: "s", CredentialData: "c"}, Version: 1, KeycloakSyncedVersion: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Bad events are reported and skipped; the good ones around them apply.
// A password changed by the user in Keycloak (a user event) makes the
// local hash stale.
func TestMalformedEventsAreSkippedAndReported(t *testing.T) {
	st := users.NewMemory()
	seed(t, st, "ann", "id-ann")
	seed(t, st, "ben", "id-ben")
	seed(t, st, "cy", "id-cy")
	kc := &fakeKeycloak{self: "sa",
		users: map[string]keycloak.User{"id-ann": {ID: "id-ann", Username: "ann", Enabled: false}, "id-ben": {ID: "id-ben", Username: "ben", Enabled: true},
			"id-cy": {ID: "id-cy", Username: "cy", Enabled: false}},
		created: map[string]time.Time{"id-ann": t0, "id-ben": t0.Add(time.Hour), "id-cy": t0},
		admin: []keycloak.AdminEvent{
			{ID: "bad-path", Time: t0.Add(time.Hour), OperationType: "UPDATE", ResourcePath: "groups/x", ActorUserID: "admin"},
			{ID: "no-time", OperationType: "UPDATE", ResourcePath: "users/id-ben", ActorUserID: "admin"},
			{ID: "ok", Time: t0.Add(time.Hour), OperationType: "UPDATE", ResourcePath: "users/id-ann", ActorUserID: "admin", Representation: `{"enabled":false}`},
		},
		user: []keycloak.UserEvent{
			{ID: "no-user", Time: t0.Add(time.Hour), Type: "UPDATE_PASSWORD"},
			{ID: "pw", Time: t0.Add(time.Hour), Type: "UPDATE_PASSWORD", UserID: "id-ben"},
			// Keycloak's own permanent lockout disables without an admin event.
			{ID: "lock", Time: t0.Add(time.Hour), Type: "USER_DISABLED_BY_PERMANENT_LOCKOUT", UserID: "id-cy"},
		},
	}
	cursors := &pull.MemoryCursors{}
	now := t0.Add(2 * time.Hour)
	_ = cursors.Put(context.Background(), "p", pull.Cursor{Through: now.Add(-time.Minute), LastCompare: now})
	p := &pull.Puller{Keycloak: kc, Users: st, Cursors: cursors, Packages: []string{"p"}, Settings: pull.Settings{PageSize: 2}}
	rs, err := p.Run(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if r.Mode != pull.ModeEvents || len(r.Malformed) != 3 {
		t.Fatalf("want events mode with 3 malformed events reported: %+v", r)
	}
	for _, id := range []string{"bad-path", "no-time", "no-user"} {
		if !strings.Contains(strings.Join(r.Malformed, "\n"), id) {
			t.Errorf("malformed event %s not named: %v", id, r.Malformed)
		}
	}
	ann, _ := st.Get(context.Background(), userkey.Key{Package: "p", Username: "ann"})
	ben, _ := st.Get(context.Background(), userkey.Key{Package: "p", Username: "ben"})
	if ann.Enabled || ann.HashStale {
		t.Errorf("ann: disabled, not stale: %+v", ann)
	}
	if !ben.Enabled || !ben.HashStale {
		t.Errorf("ben changed his password in Keycloak: stale: %+v", ben)
	}
	if cy, _ := st.Get(context.Background(), userkey.Key{Package: "p", Username: "cy"}); cy.Enabled || cy.HashStale {
		t.Errorf("cy was locked out for good by Keycloak: disabled, password not stale: %+v", cy)
	}
	if r.Disabled != 2 || r.Stale != 1 {
		t.Errorf("counts %+v", r)
	}
	if c, _ := cursors.Get(context.Background(), "p"); !c.Through.Equal(now) {
		t.Errorf("cursor %v, want %v", c.Through, now)
	}
}

// The page compare deletes only users Keycloak had and lost; a user kcguard
// has not provisioned yet is a pending change, not a deletion. A pending
// kcguard password change is never made stale.
func TestCompareKeepsPendingUsers(t *testing.T) {
	st := users.NewMemory()
	seed(t, st, "gone", "id-gone")
	pending, err := st.Create(context.Background(), users.User{Package: "p", Username: "new", Enabled: true,
		Hash: users.Hash{Algorithm: "argon2", SecretData: "s", CredentialData: "c"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	changed := seed(t, st, "chg", "id-chg")
	if _, err := st.UpdatePassword(context.Background(), changed.Key(), changed.Version, users.Hash{Algorithm: "argon2", SecretData: "s2", CredentialData: "c"}, t0); err != nil {
		t.Fatal(err)
	}
	seed(t, st, "missed", "id-missed")
	kc := &fakeKeycloak{self: "sa",
		users: map[string]keycloak.User{"id-chg": {ID: "id-chg", Username: "chg", Enabled: true},
			"id-missed": {ID: "id-missed", Username: "missed", Enabled: true}},
		created:  map[string]time.Time{"id-chg": t0.Add(time.Hour)}, // an admin reset after the local change
		unlisted: map[string]bool{"id-missed": true},
	}
	p := &pull.Puller{Keycloak: kc, Users: st, Cursors: &pull.MemoryCursors{}, Packages: []string{"p"}}
	rs, err := p.Run(context.Background(), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Mode != pull.ModeCompare || rs[0].Deleted != 1 {
		t.Fatalf("first run compares and deletes the one lost user: %+v", rs[0])
	}
	if _, err := st.Get(context.Background(), userkey.Key{Package: "p", Username: "gone"}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("gone: %v", err)
	}
	if _, err := st.Get(context.Background(), pending.Key()); err != nil {
		t.Errorf("never-provisioned user deleted: %v", err)
	}
	if _, err := st.Get(context.Background(), userkey.Key{Package: "p", Username: "missed"}); err != nil {
		t.Errorf("a user a page missed but Keycloak still has was deleted: %v", err)
	}
	if u, _ := st.Get(context.Background(), changed.Key()); u.HashStale || !u.Unsynced() {
		t.Errorf("kcguard's pending change stays kcguard's: %+v", u)
	}
}

// racingStore changes the user's password through kcguard just before the
// pull's first write lands, as a /password request would.
type racingStore struct {
	*users.Memory
	raced bool
}

func (r *racingStore) ApplyVerdict(ctx context.Context, key userkey.Key, expected int64, v users.Verdict) (users.User, error) {
	if !r.raced {
		r.raced = true
		u, _ := r.Memory.Get(ctx, key)
		if _, err := r.Memory.UpdatePassword(ctx, key, u.Version, users.Hash{Algorithm: "argon2", SecretData: "new", CredentialData: "c"}, t0.Add(90*time.Minute)); err != nil {
			return users.User{}, err
		}
	}
	return r.Memory.ApplyVerdict(ctx, key, expected, v)
}

// A password changed through kcguard while the pull was deciding is
// kcguard's newer change: the pull's write loses the version race, reads
// again, and does not mark the new hash stale for an older Keycloak reset.
func TestPullLosesTheRaceToAPasswordChange(t *testing.T) {
	st := &racingStore{Memory: users.NewMemory()}
	seed(t, st.Memory, "dee", "id-dee")
	kc := &fakeKeycloak{self: "sa",
		users:   map[string]keycloak.User{"id-dee": {ID: "id-dee", Username: "dee", Enabled: true}},
		created: map[string]time.Time{"id-dee": t0.Add(time.Hour)},
		admin: []keycloak.AdminEvent{{ID: "reset", Time: t0.Add(time.Hour), OperationType: "ACTION",
			ResourcePath: "users/id-dee/reset-password", ActorUserID: "admin"}},
	}
	cursors := &pull.MemoryCursors{}
	now := t0.Add(2 * time.Hour)
	_ = cursors.Put(context.Background(), "p", pull.Cursor{Through: now.Add(-time.Minute), LastCompare: now})
	p := &pull.Puller{Keycloak: kc, Users: st, Cursors: cursors, Packages: []string{"p"}}
	if _, err := p.Run(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	u, _ := st.Get(context.Background(), userkey.Key{Package: "p", Username: "dee"})
	if !st.raced || u.HashStale || u.Hash.SecretData != "new" || !u.Unsynced() || u.KeycloakConfirmedAt.IsZero() {
		t.Errorf("after the race: %+v", u)
	}
}

type breakerState breaker.State

func (b breakerState) State(context.Context) breaker.Status {
	return breaker.Status{State: breaker.State(b)}
}

// While the breaker is open the pull leaves Keycloak alone and its cursor
// where it was; after a long outage the cursor is too old and the next run
// compares every user.
func TestPullWaitsForTheBreaker(t *testing.T) {
	st := users.NewMemory()
	seed(t, st, "eva", "id-eva")
	kc := &fakeKeycloak{self: "sa", users: map[string]keycloak.User{"id-eva": {ID: "id-eva", Username: "eva", Enabled: false}},
		created: map[string]time.Time{"id-eva": t0}}
	cursors := &pull.MemoryCursors{}
	before := pull.Cursor{Through: t0, LastCompare: t0}
	_ = cursors.Put(context.Background(), "p", before)
	p := &pull.Puller{Keycloak: kc, Users: st, Cursors: cursors, Packages: []string{"p"}, Breaker: breakerState(breaker.StateOpen)}
	rs, err := p.Run(context.Background(), t0.Add(3*time.Hour))
	if err != nil || rs[0].Mode != "" || !strings.Contains(rs[0].Reason, "breaker open") {
		t.Fatalf("open breaker: %+v %v", rs, err)
	}
	if c, _ := cursors.Get(context.Background(), "p"); c != before {
		t.Fatalf("cursor moved while skipped: %+v", c)
	}
	p.Breaker = breakerState(breaker.StateClosed)
	rs, err = p.Run(context.Background(), t0.Add(3*time.Hour))
	if err != nil || rs[0].Mode != pull.ModeCompare || rs[0].Disabled != 1 {
		t.Fatalf("after the outage: %+v %v", rs, err)
	}
}
