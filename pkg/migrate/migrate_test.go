package migrate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

func TestParseWhere(t *testing.T) {
	admin := users.User{Username: "ann", Email: "ann@example.com", Enabled: true, Attributes: map[string]string{"group": "HC_ADMINS"}}
	plain := users.User{Username: "bob", Enabled: false, Attributes: map[string]string{"group": "users"}}
	none := users.User{Username: "cat", Enabled: true}
	cases := []struct {
		expr  string
		match string // of ann, bob, cat
	}{
		{"", "ann,bob,cat"},
		{"group~admin", "ann"},
		{"group=hc_admins", "ann"},
		{"group=ADMIN", ""},
		{"group!=users", "ann,cat"},
		{"UserGroup LIKE '%ADMIN%'", "ann"},
		{"UserGroup LIKE 'HC%'", "ann"},
		{"UserGroup LIKE '%ADMINS'", "ann"},
		{"UserGroup = 'users'", "bob"},
		{"enabled=true", "ann,cat"},
		{"enabled=false", "bob"},
		{"group~a, enabled=true", "ann"},
		{"UserGroup LIKE '%S%' AND Enabled = 'false'", "bob"},
		{"email~example", "ann"},
	}
	for _, tc := range cases {
		w, err := ParseWhere(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		var got []string
		for _, u := range []users.User{admin, plain, none} {
			if w.Match(u) && (w.StoreFilter().Match(u)) {
				got = append(got, u.Username)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(splitOrEmpty(tc.match)) {
			t.Errorf("%q (%s) matched %v, want %s", tc.expr, w, got, tc.match)
		}
	}
	for _, bad := range []string{"group", "group~", "enabled~x", "enabled=maybe", "UserGroup LIKE '%A%B%'", "= x"} {
		if _, err := ParseWhere(bad); err == nil {
			t.Errorf("%q must be refused", bad)
		}
	}
}

func splitOrEmpty(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range splitComma(s) {
		out = append(out, p)
	}
	return out
}

type fixture struct {
	users *users.Memory
	kc    *keycloaktest.Fake
	m     *Migrator
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	h, _ := credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})
	f := &fixture{users: users.NewMemory(), kc: keycloaktest.New()}
	for i := range n {
		hash, _ := h.Hash(fmt.Sprint("password-of-user-", i))
		group := "users"
		if i%2 == 0 {
			group = "ADMIN"
		}
		_, err := f.users.Create(context.Background(), users.User{Package: "homechoice", Username: fmt.Sprint("user", i), Enabled: true,
			Attributes: map[string]string{"group": group},
			Hash:       users.Hash{Algorithm: string(hash.Algorithm), SecretData: hash.SecretData(), CredentialData: hash.CredentialData()}},
			time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
	}
	f.m = &Migrator{Users: f.users, Applier: &syncjob.Applier{Keycloak: f.kc, Users: f.users}, Keycloak: f.kc,
		Settings: Settings{PageSize: 3, Concurrency: 3}}
	return f
}

func (f *fixture) writes() int {
	return f.kc.Calls(keycloaktest.CreateUser) + f.kc.Calls(keycloaktest.UpdateUser) + f.kc.Calls(keycloaktest.ImportPasswordHash)
}

func TestMigration(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	f.kc.AddUser("homechoice", "user0", "an-older-keycloak-password") // exists already: updated, not duplicated

	f.m.Settings.DryRun = true
	sum, err := f.m.Run(ctx, "homechoice", Where{})
	if err != nil || sum.Created != 9 || sum.Updated != 1 || sum.Total != 10 || f.writes() != 0 {
		t.Fatalf("dry run: %+v %v, keycloak writes %d", sum, err, f.writes())
	}
	if n, _ := f.m.StatusOf(ctx, "homechoice", Where{}); n.Pending != 10 {
		t.Fatalf("a dry run changes nothing locally: %+v", n)
	}

	f.m.Settings.DryRun = false
	var seen int
	f.m.OnUser = func(UserResult, Summary) { seen++ }
	sum, err = f.m.Run(ctx, "homechoice", Where{})
	if err != nil || sum.Created != 9 || sum.Updated != 1 || sum.Failed != 0 || seen != 10 {
		t.Fatalf("run: %+v %v (%d callbacks)", sum, err, seen)
	}
	for i := range 10 {
		if _, err := f.kc.PasswordGrant(ctx, "homechoice", fmt.Sprint("user", i), fmt.Sprint("password-of-user-", i)); err != nil {
			t.Fatalf("user%d cannot log in at keycloak with the existing password: %v", i, err)
		}
	}
	writes := f.writes()
	sum, err = f.m.Run(ctx, "homechoice", Where{})
	if err != nil || sum.Skipped != 10 || f.writes() != writes {
		t.Fatalf("second run: %+v %v", sum, err)
	}
	if st, _ := f.m.StatusOf(ctx, "homechoice", Where{}); st.Synced != 10 || st.Pending != 0 || st.Unmigrated != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestMigrationWhereAndFailures(t *testing.T) {
	f := newFixture(t, 6)
	ctx := context.Background()
	w, _ := ParseWhere("UserGroup LIKE '%ADMIN%'")
	f.kc.Fail(keycloaktest.CreateUser, keycloak.NewError("create user", "homechoice", keycloak.ErrRejected, 400, "invalid email"), 1)
	sum, err := f.m.Run(ctx, "homechoice", w)
	if err != nil || sum.Total != 3 || sum.Created != 2 || sum.Failed != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	if _, err := f.kc.FindUser(ctx, "homechoice", "user1"); err == nil {
		t.Fatal("a user outside --where was provisioned")
	}
	if n, _ := f.m.Count(ctx, "homechoice", w); n != 3 {
		t.Fatalf("count %d", n)
	}
}

func TestMigrationRateLimit(t *testing.T) {
	f := newFixture(t, 5)
	f.m.Settings.Rate = 50
	start := time.Now()
	if sum, err := f.m.Run(context.Background(), "homechoice", Where{}); err != nil || sum.Created != 5 {
		t.Fatalf("%+v %v", sum, err)
	}
	if took := time.Since(start); took < 90*time.Millisecond {
		t.Fatalf("5 users at 50/s took %s", took)
	}
}
