package adoption_test

import (
	"testing"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/adoption"
	"github.com/kcguard/kcguard/pkg/auth"
)

// Users adopted from a Keycloak export log in through kcguard while
// Keycloak is unreachable: the argon2, pbkdf2-sha512 and pbkdf2-sha256
// hashes Keycloak made are verified locally, in the DynamoDB store.
func TestAdoptedUsersLogInDuringAnOutage(t *testing.T) {
	e := stacktest.New(t)
	for _, f := range []string{"homechoice-realm.json", "homechoice-users-0.json"} {
		rep := importFile(t, e.RT.Users, readExport(t, f))
		if rep.Counts[adoption.Created] == 0 {
			t.Fatalf("%s: nothing imported: %+v", f, rep)
		}
	}
	e.Proxy.Disable()
	for name, pw := range passwords {
		u := stacktest.User{Package: "homechoice", Name: name, Password: pw}
		res, err := e.Login(u, pw)
		if err != nil || res.Mode != auth.ModeLocal {
			t.Errorf("%s: %+v %v", name, res, err)
		}
		if _, err := e.Login(u, pw+"x"); err == nil {
			t.Errorf("%s: a wrong password was accepted", name)
		}
	}
	// Keycloak's disable came with the export.
	if _, err := e.Login(stacktest.User{Package: "homechoice", Name: "cara.disabled"}, "cara-Adopt-disabled"); err == nil {
		t.Error("a user disabled in the export logged in")
	}
}
