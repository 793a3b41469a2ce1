package adoption_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/adoption"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// The fixtures in testdata/ are a realm export in kc.sh's layout (one realm
// file with users, and a realm-users-N file), with hashes made by
// pkg/credential in Keycloak's format for these passwords.
var passwords = map[string]string{
	"ann.argon2": "ann-Adopt-argon2",
	"bob.pbkdf2": "bob-Adopt-pbkdf2-sha512",
	"fay.sha256": "fay-Adopt-pbkdf2-sha256",
}

func readExport(t *testing.T, name string) adoption.Export {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exp, err := adoption.ReadExport(f)
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func importFile(t *testing.T, st adoption.Store, exp adoption.Export) adoption.Report {
	t.Helper()
	im := &adoption.Importer{Store: st, Package: "homechoice", Now: func() time.Time { return t0 }}
	rep, err := im.Import(context.Background(), exp)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func get(t *testing.T, st users.Store, name string) users.User {
	t.Helper()
	u, err := st.Get(context.Background(), userkey.Key{Package: "homechoice", Username: name})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return u
}

func TestImportRealmExport(t *testing.T) {
	st := users.NewMemory()
	rep := importFile(t, st, readExport(t, "homechoice-realm.json"))
	want := map[adoption.Outcome]int{adoption.Created: 3, adoption.UnsupportedHash: 1, adoption.Malformed: 2,
		adoption.NoPassword: 1, adoption.ServiceAccount: 1}
	for o, n := range want {
		if rep.Counts[o] != n {
			t.Errorf("%s: %d, want %d (report %+v)", o, rep.Counts[o], n, rep)
		}
	}
	if rep.Total != 8 || rep.Skipped() != 3 {
		t.Errorf("total %d, skipped %d", rep.Total, rep.Skipped())
	}
	byName := map[string]adoption.Entry{}
	for _, e := range rep.Entries {
		byName[e.Username] = e
	}
	if e := byName["dan.bcrypt"]; e.Outcome != adoption.UnsupportedHash || e.Index != 3 {
		t.Errorf("bcrypt user must be reported, not guessed: %+v", e)
	}
	if e := byName["eli.brokenhash"]; e.Outcome != adoption.Malformed {
		t.Errorf("broken hash: %+v", e)
	}
	for _, name := range []string{"dan.bcrypt", "eli.brokenhash", "eve.nopassword", "service-account-kcguard"} {
		if _, err := st.Get(context.Background(), userkey.Key{Package: "homechoice", Username: name}); err == nil {
			t.Errorf("%s must not be loaded", name)
		}
	}

	// The multi-file layout: realm-users-N.json, with an OTP credential
	// before the password.
	if rep := importFile(t, st, readExport(t, "homechoice-users-0.json")); rep.Counts[adoption.Created] != 1 {
		t.Errorf("users-0 file: %+v", rep)
	}

	for name, pw := range passwords {
		u := get(t, st, name)
		h, err := u.Hash.Verifier()
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := credential.Verify(h, pw); !ok || err != nil {
			t.Errorf("%s (%s): imported hash does not verify its password: %v", name, h.Algorithm, err)
		}
		if u.Unsynced() || u.KeycloakID != "kc-"+name[:3] || !u.Enabled {
			t.Errorf("%s: must be synced, keep Keycloak's id and be enabled: %+v", name, u)
		}
	}
	cara := get(t, st, "cara.disabled")
	if cara.Enabled || len(cara.RequiredActions) != 1 || cara.RequiredActions[0] != "UPDATE_PASSWORD" {
		t.Errorf("disabled flag and required actions kept: %+v", cara)
	}

	// Idempotent: the same export again changes nothing.
	before := get(t, st, "ann.argon2")
	again := importFile(t, st, readExport(t, "homechoice-realm.json"))
	if again.Counts[adoption.Unchanged] != 3 || again.Counts[adoption.Created] != 0 || again.Counts[adoption.Updated] != 0 {
		t.Errorf("re-import: %+v", again.Counts)
	}
	if after := get(t, st, "ann.argon2"); after.Version != before.Version || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("re-import rewrote ann: %+v -> %+v", before, after)
	}
}

// An export taken later updates what changed in Keycloak and leaves a
// kcguard change Keycloak has not received yet alone.
func TestReimportUpdatesWhatChanged(t *testing.T) {
	st := users.NewMemory()
	importFile(t, st, readExport(t, "homechoice-realm.json"))
	bob := get(t, st, "bob.pbkdf2")
	pending, err := st.UpdatePassword(context.Background(), bob.Key(), bob.Version, users.Hash{Algorithm: "argon2", SecretData: "kcguard-change", CredentialData: "{}"}, t0)
	if err != nil {
		t.Fatal(err)
	}

	exp := readExport(t, "homechoice-realm.json")
	var ann, cara, bobExp map[string]any
	_ = json.Unmarshal(exp.Users[0], &ann)
	_ = json.Unmarshal(exp.Users[1], &bobExp)
	_ = json.Unmarshal(exp.Users[2], &cara)
	ann["enabled"] = false
	ann["email"] = "ann.new@example.com"
	cara["enabled"] = true
	cara["requiredActions"] = []string{}
	bobExp["enabled"] = false
	for i, v := range []map[string]any{ann, bobExp, cara} {
		exp.Users[i], _ = json.Marshal(v)
	}
	rep := importFile(t, st, exp)
	if rep.Counts[adoption.Updated] != 2 || rep.Counts[adoption.KeptLocal] != 1 {
		t.Errorf("counts %+v", rep.Counts)
	}
	if u := get(t, st, "ann.argon2"); u.Enabled || u.Email != "ann.new@example.com" || u.Unsynced() {
		t.Errorf("ann: %+v", u)
	}
	if u := get(t, st, "cara.disabled"); !u.Enabled || len(u.RequiredActions) != 0 {
		t.Errorf("cara: %+v", u)
	}
	if u := get(t, st, "bob.pbkdf2"); u.Hash != pending.Hash || !u.Unsynced() || u.Enabled {
		t.Errorf("bob keeps his pending kcguard change, takes Keycloak's disable: %+v", u)
	}
}

// `kcguard users seed` reads the local stack's realm files (plaintext
// passwords); hashed entries, service accounts and malformed ones are not
// seeded.
func TestPlainPasswordsOfTheLocalRealmFiles(t *testing.T) {
	exp := readExport(t, "../../../local/realms/homechoice-realm.json")
	got := map[string]adoption.PlainUser{}
	for _, u := range exp.PlainPasswords() {
		got[u.Username] = u
	}
	for _, name := range []string{"alice.hc", "bob.hc", "carol.hc"} {
		if got[name].Password == "" {
			t.Errorf("%s: no plaintext password found (got %v)", name, got)
		}
	}
	hashed := adoption.Export{Users: []json.RawMessage{
		json.RawMessage(`{"username":"h","credentials":[{"type":"password","secretData":"{}","credentialData":"{}"}]}`),
		json.RawMessage(`{"username":"sa","serviceAccountClientId":"kcguard","credentials":[{"type":"password","value":"x"}]}`),
		json.RawMessage(`not json`),
	}}
	if p := hashed.PlainPasswords(); len(p) != 0 {
		t.Errorf("hashed, service-account and malformed entries gave %v", p)
	}
}
