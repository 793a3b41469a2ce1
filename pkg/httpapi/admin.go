package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AdminGuard decides who is an operator. In AWS, admin routes use IAM
// authorisation and API Gateway passes the caller's IAM identity; locally
// the X-Admin-Key header must equal api.admin_key. A browser can send
// neither, so the dashboard trades the key once (POST /dashboard/login) for
// a cookie that grants read-only views: /status, the dashboard, reports.
// The cookie is an HMAC of its expiry under the admin key (no server-side
// state; changing the key ends every dashboard session), HttpOnly and
// SameSite=Strict, so page scripts cannot read it and other sites cannot
// send it.
type AdminGuard struct {
	Key string
	// Principals are the IAM callers admitted (api.admin_principals, see
	// AdminPrincipal): IAM authorisation alone only proves the caller may
	// invoke the API.
	Principals []string
	Now        func() time.Time
}

// DashboardCookie is the name of the dashboard's session cookie.
const DashboardCookie = "kcguard_dashboard"

// DashboardSessionLifetime bounds a dashboard login.
const DashboardSessionLifetime = 8 * time.Hour

func (g AdminGuard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

var errAdminRequired = &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "administrator access required"}

// Check admits a listed IAM caller or the admin key: every admin route.
func (g AdminGuard) Check(req Request) *Error {
	if a := req.RequestContext.Authorizer; a != nil && a.IAM != nil && AdminPrincipal(g.Principals, a.IAM.UserARN) {
		return nil
	}
	if g.KeyMatches(Header(req, "x-admin-key")) {
		return nil
	}
	return errAdminRequired
}

// CheckRead is Check that also admits a valid dashboard cookie: read-only
// routes only.
func (g AdminGuard) CheckRead(req Request) *Error {
	if g.Check(req) == nil || g.validCookie(req) {
		return nil
	}
	return errAdminRequired
}

// KeyMatches compares in constant time; an unset key matches nothing.
func (g AdminGuard) KeyMatches(key string) bool {
	return g.Key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(g.Key)) == 1
}

func (g AdminGuard) mac(expiry int64) string {
	m := hmac.New(sha256.New, []byte(g.Key))
	fmt.Fprintf(m, "kcguard-dashboard|%d", expiry)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// SessionCookie is the Set-Cookie value for a dashboard login. Secure is
// left off only for plain-HTTP loopback (kcguard serve).
func (g AdminGuard) SessionCookie(secure bool) string {
	exp := g.now().Add(DashboardSessionLifetime).Unix()
	c := fmt.Sprintf("%s=v1.%d.%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", DashboardCookie, exp, g.mac(exp),
		int(DashboardSessionLifetime.Seconds()))
	if secure {
		c += "; Secure"
	}
	return c
}

// ClearCookie ends a dashboard login.
func ClearCookie() string {
	return DashboardCookie + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
}

func (g AdminGuard) validCookie(req Request) bool {
	if g.Key == "" {
		return false
	}
	for _, raw := range append(req.Cookies, strings.Split(Header(req, "cookie"), ";")...) {
		name, value, ok := strings.Cut(strings.TrimSpace(raw), "=")
		if !ok || name != DashboardCookie {
			continue
		}
		parts := strings.Split(value, ".")
		if len(parts) != 3 || parts[0] != "v1" {
			continue
		}
		exp, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || g.now().Unix() >= exp {
			continue
		}
		if hmac.Equal([]byte(parts[2]), []byte(g.mac(exp))) {
			return true
		}
	}
	return false
}
