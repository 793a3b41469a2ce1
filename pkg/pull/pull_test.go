package pull_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/users"
)

// fakeKeycloak serves fixed events and users.
type fakeKeycloak struct {
	admin   []keycloak.AdminEvent
	user    []keycloak.UserEvent
	users   map[string]keycloak.User // by id
	created map[string]time.Time     // password createdDate by id
	self    string
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
		all = append(all, u)
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

func (f *fakeKeycloak) ServiceAccountUserID(context.Context, string) (string, error) { return f.self, nil }

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
	kc := &fakeKeycloak{self: "sa",
		users:   map[string]keycloak.User{"id-ann": {ID: "id-ann", Username: "ann", Enabled: false}, "id-ben": {ID: "id-ben", Username: "ben", Enabled: true}},
		created: map[string]time.Time{"id-ann": t0, "id-ben": t0.Add(time.Hour)},
		admin: []keycloak.AdminEvent{
			{ID: "bad-path", Time: t0.Add(time.Hour), OperationType: "UPDATE", ResourcePath: "groups/x", ActorUserID: "admin"},
			{ID: "no-time", OperationType: "UPDATE", ResourcePath: "users/id-ben", ActorUserID: "admin"},
			{ID: "ok", Time: t0.Add(time.Hour), OperationType: "UPDATE", ResourcePath: "users/id-ann", ActorUserID: "admin", Representation: `{"enabled":false}`},
		},
		user: []keycloak.UserEvent{
			{ID: "no-user", Time: t0.Add(time.Hour), Type: "UPDATE_PASSWORD"},
			{ID: "pw", Time: t0.Add(time.Hour), Type: "UPDATE_PASSWORD", UserID: "id-ben"},
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
	ann, _ := st.Get(context.Background(), users.Key{Package: "p", Username: "ann"})
	ben, _ := st.Get(context.Background(), users.Key{Package: "p", Username: "ben"})
	if ann.Enabled || ann.HashStale {
		t.Errorf("ann: disabled, not stale: %+v", ann)
	}
	if !ben.Enabled || !ben.HashStale {
		t.Errorf("ben changed his password in Keycloak: stale: %+v", ben)
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
	kc := &fakeKeycloak{self: "sa",
		users:   map[string]keycloak.User{"id-chg": {ID: "id-chg", Username: "chg", Enabled: true}},
		created: map[string]time.Time{"id-chg": t0.Add(time.Hour)}, // an admin reset after the local change
	}
	p := &pull.Puller{Keycloak: kc, Users: st, Cursors: &pull.MemoryCursors{}, Packages: []string{"p"}}
	rs, err := p.Run(context.Background(), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Mode != pull.ModeCompare || rs[0].Deleted != 1 {
		t.Fatalf("first run compares and deletes the one lost user: %+v", rs[0])
	}
	if _, err := st.Get(context.Background(), users.Key{Package: "p", Username: "gone"}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("gone: %v", err)
	}
	if _, err := st.Get(context.Background(), pending.Key()); err != nil {
		t.Errorf("never-provisioned user deleted: %v", err)
	}
	if u, _ := st.Get(context.Background(), changed.Key()); u.HashStale || !u.Unsynced() {
		t.Errorf("kcguard's pending change stays kcguard's: %+v", u)
	}
}
