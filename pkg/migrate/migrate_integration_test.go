package migrate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/migrate"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/users"
)

// localOnly creates users kcguard knows and Keycloak does not (the state
// before a migration) and removes them from Keycloak when the test ends.
func localOnly(t *testing.T, e *stacktest.Env, pkg string, n int, group string) []stacktest.User {
	t.Helper()
	h, err := platform.Hasher(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	var out []stacktest.User
	for range n {
		u := stacktest.User{Package: pkg, Name: testenv.Unique("mig"), Password: testenv.Unique("Mig-password")}
		hash, err := h.Hash(u.Password)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.RT.Users.Create(context.Background(), users.User{Package: pkg, Username: u.Name, Enabled: true,
			Email: u.Name + "@example.com", Attributes: map[string]string{"group": group}, Hash: users.NewHash(hash)}, time.Now()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if kc, err := e.RT.Keycloak.FindUser(context.Background(), pkg, u.Name); err == nil {
				_ = e.RT.Keycloak.DeleteUser(context.Background(), pkg, kc.ID)
			}
		})
		out = append(out, u)
	}
	return out
}

func TestMigrationAgainstKeycloak(t *testing.T) {
	e := stacktest.New(t)
	ctx := context.Background()
	const pkg = "homechoice"
	admins := localOnly(t, e, pkg, 8, "HC_ADMIN")
	others := localOnly(t, e, pkg, 2, "staff")
	// One admin exists in Keycloak already (without a password): it must
	// be updated, not duplicated.
	existingID, err := e.RT.Keycloak.CreateUser(ctx, pkg, keycloak.UserSpec{Username: admins[0].Name, FirstName: "A", LastName: "B"})
	if err != nil {
		t.Fatal(err)
	}
	where, err := migrate.ParseWhere("UserGroup LIKE '%ADMIN%'")
	if err != nil {
		t.Fatal(err)
	}
	m := &migrate.Migrator{Users: e.RT.Users, Applier: e.RT.Applier, Keycloak: e.RT.Keycloak,
		Settings: migrate.Settings{Concurrency: 3, Rate: 100, PageSize: 4}}

	m.Settings.DryRun = true
	sum, err := m.Run(ctx, pkg, where)
	if err != nil || sum.Total != 8 || sum.Created != 7 || sum.Updated != 1 || sum.Failed != 0 {
		t.Fatalf("dry run: %+v %v", sum, err)
	}
	for _, u := range admins[1:] {
		if _, err := e.RT.Keycloak.FindUser(ctx, pkg, u.Name); !errors.Is(err, keycloak.ErrNotFound) {
			t.Fatalf("the dry run created %s: %v", u.Name, err)
		}
	}
	if st, _ := m.StatusOf(ctx, pkg, where); st.Pending != 8 || st.Unmigrated != 8 {
		t.Fatalf("the dry run changed local state: %+v", st)
	}

	m.Settings.DryRun = false
	sum, err = m.Run(ctx, pkg, where)
	if err != nil || sum.Created != 7 || sum.Updated != 1 || sum.Failed != 0 {
		t.Fatalf("run: %+v %v", sum, err)
	}
	t.Logf("migrated %d users in %s", sum.Total, sum.Duration.Round(time.Millisecond))
	for _, u := range admins {
		if _, err := e.RT.Keycloak.PasswordGrant(ctx, pkg, u.Name, u.Password); err != nil {
			t.Fatalf("%s cannot log in at Keycloak with the existing password: %v", u.Name, err)
		}
	}
	if kc, err := e.RT.Keycloak.FindUser(ctx, pkg, admins[0].Name); err != nil || kc.ID != existingID {
		t.Fatalf("the existing user was replaced: %+v %v", kc, err)
	}
	for _, u := range others {
		if _, err := e.RT.Keycloak.FindUser(ctx, pkg, u.Name); !errors.Is(err, keycloak.ErrNotFound) {
			t.Fatalf("%s is outside --where but was provisioned: %v", u.Name, err)
		}
	}

	sum, err = m.Run(ctx, pkg, where)
	if err != nil || sum.Created != 0 || sum.Updated != 0 || sum.Skipped != 8 {
		t.Fatalf("second run must create nothing: %+v %v", sum, err)
	}
	if st, _ := m.StatusOf(ctx, pkg, where); st.Synced != 8 || st.Pending != 0 {
		t.Fatalf("status %+v", st)
	}
	var secrets []string
	for _, u := range append(admins, others...) {
		secrets = append(secrets, u.Password)
	}
	e.AssertNoSecrets(t, secrets...)
}
