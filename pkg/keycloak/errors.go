package keycloak

import (
	"errors"
	"fmt"
	"net/http"
)

// Every error this package returns for a Keycloak call is classified here,
// once, into one of these sentinels (test with errors.Is). The one exception
// is the caller's own context ending: then the error wraps ctx.Err()
// (context.Canceled or context.DeadlineExceeded) and none of the sentinels,
// because a caller giving up says nothing about Keycloak's health.
var (
	// ErrUnavailable: transport error, our own request timeout, 5xx, 429, an
	// unreadable success response, or a 401/403 from the token endpoint
	// without Keycloak's OAuth error body (a proxy in front of it). Counts as
	// an outage for the breaker.
	ErrUnavailable = errors.New("keycloak unavailable")
	// ErrInvalidCredentials: the token endpoint refused the user's password or
	// refresh token (invalid_grant: wrong password, disabled or temporarily
	// locked user, expired session). Never an outage.
	//
	// It does not prove the password is wrong: Keycloak 26.7.3's brute-force
	// protection answers "Invalid user credentials" also to concurrent
	// logins of one user and, at times, to a right password shortly after a
	// wrong one (its events say user_temporarily_disabled). The login asks
	// the admin API (InspectAccount) before concluding anything from it.
	ErrInvalidCredentials = errors.New("keycloak: invalid credentials")
	// ErrAccountDisabled and ErrActionRequired refine ErrInvalidCredentials
	// (errors.Is matches both) where Keycloak's answer says why. Keycloak
	// 26.7.3 names the reason only after the password checked out, so
	// either one also proves the password right:
	//   400 invalid_grant "Account disabled"            → ErrAccountDisabled
	//   400 invalid_grant "Account is not fully set up"  → ErrActionRequired
	//   400 invalid_grant "Invalid user credentials"     → plain ErrInvalidCredentials:
	//       wrong password, unknown user, and also a user its brute-force
	//       detector has locked (only the admin API tells: BruteForceStatus).
	ErrAccountDisabled = errors.New("keycloak: account disabled")
	ErrActionRequired  = errors.New("keycloak: account is not fully set up")
	// ErrNotFound: 404, or no user with that exact username.
	ErrNotFound = errors.New("keycloak: not found")
	// ErrConflict: 409, e.g. the username or email already exists.
	ErrConflict = errors.New("keycloak: conflict")
	// ErrRejected: any other 4xx (bad request, 403 missing role, our client
	// secret refused). Retrying will not help; Error.Reason says why.
	ErrRejected = errors.New("keycloak: request rejected")
	// ErrUnknownPackage: the package (tenant) has no realm mapping. Raised
	// before any request.
	ErrUnknownPackage = errors.New("keycloak: unknown package")
)

// IsOutage reports whether err means Keycloak itself is unreachable or
// failing, the only kind of error that may trip the circuit breaker.
func IsOutage(err error) bool { return errors.Is(err, ErrUnavailable) }

// Error is a classified Keycloak failure. Its message names the operation,
// package, status and Keycloak's error code/description, never a password,
// token or client secret.
type Error struct {
	Op      string // e.g. "password grant", "import password hash"
	Package string
	Status  int    // HTTP status; 0 for transport errors and timeouts
	Kind    error  // one of the sentinels above
	Reason  string // Keycloak's error / error_description / errorMessage, or the transport failure
	// Refusal refines an ErrInvalidCredentials Kind: ErrAccountDisabled,
	// ErrActionRequired, or nil when Keycloak gave no reason.
	Refusal error
}

// Is matches the refinement as well as the Kind (through Unwrap).
func (e *Error) Is(target error) bool { return e.Refusal != nil && target == e.Refusal }

func (e *Error) Error() string {
	msg := "keycloak " + e.Op
	if e.Package != "" {
		msg += " [" + e.Package + "]"
	}
	msg += ": " + e.Kind.Error()
	if e.Status != 0 {
		msg += fmt.Sprintf(" (%d %s)", e.Status, http.StatusText(e.Status))
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Unwrap exposes only the sentinel. The transport error is kept as text in
// Reason, not in the chain, so that our own request timeout (an outage) is
// never mistaken for the caller's context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.Kind }

// NewError builds a classified error; fakes use it to fail like the real
// client does.
func NewError(op, pkg string, kind error, status int, reason string) *Error {
	return &Error{Op: op, Package: pkg, Kind: kind, Status: status, Reason: reason}
}

// Keycloak's error_description texts for a password grant it refused
// (org.keycloak.events.Errors / the direct grant authenticators, 26.7.3).
const (
	descAccountDisabled = "Account disabled"
	descNotFullySetUp   = "Account is not fully set up"
)

// classifyRefusal refines a token endpoint's invalid_grant by its
// error_description; anything else stays a plain refusal.
func classifyRefusal(description string) error {
	switch description {
	case descAccountDisabled:
		return ErrAccountDisabled
	case descNotFullySetUp:
		return ErrActionRequired
	}
	return nil
}

// classifyStatus maps an HTTP error status to its sentinel. oauthErr is the
// OAuth "error" field of a token endpoint response ("" elsewhere).
func classifyStatus(status int, tokenEndpoint bool, oauthErr string) error {
	switch {
	case status >= 500, status == http.StatusTooManyRequests:
		return ErrUnavailable
	case tokenEndpoint && oauthErr == "invalid_grant":
		// Keycloak 26.7.3 answers a wrong password, unknown or disabled user
		// and an expired or revoked refresh token all with 400 invalid_grant.
		return ErrInvalidCredentials
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	default:
		// Includes 401 invalid_client / unauthorized_client: our client
		// secret is wrong. That is a configuration error, not the user's
		// password; calling it invalid credentials would make every login
		// look like credential drift and queue a sync job per user.
		return ErrRejected
	}
}
