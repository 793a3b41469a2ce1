package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeycloakAdmin acts in Keycloak as its master-realm administrator, not as
// kcguard's service account: what it changes is an administrator's
// decision, exactly as the admin console would make it.
type KeycloakAdmin struct {
	t     testing.TB
	mu    sync.Mutex
	token string
	until time.Time
}

// NewKeycloakAdmin needs the running Keycloak.
func NewKeycloakAdmin(t testing.TB) *KeycloakAdmin {
	t.Helper()
	Need(t, "keycloak")
	return &KeycloakAdmin{t: t}
}

func (a *KeycloakAdmin) bearer() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" && time.Now().Before(a.until) {
		return a.token
	}
	form := url.Values{"client_id": {"admin-cli"}, "grant_type": {"password"},
		"username": {KeycloakAdminUser}, "password": {KeycloakAdminPass}}
	resp, err := http.PostForm(KeycloakDirectURL+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		a.t.Fatalf("keycloak admin token: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		a.t.Fatalf("keycloak admin token: status %d, %v", resp.StatusCode, err)
	}
	a.token, a.until = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second/2)
	return a.token
}

// Do calls the admin API (path below /admin/realms/) and decodes a JSON
// answer into out when out is not nil. A status >= 300 fails the test.
func (a *KeycloakAdmin) Do(method, path string, body, out any) {
	a.t.Helper()
	if status := a.Try(method, path, body, out); status >= 300 {
		a.t.Fatalf("keycloak admin %s %s: status %d", method, path, status)
	}
}

// Try is Do that returns the status instead of failing.
func (a *KeycloakAdmin) Try(method, path string, body, out any) int {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, KeycloakDirectURL+"/admin/realms/"+strings.TrimPrefix(path, "/"), r)
	req.Header.Set("Authorization", "Bearer "+a.bearer())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("keycloak admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			a.t.Fatalf("keycloak admin %s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// UserID is the id of username in realm.
func (a *KeycloakAdmin) UserID(realm, username string) string {
	a.t.Helper()
	var us []struct {
		ID string `json:"id"`
	}
	a.Do("GET", fmt.Sprintf("%s/users?exact=true&username=%s", realm, url.QueryEscape(username)), nil, &us)
	if len(us) != 1 {
		a.t.Fatalf("keycloak user %s/%s: %d found", realm, username, len(us))
	}
	return us[0].ID
}

// GrantServiceAccountRoles gives realm's kcguard service account the
// realm-management roles (idempotent). The local realms ship with them;
// this brings a Keycloak that imported older realm files up to date.
func (a *KeycloakAdmin) GrantServiceAccountRoles(realm, clientID string, roles ...string) {
	a.t.Helper()
	var clients []struct {
		ID string `json:"id"`
	}
	a.Do("GET", realm+"/clients?clientId=realm-management", nil, &clients)
	if len(clients) != 1 {
		a.t.Fatalf("realm-management client of %s not found", realm)
	}
	var reps []map[string]any
	for _, r := range roles {
		var rep map[string]any
		a.Do("GET", fmt.Sprintf("%s/clients/%s/roles/%s", realm, clients[0].ID, r), nil, &rep)
		reps = append(reps, rep)
	}
	sa := a.UserID(realm, "service-account-"+clientID)
	a.Do("POST", fmt.Sprintf("%s/users/%s/role-mappings/clients/%s", realm, sa, clients[0].ID), reps, nil)
}
