package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kcguard/kcguard/pkg/auth"
)

// Field limits of the public API. They keep hashing and storage costs
// bounded whatever a client sends.
const (
	MaxUsernameLen = 255  // characters; Keycloak's own limit
	MaxPasswordLen = 1024 // bytes
	MaxPackageLen  = 64
)

// Authenticator is the login and password service.
type Authenticator interface {
	Login(ctx context.Context, in auth.LoginInput) (auth.LoginResult, error)
	ChangePassword(ctx context.Context, in auth.PasswordChangeInput) (auth.PasswordChangeResult, error)
}

// AuthHandlers serve POST /login and POST /password.
type AuthHandlers struct {
	Service      Authenticator
	MaxBodyBytes int
	Log          *slog.Logger
}

type loginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	Package  *string `json:"package"`
}

type keycloakToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
}

type loginResponse struct {
	Success        bool           `json:"success"`
	SessionToken   string         `json:"session_token"`
	ExpiresAt      time.Time      `json:"expires_at"`
	AuthMode       auth.Mode      `json:"auth_mode"`
	KeycloakStatus string         `json:"keycloak_status"`
	Keycloak       *keycloakToken `json:"keycloak,omitempty"`
}

// Login handles POST /login.
func (h *AuthHandlers) Login(ctx context.Context, req Request) (Response, error) {
	var body loginRequest
	if e := DecodeJSON(req, h.MaxBodyBytes, &body); e != nil {
		return Fail(e), nil
	}
	if e := firstError(
		checkText("username", body.Username, MaxUsernameLen),
		checkSecret("password", body.Password),
		checkText("package", body.Package, MaxPackageLen),
	); e != nil {
		return Fail(e), nil
	}
	res, err := h.Service.Login(ctx, auth.LoginInput{
		Package: *body.Package, Username: *body.Username, Password: *body.Password,
		SourceIP: req.RequestContext.HTTP.SourceIP, UserAgent: req.RequestContext.HTTP.UserAgent,
		RequestID: req.RequestContext.RequestID,
	})
	if err != nil {
		return h.fail(ctx, "login", err), nil
	}
	out := loginResponse{
		Success: true, SessionToken: res.SessionToken, ExpiresAt: res.ExpiresAt.UTC(),
		AuthMode: res.Mode, KeycloakStatus: string(res.KeycloakStatus),
	}
	if t := res.Keycloak; t != nil {
		left := int(time.Until(t.ExpiresAt).Seconds())
		out.Keycloak = &keycloakToken{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
			ExpiresIn: max(left, 0), TokenType: t.TokenType}
	}
	return JSON(http.StatusOK, out), nil
}

type passwordRequest struct {
	Username    *string `json:"username"`
	OldPassword *string `json:"old_password"`
	NewPassword *string `json:"new_password"`
	Package     *string `json:"package"`
}

type passwordResponse struct {
	Success bool   `json:"success"`
	Synced  bool   `json:"synced"`
	Sync    string `json:"sync"`
}

// ChangePassword handles POST /password.
func (h *AuthHandlers) ChangePassword(ctx context.Context, req Request) (Response, error) {
	var body passwordRequest
	if e := DecodeJSON(req, h.MaxBodyBytes, &body); e != nil {
		return Fail(e), nil
	}
	if e := firstError(
		checkText("username", body.Username, MaxUsernameLen),
		checkSecret("old_password", body.OldPassword),
		checkText("package", body.Package, MaxPackageLen),
	); e != nil {
		return Fail(e), nil
	}
	if body.NewPassword == nil {
		return Fail(BadRequest("field \"new_password\" is required")), nil
	}
	if len(*body.NewPassword) > MaxPasswordLen || !utf8.ValidString(*body.NewPassword) {
		// Length beyond the limit is a policy matter for the new password.
		return Fail(&Error{Status: http.StatusUnprocessableEntity, Code: CodeWeakPassword,
			Message: "new password must be valid UTF-8 of at most 1024 bytes"}), nil
	}
	res, err := h.Service.ChangePassword(ctx, auth.PasswordChangeInput{
		Package: *body.Package, Username: *body.Username,
		OldPassword: *body.OldPassword, NewPassword: *body.NewPassword,
		SourceIP: req.RequestContext.HTTP.SourceIP, UserAgent: req.RequestContext.HTTP.UserAgent,
		RequestID: req.RequestContext.RequestID,
	})
	if err != nil {
		return h.fail(ctx, "password change", err), nil
	}
	return JSON(http.StatusOK, passwordResponse{Success: true, Synced: res.Synced, Sync: res.Sync}), nil
}

// fail maps a service error to its answer: the one table of statuses and
// codes. Unexpected errors are logged in full and answered generically.
func (h *AuthHandlers) fail(ctx context.Context, op string, err error) Response {
	var locked *auth.LockedError
	var throttled *auth.ThrottledError
	var weak *auth.WeakPasswordError
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		return Fail(&Error{Status: http.StatusUnauthorized, Code: CodeInvalidCredentials, Message: "invalid username or password"})
	case errors.As(err, &locked):
		return Fail(&Error{Status: http.StatusTooManyRequests, Code: CodeLocked,
			Message: "too many failed attempts; try again later", RetryAfter: locked.RetryAfter})
	case errors.Is(err, auth.ErrAccountDisabled):
		return Fail(&Error{Status: http.StatusUnauthorized, Code: CodeAccountDisabled,
			Message: "this account is disabled; contact your administrator"})
	case errors.Is(err, auth.ErrActionRequired):
		return Fail(&Error{Status: http.StatusForbidden, Code: CodeActionRequired,
			Message: "this account needs an action (e.g. a new password) in the identity provider before it can log in"})
	case errors.Is(err, auth.ErrOfflineWindowExpired):
		return Fail(&Error{Status: http.StatusUnauthorized, Code: CodeOfflineWindowExpired,
			Message: "the identity provider is unavailable and this account has not been confirmed by it recently enough to log in offline"})
	case errors.As(err, &throttled):
		return Fail(&Error{Status: http.StatusTooManyRequests, Code: CodeTooManyRequests,
			Message: "too many failed attempts from this address; try again later", RetryAfter: throttled.RetryAfter})
	case errors.Is(err, auth.ErrUnknownPackage):
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeUnknownPackage, Message: "unknown package"})
	case errors.As(err, &weak):
		return Fail(&Error{Status: http.StatusUnprocessableEntity, Code: CodeWeakPassword, Message: "new password " + weak.Reason})
	case errors.Is(err, auth.ErrConflict):
		return Fail(&Error{Status: http.StatusConflict, Code: CodeConflict,
			Message: "the password was changed by another request; sign in again and retry"})
	case errors.Is(err, auth.ErrLoginSuperseded):
		return Fail(&Error{Status: http.StatusConflict, Code: CodeLoginSuperseded,
			Message: "the account changed while signing in; sign in again"})
	case errors.Is(err, auth.ErrOfflineDisabled):
		return Fail(&Error{Status: http.StatusServiceUnavailable, Code: CodeOfflineDisabled,
			Message: "the identity provider is unavailable and offline login is disabled"})
	case errors.Is(err, auth.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		h.log().WarnContext(ctx, op+" unavailable", "err", err)
		return Fail(&Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "the login service is temporarily unavailable; try again shortly"})
	default:
		h.log().ErrorContext(ctx, op+" failed", "err", err)
		return Fail(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
	}
}

func (h *AuthHandlers) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}

func firstError(errs ...*Error) *Error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// checkText validates a required, printable, single-line field.
func checkText(name string, v *string, maxRunes int) *Error {
	switch {
	case v == nil:
		return BadRequest("field %q is required", name)
	case strings.TrimSpace(*v) == "":
		return BadRequest("field %q must not be empty", name)
	case !utf8.ValidString(*v):
		return BadRequest("field %q must be valid UTF-8", name)
	case utf8.RuneCountInString(*v) > maxRunes:
		return BadRequest("field %q is longer than %d characters", name, maxRunes)
	case strings.IndexFunc(*v, unicode.IsControl) >= 0:
		return BadRequest("field %q must not contain control characters", name)
	}
	return nil
}

// checkSecret validates a required password field without ever echoing it.
func checkSecret(name string, v *string) *Error {
	switch {
	case v == nil:
		return BadRequest("field %q is required", name)
	case *v == "":
		return BadRequest("field %q must not be empty", name)
	case len(*v) > MaxPasswordLen:
		return BadRequest("field %q is longer than %d bytes", name, MaxPasswordLen)
	case !utf8.ValidString(*v):
		return BadRequest("field %q must be valid UTF-8", name)
	}
	return nil
}
