package keycloak

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Unit tests against httptest servers: classification of every outcome,
// without the local stack.

func testClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, RequestTimeout: 300 * time.Millisecond, AdminTimeout: 300 * time.Millisecond,
		Packages: map[string]Realm{"hc": {Realm: "homechoice", ClientID: "kcguard", ClientSecret: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonReply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// rawBody is a non-JSON answer: content type and body.
type rawBody [2]string

func raw(contentType, body string) rawBody { return rawBody{contentType, body} }

func TestClassifyTokenEndpoint(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   any
		want   error
	}{
		{"wrong password", 400, map[string]string{"error": "invalid_grant", "error_description": "Invalid user credentials"}, ErrInvalidCredentials},
		{"disabled", 400, map[string]string{"error": "invalid_grant", "error_description": "Account disabled"}, ErrAccountDisabled},
		{"required action", 400, map[string]string{"error": "invalid_grant", "error_description": "Account is not fully set up"}, ErrActionRequired},
		{"401 invalid_grant", 401, map[string]string{"error": "invalid_grant"}, ErrInvalidCredentials},
		// Keycloak always names its refusals; a 401/403 without its OAuth
		// JSON comes from something in front of it and is an outage.
		{"401 bare", 401, nil, ErrUnavailable},
		{"401 html from a proxy", 401, raw("text/html", "<html><body>401 Authorization Required</body></html>"), ErrUnavailable},
		{"403 from a WAF", 403, raw("text/plain", "Forbidden"), ErrUnavailable},
		{"401 empty", 401, raw("", ""), ErrUnavailable},
		{"401 JSON without error", 401, map[string]string{"message": "Unauthorized"}, ErrUnavailable},
		{"bad client secret", 401, map[string]string{"error": "invalid_client", "error_description": "Invalid client credentials"}, ErrRejected},
		{"grant not allowed", 400, map[string]string{"error": "unauthorized_client"}, ErrRejected},
		{"realm missing", 404, map[string]string{"error": "Realm does not exist"}, ErrNotFound},
		{"server error", 500, nil, ErrUnavailable},
		{"bad gateway", 502, nil, ErrUnavailable},
		{"throttled", 429, nil, ErrUnavailable},
		{"200 without token", 200, map[string]string{}, ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if raw, ok := tc.body.(rawBody); ok {
					if raw[0] != "" {
						w.Header().Set("Content-Type", raw[0])
					}
					w.WriteHeader(tc.status)
					_, _ = w.Write([]byte(raw[1]))
					return
				}
				jsonReply(w, tc.status, tc.body)
			}))
			_, err := c.PasswordGrant(context.Background(), "hc", "alice", "pa55word-secret")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if IsOutage(err) != (tc.want == ErrUnavailable) {
				t.Fatalf("IsOutage = %v", IsOutage(err))
			}
			// A named refusal is still a refusal; a plain one names nothing.
			named := errors.Is(err, ErrAccountDisabled) || errors.Is(err, ErrActionRequired)
			if named != (tc.want == ErrAccountDisabled || tc.want == ErrActionRequired) || (named && !errors.Is(err, ErrInvalidCredentials)) {
				t.Fatalf("refusal classification of %v", err)
			}
			if strings.Contains(err.Error(), "pa55word-secret") || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestPasswordGrantRequest(t *testing.T) {
	c := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.URL.Path != "/realms/homechoice/protocol/openid-connect/token" ||
			r.Form.Get("grant_type") != "password" || r.Form.Get("username") != "alice" ||
			r.Form.Get("password") != "pw" || r.Form.Get("client_id") != "kcguard" || r.Form.Get("client_secret") != "s3cret" {
			jsonReply(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		jsonReply(w, 200, map[string]any{"access_token": "ACCESS-TOKEN-X", "refresh_token": "REFRESH-TOKEN-Y", "expires_in": 300,
			"refresh_expires_in": 1800, "token_type": "Bearer"})
	}))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	tok, err := c.PasswordGrant(context.Background(), "hc", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := Token{AccessToken: "ACCESS-TOKEN-X", RefreshToken: "REFRESH-TOKEN-Y", ExpiresIn: 300, RefreshExpiresIn: 1800, TokenType: "Bearer",
		ExpiresAt: now.Add(300 * time.Second), RefreshExpiresAt: now.Add(1800 * time.Second)}
	if tok != want {
		t.Fatalf("token = %+v", tok)
	}
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok)} {
		if strings.Contains(s, "ACCESS-TOKEN-X") || strings.Contains(s, "REFRESH-TOKEN-Y") {
			t.Fatalf("formatting leaks a token: %s", s)
		}
	}
}

func TestTransportErrorsAndTimeouts(t *testing.T) {
	// The handler hangs until the client gives up.
	c := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	start := time.Now()
	err := c.Ping(context.Background())
	if !IsOutage(err) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung server: err = %v, want outage (and not the caller's deadline)", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > time.Second {
		t.Fatalf("took %v, want ≈300ms", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) || IsOutage(err) {
		t.Fatalf("caller cancel: err = %v", err)
	}

	refused, _ := New(Options{BaseURL: "http://127.0.0.1:1", Packages: map[string]Realm{"hc": {"r", "c", "s"}}})
	if err := refused.Ping(context.Background()); !IsOutage(err) {
		t.Fatalf("refused: err = %v", err)
	}
}

func TestAdminClassificationAndTokenRetry(t *testing.T) {
	var tokenFetches, userCalls atomic.Int32
	c := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/token"):
			n := tokenFetches.Add(1)
			jsonReply(w, 200, map[string]any{"access_token": "svc-" + string(rune('0'+n)), "expires_in": 300, "token_type": "Bearer"})
		case r.URL.Path == "/admin/realms/homechoice/users":
			// The first token is "revoked": a 401 must trigger one refetch.
			if userCalls.Add(1) == 1 && r.Header.Get("Authorization") == "Bearer svc-1" {
				w.WriteHeader(401)
				return
			}
			if r.URL.Query().Get("exact") != "true" {
				jsonReply(w, 400, nil)
				return
			}
			jsonReply(w, 200, []map[string]any{{"id": "u1", "username": "alice", "enabled": true}})
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/users/missing"):
			jsonReply(w, 404, map[string]string{"error": "User not found"})
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/users/conflict"):
			jsonReply(w, 409, map[string]string{"errorMessage": "User exists with same email"})
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/users/forbidden"):
			w.WriteHeader(403)
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/users/boom"):
			w.WriteHeader(503)
		default:
			w.WriteHeader(418)
		}
	}))
	ctx := context.Background()
	u, err := c.FindUser(ctx, "hc", "ALICE")
	if err != nil || u.ID != "u1" {
		t.Fatalf("find = %+v, %v", u, err)
	}
	if n := tokenFetches.Load(); n != 2 {
		t.Fatalf("token fetches = %d, want 2 (one retry after 401)", n)
	}
	if _, err := c.FindUser(ctx, "hc", "bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no exact match: %v", err)
	}
	no := false
	for id, want := range map[string]error{"missing": ErrNotFound, "conflict": ErrConflict, "forbidden": ErrRejected, "boom": ErrUnavailable} {
		err := c.UpdateUser(ctx, "hc", id, UserUpdate{Enabled: &no})
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", id, err, want)
		}
		var ke *Error
		if !errors.As(err, &ke) || ke.Status == 0 {
			t.Errorf("%s: no status in %#v", id, err)
		}
	}
	if _, err := c.FindUser(ctx, "nope", "x"); !errors.Is(err, ErrUnknownPackage) || IsOutage(err) {
		t.Fatalf("unknown package: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		want string // substring of the error, "" = ok
	}{
		{"ok", Options{BaseURL: "http://kc:8080", Packages: map[string]Realm{"a": {"r", "c", "s"}}}, ""},
		{"relative url", Options{BaseURL: "kc:8080/x", Packages: map[string]Realm{"a": {"r", "c", "s"}}}, "absolute"},
		{"no packages", Options{BaseURL: "http://kc"}, "no packages"},
		{"missing secret", Options{BaseURL: "http://kc", Packages: map[string]Realm{"a": {"r", "c", ""}}}, "client secret"},
		{"bad ping package", Options{BaseURL: "http://kc", PingPackage: "b", Packages: map[string]Realm{"a": {"r", "c", "s"}}}, "ping package"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.reqTimeout != DefaultRequestTimeout || c.adminTimeout != DefaultAdminTimeout {
					t.Fatalf("defaults not applied: %v %v", c.reqTimeout, c.adminTimeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestTokenSubject(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct{ name, token, want string }{
		{"keycloak access token", enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"800e8a8c-9363","exp":1}`)) + ".sig", "800e8a8c-9363"},
		{"padded payload", enc([]byte(`{}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"sub":"id-1"}`)) + ".sig", "id-1"},
		{"lightweight token without sub", enc([]byte(`{}`)) + "." + enc([]byte(`{"exp":1}`)) + ".sig", ""},
		{"not a JWT", "opaque-token", ""},
		{"garbage payload", "a.%%%.c", ""},
	} {
		if got := (Token{AccessToken: tc.token}).Subject(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A pooled connection the server closed without answering (its keep-alive
// timeout racing the next request) must not fail the grant.
func TestGrantSurvivesAPooledConnectionClosedByTheServer(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		_, _ = io.ReadAll(r.Body)
		if n == 2 { // the second request, on the reused connection: hang up
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"a.b.c","expires_in":300,"token_type":"Bearer"}`)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Packages: map[string]Realm{"p": {Realm: "r", ClientID: "c", ClientSecret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.PasswordGrant(context.Background(), "p", "u", "pw"); err != nil {
			t.Fatalf("grant %d: %v", i+1, err)
		}
	}
	if n := requests.Load(); n != 3 {
		t.Fatalf("%d requests reached the server, want 3 (the hung-up one sent again)", n)
	}
}
