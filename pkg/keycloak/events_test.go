package keycloak

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

// eventsServer answers the service-account token with a JWT whose subject
// is "sa-id", and hands every other request to h.
func eventsServer(t *testing.T, h http.HandlerFunc) *Client {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"sa-id"}`))
	return testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/realms/homechoice/protocol/openid-connect/token" {
			jsonReply(w, 200, map[string]any{"access_token": "h." + payload + ".s", "expires_in": 300, "token_type": "Bearer"})
			return
		}
		h(w, r)
	}))
}

func TestEventQueriesAndParsing(t *testing.T) {
	from := time.UnixMilli(1796163696860)
	c := eventsServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch r.URL.Path {
		case "/admin/realms/homechoice/admin-events":
			if q.Get("resourceTypes") != "USER" || q.Get("dateFrom") != "1796163696860" || q.Get("first") != "100" || q.Get("max") != "50" {
				t.Errorf("admin events query %v", q)
			}
			jsonReply(w, 200, []map[string]any{{"id": "e1", "time": 1796163696900, "operationType": "ACTION",
				"resourceType": "USER", "resourcePath": "users/u-1/reset-password", "authDetails": map[string]string{"userId": "admin-id"}}})
		case "/admin/realms/homechoice/events":
			if !slices.Equal(q["type"], []string{"UPDATE_PASSWORD", "RESET_PASSWORD"}) || q.Get("max") != "100" {
				t.Errorf("user events query %v", q)
			}
			jsonReply(w, 200, []map[string]any{{"id": "u1", "time": 1796163696950, "type": "UPDATE_PASSWORD", "userId": "u-2"}})
		default:
			jsonReply(w, 404, nil)
		}
	})
	ctx := context.Background()
	admin, err := c.AdminEvents(ctx, "hc", EventQuery{From: from, First: 100, Max: 50})
	if err != nil || len(admin) != 1 {
		t.Fatalf("admin events: %+v %v", admin, err)
	}
	if e := admin[0]; e.UserID() != "u-1" || e.SubResource() != "reset-password" || e.ActorUserID != "admin-id" || e.Time.UnixMilli() != 1796163696900 {
		t.Errorf("admin event %+v", e)
	}
	user, err := c.UserEvents(ctx, "hc", EventQuery{Types: []string{"UPDATE_PASSWORD", "RESET_PASSWORD"}})
	if err != nil || len(user) != 1 || user[0].UserID != "u-2" || user[0].Type != "UPDATE_PASSWORD" {
		t.Fatalf("user events: %+v %v", user, err)
	}
	if id, err := c.ServiceAccountUserID(ctx, "hc"); err != nil || id != "sa-id" {
		t.Errorf("service account id %q %v", id, err)
	}
	if _, err := c.GetEventsConfig(ctx, "hc"); !errors.Is(err, ErrNotFound) {
		t.Errorf("events config on a server without it: %v, want ErrNotFound", err)
	}
}

func TestAdminEventResourcePath(t *testing.T) {
	cases := []struct{ path, user, sub string }{
		{"users/abc", "abc", ""},
		{"users/abc/reset-password", "abc", "reset-password"},
		{"users/abc/credentials/c1", "abc", "credentials/c1"},
		{"groups/g1", "", ""},
		{"", "", ""},
	}
	for _, tc := range cases {
		e := AdminEvent{ResourcePath: tc.path}
		if e.UserID() != tc.user || (tc.user != "" && e.SubResource() != tc.sub) {
			t.Errorf("%q: user %q sub %q", tc.path, e.UserID(), e.SubResource())
		}
	}
}
