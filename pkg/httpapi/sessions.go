package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/sessions"
)

// SessionStore is what the session routes need.
type SessionStore interface {
	GetByToken(ctx context.Context, token string, now time.Time) (sessions.Record, error)
	GetByID(ctx context.Context, id string) (sessions.Record, error)
	ListByUser(ctx context.Context, pkg, username string) ([]sessions.Record, error)
	Revoke(ctx context.Context, id string, now time.Time) error
	RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error)
}

// KeycloakLogout ends a user's Keycloak sessions now, or queues that for
// when Keycloak is back; it reports "applied" or "queued".
type KeycloakLogout interface {
	LogoutEverywhere(ctx context.Context, pkg, username string) string
}

// SessionReports builds a package's session metrics (metrics.SessionReporter).
type SessionReports interface {
	Report(ctx context.Context, pkg string, now time.Time) (metrics.SessionReport, error)
}

// SessionHandlers serve the session routes and their admin counterparts.
type SessionHandlers struct {
	Store    SessionStore
	Keycloak KeycloakLogout
	// Reports serves GET /admin/metrics; Packages are the packages it knows.
	Reports  SessionReports
	Packages []string
	// Guard admits operators to the /admin routes (AdminGuard.Check: a
	// listed IAM caller in AWS, the admin key locally).
	Guard AdminGuard
	Now   func() time.Time
	Log   *slog.Logger
}

type sessionView struct {
	ID         string    `json:"id"`
	Package    string    `json:"package,omitempty"`
	Username   string    `json:"username,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AuthMode   string    `json:"auth_mode"`
	SourceIP   string    `json:"source_ip"`
	UserAgent  string    `json:"user_agent"`
	Current    bool      `json:"current"`
}

func viewOf(r sessions.Record, currentID string, withUser bool) sessionView {
	v := sessionView{ID: r.ID, CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, ExpiresAt: r.EndsAt(),
		AuthMode: string(r.AuthMode), SourceIP: r.SourceIP, UserAgent: r.UserAgent, Current: r.ID == currentID}
	if withUser {
		v.Package, v.Username = r.Package, r.Username
	}
	return v
}

func (h *SessionHandlers) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}

func (h *SessionHandlers) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

var errUnauthorized = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "a valid session token is required"}

// caller resolves the bearer session of the request.
func (h *SessionHandlers) caller(ctx context.Context, req Request) (sessions.Record, *Error) {
	token := BearerToken(Header(req, "authorization"))
	if token == "" {
		return sessions.Record{}, errUnauthorized
	}
	rec, err := h.Store.GetByToken(ctx, token, h.now())
	switch {
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, sessions.ErrExpired), errors.Is(err, sessions.ErrRevoked):
		return sessions.Record{}, errUnauthorized
	case err != nil:
		return sessions.Record{}, h.unavailable(ctx, "session lookup", err)
	}
	return rec, nil
}

func (h *SessionHandlers) unavailable(ctx context.Context, op string, err error) *Error {
	h.log().ErrorContext(ctx, op+" failed", "err", err)
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the session service is temporarily unavailable"}
}

// List handles GET /sessions: the caller's live sessions, never a token or hash.
func (h *SessionHandlers) List(ctx context.Context, req Request) (Response, error) {
	me, e := h.caller(ctx, req)
	if e != nil {
		return Fail(e), nil
	}
	return h.list(ctx, me.Package, me.Username, me.ID, false)
}

func (h *SessionHandlers) list(ctx context.Context, pkg, username, currentID string, withUser bool) (Response, error) {
	all, err := h.Store.ListByUser(ctx, pkg, username)
	if err != nil {
		return Fail(h.unavailable(ctx, "list sessions", err)), nil
	}
	now := h.now()
	out := []sessionView{}
	for _, r := range all {
		if r.Active(now) {
			out = append(out, viewOf(r, currentID, withUser))
		}
	}
	return JSON(http.StatusOK, map[string]any{"sessions": out}), nil
}

// Delete handles DELETE /sessions/{id}. Another user's session id answers
// 404 like an unknown one, so ids cannot be probed.
func (h *SessionHandlers) Delete(ctx context.Context, req Request) (Response, error) {
	me, e := h.caller(ctx, req)
	if e != nil {
		return Fail(e), nil
	}
	id := req.PathParameters["id"]
	rec, err := h.Store.GetByID(ctx, id)
	switch {
	case errors.Is(err, sessions.ErrNotFound) || (err == nil && (rec.Package != me.Package || rec.Username != me.Username)):
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such session"}), nil
	case err != nil:
		return Fail(h.unavailable(ctx, "get session", err)), nil
	}
	if err := h.Store.Revoke(ctx, id, h.now()); err != nil && !errors.Is(err, sessions.ErrNotFound) {
		return Fail(h.unavailable(ctx, "revoke session", err)), nil
	}
	return JSON(http.StatusOK, map[string]any{"success": true, "revoked": 1}), nil
}

// Logout handles POST /logout: ends the current session.
func (h *SessionHandlers) Logout(ctx context.Context, req Request) (Response, error) {
	me, e := h.caller(ctx, req)
	if e != nil {
		return Fail(e), nil
	}
	if err := h.Store.Revoke(ctx, me.ID, h.now()); err != nil {
		return Fail(h.unavailable(ctx, "revoke session", err)), nil
	}
	return JSON(http.StatusOK, map[string]any{"success": true, "revoked": 1}), nil
}

// LogoutAll handles POST /logout-all: every session of the caller ("all
// devices") and the caller's Keycloak sessions.
func (h *SessionHandlers) LogoutAll(ctx context.Context, req Request) (Response, error) {
	me, e := h.caller(ctx, req)
	if e != nil {
		return Fail(e), nil
	}
	return h.logoutUser(ctx, me.Package, me.Username)
}

func (h *SessionHandlers) logoutUser(ctx context.Context, pkg, username string) (Response, error) {
	n, err := h.Store.RevokeAllForUser(ctx, pkg, username, h.now())
	if err != nil {
		return Fail(h.unavailable(ctx, "revoke sessions", err)), nil
	}
	kc := h.Keycloak.LogoutEverywhere(ctx, pkg, username)
	return JSON(http.StatusOK, map[string]any{"success": true, "revoked": n, "keycloak_logout": kc}), nil
}

// admin checks the admin guard: a listed IAM caller (AWS) or the admin key
// (local). Every refusal is the same 403 forbidden.
func (h *SessionHandlers) admin(req Request) *Error {
	return h.Guard.Check(req)
}

// AdminPrincipal reports whether the IAM caller arn is one of principals:
// equal to one, or starting with one that ends in "*" (any session of an
// assumed role: arn:aws:sts::ACCOUNT:assumed-role/ROLE/*).
func AdminPrincipal(principals []string, arn string) bool {
	if arn == "" {
		return false
	}
	for _, p := range principals {
		if prefix, wild := strings.CutSuffix(p, "*"); wild && prefix != "" && strings.HasPrefix(arn, prefix) || p == arn {
			return true
		}
	}
	return false
}

// AdminList handles GET /admin/sessions?package=P&username=U.
func (h *SessionHandlers) AdminList(ctx context.Context, req Request) (Response, error) {
	if e := h.admin(req); e != nil {
		return Fail(e), nil
	}
	pkg, user := req.QueryStringParameters["package"], req.QueryStringParameters["username"]
	if e := firstError(checkText("package", &pkg, MaxPackageLen), checkText("username", &user, MaxUsernameLen)); e != nil {
		return Fail(e), nil
	}
	return h.list(ctx, pkg, user, "", true)
}

// AdminDelete handles DELETE /admin/sessions/{id}: invalidate any session.
func (h *SessionHandlers) AdminDelete(ctx context.Context, req Request) (Response, error) {
	if e := h.admin(req); e != nil {
		return Fail(e), nil
	}
	id := req.PathParameters["id"]
	if _, err := h.Store.GetByID(ctx, id); errors.Is(err, sessions.ErrNotFound) {
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such session"}), nil
	} else if err != nil {
		return Fail(h.unavailable(ctx, "get session", err)), nil
	}
	if err := h.Store.Revoke(ctx, id, h.now()); err != nil {
		return Fail(h.unavailable(ctx, "revoke session", err)), nil
	}
	return JSON(http.StatusOK, map[string]any{"success": true, "revoked": 1}), nil
}

// AdminLogoutUser handles POST /admin/users/{package}/{username}/logout.
func (h *SessionHandlers) AdminLogoutUser(ctx context.Context, req Request) (Response, error) {
	if e := h.admin(req); e != nil {
		return Fail(e), nil
	}
	pkg, user := req.PathParameters["package"], req.PathParameters["username"]
	if e := firstError(checkText("package", &pkg, MaxPackageLen), checkText("username", &user, MaxUsernameLen)); e != nil {
		return Fail(e), nil
	}
	return h.logoutUser(ctx, pkg, user)
}

// AdminMetrics handles GET /admin/metrics?package=P: active sessions by auth
// mode and logins per hour by auth mode over the last day.
func (h *SessionHandlers) AdminMetrics(ctx context.Context, req Request) (Response, error) {
	if e := h.admin(req); e != nil {
		return Fail(e), nil
	}
	pkg := req.QueryStringParameters["package"]
	if e := checkText("package", &pkg, MaxPackageLen); e != nil {
		return Fail(e), nil
	}
	if !slices.Contains(h.Packages, pkg) {
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeUnknownPackage, Message: "unknown package"}), nil
	}
	rep, err := h.Reports.Report(ctx, pkg, h.now())
	if err != nil {
		return Fail(h.unavailable(ctx, "session metrics", err)), nil
	}
	return JSON(http.StatusOK, rep), nil
}
