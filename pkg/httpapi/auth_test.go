package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// fakeAuth answers by username so each case can pick the service's reaction.
type fakeAuth struct{ calls int }

func (f *fakeAuth) Login(_ context.Context, in auth.LoginInput) (auth.LoginResult, error) {
	f.calls++
	switch in.Username {
	case "wrong":
		return auth.LoginResult{}, auth.ErrInvalidCredentials
	case "locked":
		return auth.LoginResult{}, &auth.LockedError{RetryAfter: 90*time.Second + time.Millisecond}
	case "throttled":
		return auth.LoginResult{}, &auth.ThrottledError{RetryAfter: 20 * time.Second}
	case "nopkg":
		return auth.LoginResult{}, auth.ErrUnknownPackage
	case "storedown":
		return auth.LoginResult{}, fmt.Errorf("lookup: %w", auth.ErrUnavailable)
	case "offline":
		return auth.LoginResult{}, auth.ErrOfflineDisabled
	case "disabled":
		return auth.LoginResult{}, auth.ErrAccountDisabled
	case "actions":
		return auth.LoginResult{}, auth.ErrActionRequired
	case "expired":
		return auth.LoginResult{}, auth.ErrOfflineWindowExpired
	case "bug":
		return auth.LoginResult{}, errors.New("secret internal detail")
	}
	return auth.LoginResult{SessionToken: "tok", ExpiresAt: time.Now().Add(time.Hour), Mode: auth.ModeKeycloak,
		KeycloakStatus: auth.KeycloakAvailable,
		Keycloak:       &keycloak.Token{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer", ExpiresAt: time.Now().Add(5 * time.Minute)}}, nil
}

func (f *fakeAuth) ChangePassword(_ context.Context, in auth.PasswordChangeInput) (auth.PasswordChangeResult, error) {
	f.calls++
	switch in.Username {
	case "weak":
		return auth.PasswordChangeResult{}, &auth.WeakPasswordError{Reason: "must be at least 12 characters"}
	case "race":
		return auth.PasswordChangeResult{}, auth.ErrConflict
	}
	return auth.PasswordChangeResult{Synced: false, Sync: "queued"}, nil
}

func call(t *testing.T, h Handler, body string, mutate ...func(*Request)) (Response, map[string]map[string]string) {
	t.Helper()
	req := Request{Body: body, Headers: map[string]string{"content-type": "application/json"}}
	for _, m := range mutate {
		m(&req)
	}
	resp, err := h(context.Background(), req)
	if err != nil {
		t.Fatalf("handler returned an error (API Gateway would answer 500): %v", err)
	}
	var out map[string]map[string]string
	_ = json.Unmarshal([]byte(resp.Body), &out)
	return resp, out
}

func TestLoginBadInput(t *testing.T) {
	long := strings.Repeat("a", 256)
	cases := []struct {
		name   string
		body   string
		mutate func(*Request)
		status int
		code   string
	}{
		{"empty body", ``, nil, 400, CodeInvalidRequest},
		{"whitespace body", `   `, nil, 400, CodeInvalidRequest},
		{"not json", `username=a&password=b`, nil, 400, CodeInvalidRequest},
		{"truncated json", `{"username":"a","password":"b"`, nil, 400, CodeInvalidRequest},
		{"json array", `[{"username":"a"}]`, nil, 400, CodeInvalidRequest},
		{"json string", `"hello"`, nil, 400, CodeInvalidRequest},
		{"json null", `null`, nil, 400, CodeInvalidRequest},
		{"trailing data", `{"username":"a","password":"b","package":"p"} {}`, nil, 400, CodeInvalidRequest},
		{"unknown field", `{"username":"a","password":"b","package":"p","admin":true}`, nil, 400, CodeInvalidRequest},
		{"misspelt field", `{"username":"a","pasword":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"missing username", `{"password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"missing password", `{"username":"a","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"missing package", `{"username":"a","password":"b"}`, nil, 400, CodeInvalidRequest},
		{"null username", `{"username":null,"password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"empty username", `{"username":"","password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"blank username", `{"username":"   ","password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"empty password", `{"username":"a","password":"","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"empty package", `{"username":"a","password":"b","package":""}`, nil, 400, CodeInvalidRequest},
		{"number username", `{"username":42,"password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"object password", `{"username":"a","password":{"x":1},"package":"p"}`, nil, 400, CodeInvalidRequest},
		{"array package", `{"username":"a","password":"b","package":["p"]}`, nil, 400, CodeInvalidRequest},
		{"bool password", `{"username":"a","password":true,"package":"p"}`, nil, 400, CodeInvalidRequest},
		{"oversize username", `{"username":"` + long + `","password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"oversize password", `{"username":"a","password":"` + strings.Repeat("x", 1025) + `","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"oversize package", `{"username":"a","password":"b","package":"` + strings.Repeat("p", 65) + `"}`, nil, 400, CodeInvalidRequest},
		{"control char in username", `{"username":"a\u0000b","password":"b","package":"p"}`, nil, 400, CodeInvalidRequest},
		{"newline in package", `{"username":"a","password":"b","package":"p\nq"}`, nil, 400, CodeInvalidRequest},
		{"invalid utf8 username", "{\"username\":\"a\xff\",\"password\":\"b\",\"package\":\"p\"}", nil, 400, CodeInvalidRequest},
		{"body over 8 KiB", `{"username":"a","password":"b","package":"p","x":"` + strings.Repeat("x", 9000) + `"}`, nil, 413, CodeInvalidRequest},
		{"bad base64", `%%%`, func(r *Request) { r.IsBase64Encoded = true }, 400, CodeInvalidRequest},
		{"form-encoded body", `username=a&password=b&package=p`, func(r *Request) {
			r.Headers["content-type"] = "application/x-www-form-urlencoded"
		}, 400, CodeInvalidRequest},
		{"wrong password", `{"username":"wrong","password":"b","package":"p"}`, nil, 401, CodeInvalidCredentials},
		{"locked", `{"username":"locked","password":"b","package":"p"}`, nil, 429, CodeLocked},
		{"disabled in keycloak", `{"username":"disabled","password":"b","package":"p"}`, nil, 401, CodeAccountDisabled},
		{"keycloak required action", `{"username":"actions","password":"b","package":"p"}`, nil, 403, CodeActionRequired},
		{"offline window expired", `{"username":"expired","password":"b","package":"p"}`, nil, 401, CodeOfflineWindowExpired},
		{"source throttled", `{"username":"throttled","password":"b","package":"p"}`, nil, 429, CodeTooManyRequests},
		{"unknown package", `{"username":"nopkg","password":"b","package":"p"}`, nil, 404, CodeUnknownPackage},
		{"store down", `{"username":"storedown","password":"b","package":"p"}`, nil, 503, CodeUnavailable},
		{"offline disabled", `{"username":"offline","password":"b","package":"p"}`, nil, 503, CodeOfflineDisabled},
		{"internal bug", `{"username":"bug","password":"b","package":"p"}`, nil, 500, CodeInternal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
			var m []func(*Request)
			if tc.mutate != nil {
				m = append(m, tc.mutate)
			}
			resp, out := call(t, h.Login, tc.body, m...)
			if resp.StatusCode != tc.status || out["error"]["code"] != tc.code {
				t.Fatalf("got %d %q, want %d %q (body %s)", resp.StatusCode, out["error"]["code"], tc.status, tc.code, resp.Body)
			}
			if msg := out["error"]["message"]; msg == "" || strings.Contains(msg, "secret internal detail") ||
				strings.Contains(msg, "goroutine") {
				t.Fatalf("message %q is empty or leaks internals", msg)
			}
			if resp.Headers["Content-Type"] != "application/json" {
				t.Fatalf("content type %q", resp.Headers["Content-Type"])
			}
		})
	}
}

func TestLockedAnswerHasRetryAfter(t *testing.T) {
	h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
	resp, _ := call(t, h.Login, `{"username":"locked","password":"b","package":"p"}`)
	if got := resp.Headers["Retry-After"]; got != "91" {
		t.Fatalf("Retry-After = %q, want 91 (rounded up)", got)
	}
}

func TestThrottledAnswerHasRetryAfter(t *testing.T) {
	h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
	resp, out := call(t, h.Login, `{"username":"throttled","password":"b","package":"p"}`)
	if resp.StatusCode != 429 || out["error"]["code"] != CodeTooManyRequests || resp.Headers["Retry-After"] != "20" {
		t.Fatalf("got %d %q Retry-After %q", resp.StatusCode, out["error"]["code"], resp.Headers["Retry-After"])
	}
}

func TestLoginSuccessShape(t *testing.T) {
	h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
	body := base64.StdEncoding.EncodeToString([]byte(`{"username":"alice","password":"pw","package":"p"}`))
	resp, _ := call(t, h.Login, body, func(r *Request) { r.IsBase64Encoded = true })
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
	kc, _ := out["keycloak"].(map[string]any)
	if out["success"] != true || out["session_token"] != "tok" || out["auth_mode"] != "keycloak" ||
		out["keycloak_status"] != "available" || kc["access_token"] != "at" || kc["token_type"] != "Bearer" {
		t.Fatalf("response shape: %s", resp.Body)
	}
	if exp, _ := kc["expires_in"].(float64); exp < 290 || exp > 300 {
		t.Fatalf("expires_in = %v, want ~300", kc["expires_in"])
	}
	if resp.Headers["Cache-Control"] != "no-store" {
		t.Fatal("token responses must not be cached")
	}
}

func TestPasswordBadInput(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"missing new", `{"username":"a","old_password":"b","package":"p"}`, 400, CodeInvalidRequest},
		{"missing old", `{"username":"a","new_password":"b","package":"p"}`, 400, CodeInvalidRequest},
		{"new too long", `{"username":"a","old_password":"b","new_password":"` + strings.Repeat("n", 1025) + `","package":"p"}`, 422, CodeWeakPassword},
		{"weak", `{"username":"weak","old_password":"b","new_password":"short","package":"p"}`, 422, CodeWeakPassword},
		{"conflict", `{"username":"race","old_password":"b","new_password":"long-enough-pw","package":"p"}`, 409, CodeConflict},
		{"unknown field", `{"username":"a","old_password":"b","new_password":"c","package":"p","confirm":"c"}`, 400, CodeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
			resp, out := call(t, h.ChangePassword, tc.body)
			if resp.StatusCode != tc.status || out["error"]["code"] != tc.code {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, out["error"]["code"], tc.status, tc.code)
			}
		})
	}
	h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
	resp, _ := call(t, h.ChangePassword, `{"username":"a","old_password":"b","new_password":"c-long-enough","package":"p"}`)
	if resp.StatusCode != 200 || !strings.Contains(resp.Body, `"sync":"queued"`) || !strings.Contains(resp.Body, `"synced":false`) {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
}

// FuzzLoginRequest: whatever the body, the handler answers 200 or a 4xx with
// the standard error shape, and never echoes the password.
func FuzzLoginRequest(f *testing.F) {
	f.Add(`{"username":"alice","password":"pw","package":"p"}`, false)
	f.Add(`{"username":"a\u0000","password":"x","package":"p"}`, false)
	f.Add(`[]`, false)
	f.Add(`eyJ1c2VybmFtZSI6ImEifQ==`, true)
	f.Add(`{"username":"wrong","password":"pw","package":"p"}`, false)
	f.Fuzz(func(t *testing.T, body string, b64 bool) {
		h := &AuthHandlers{Service: &fakeAuth{}, MaxBodyBytes: 8 << 10}
		resp, err := h.Login(context.Background(), Request{Body: body, IsBase64Encoded: b64})
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		if resp.StatusCode == 200 {
			return
		}
		if resp.StatusCode < 400 || resp.StatusCode >= 500 && resp.StatusCode != 503 {
			t.Fatalf("status %d for %q", resp.StatusCode, body)
		}
		var out struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal([]byte(resp.Body), &out) != nil || out.Error.Code == "" || out.Error.Message == "" {
			t.Fatalf("bad error body %q", resp.Body)
		}
		var in struct{ Password string }
		if json.Unmarshal([]byte(body), &in) == nil && len(in.Password) > 3 && strings.Contains(resp.Body, in.Password) {
			t.Fatalf("password echoed in %q", resp.Body)
		}
	})
}
