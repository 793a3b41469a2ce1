package testenv

import "testing"

// Realm describes one realm imported from local/realms/ with its seeded users.
type Realm struct {
	Name         string
	ClientID     string
	ClientSecret string
	// Users maps seeded usernames to their passwords. Tests that change a
	// seeded user's password must restore it; prefer creating a unique user.
	Users map[string]string
}

// Realms seeded by local/realms/*.json.
var (
	Homechoice = Realm{
		Name: "homechoice", ClientID: "kcguard", ClientSecret: "kcguard-homechoice-local-secret",
		Users: map[string]string{
			"alice.hc": "alice-Homechoice-1",
			"bob.hc":   "bob-Homechoice-22",
			"carol.hc": "carol-Homechoice-333",
		},
	}
	Janee = Realm{
		Name: "janee", ClientID: "kcguard", ClientSecret: "kcguard-janee-local-secret",
		Users: map[string]string{
			"dave.jn": "dave-Janee-4444",
			"erin.jn": "erin-Janee-55555",
		},
	}
)

// Keycloak returns the URL of a private toxiproxy proxy in front of the real
// Keycloak, so the test can cut or slow its own path without disturbing
// other packages' tests running at the same time.
func Keycloak(t testing.TB) (url string, proxy *Proxy) {
	t.Helper()
	Need(t, "keycloak", "toxiproxy")
	proxy = NewProxy(t, "127.0.0.1:8180")
	return "http://" + proxy.Listen, proxy
}
