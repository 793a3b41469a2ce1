// Package auth is the product: dual authentication. The local credential
// store is the primary check; Keycloak is a best-effort second tier behind
// the fleet-wide breaker, with cached tokens for its outages. Password
// changes are stored locally first and synced to Keycloak now or later.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/keycloak"
)

// Mode is how a login was authenticated (the original system's AuthMode).
type Mode string

const (
	ModeKeycloak Mode = "keycloak" // local check passed and Keycloak issued fresh tokens
	ModeCached   Mode = "cached"   // local check passed; Keycloak down; a cached token within its grace period
	ModeLocal    Mode = "local"    // local check only
)

// KeycloakStatus is what the login learned about Keycloak.
type KeycloakStatus string

const (
	KeycloakAvailable   KeycloakStatus = "available"
	KeycloakUnavailable KeycloakStatus = "unavailable"  // tried and failed (timeout, transport, 5xx)
	KeycloakCircuitOpen KeycloakStatus = "circuit_open" // not tried: the fleet knows it is down
	KeycloakDisabled    KeycloakStatus = "disabled"     // the breaker's resilience switch is off and Keycloak is not used
)

// LoginInput is one login attempt. Password is dropped after verification.
type LoginInput struct {
	Package   string
	Username  string
	Password  string
	SourceIP  string
	UserAgent string
	RequestID string
}

// LoginResult is a successful login.
type LoginResult struct {
	SessionToken   string
	ExpiresAt      time.Time
	Mode           Mode
	KeycloakStatus KeycloakStatus
	// Keycloak is the fresh or cached Keycloak token, nil in local mode.
	Keycloak *keycloak.Token
}

// PasswordChangeInput is one password change request.
type PasswordChangeInput struct {
	Package     string
	Username    string
	OldPassword string
	NewPassword string
	SourceIP    string
	UserAgent   string
	RequestID   string
}

// PasswordChangeResult says whether Keycloak already has the new password.
type PasswordChangeResult struct {
	// Synced is true when Keycloak took the new hash during the request.
	Synced bool
	// Sync is "applied" or "queued".
	Sync string
}

// Errors the service returns; the HTTP layer maps each to one status and code.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrUnknownPackage     = errors.New("unknown package")
	ErrOfflineDisabled    = errors.New("keycloak unavailable and offline login is disabled")
	ErrConflict           = errors.New("concurrent password change")
	ErrUnavailable        = errors.New("local credential store unavailable")
	// ErrAccountDisabled: Keycloak (an administrator) disabled the account.
	// Only returned once the password was verified, so it reveals nothing
	// to someone guessing.
	ErrAccountDisabled = errors.New("account disabled")
	// ErrActionRequired: Keycloak requires an action of the user (update
	// the password, verify the email, ...) before any login; only returned
	// once the password was verified.
	ErrActionRequired = errors.New("account requires an action in the identity provider")
	// ErrOfflineWindowExpired: Keycloak is down and the user's last
	// Keycloak-confirmed login is older than the offline window.
	ErrOfflineWindowExpired = errors.New("keycloak unavailable and the offline login window has expired")
	// ErrLoginSuperseded refuses a login whose password check was overtaken
	// by a password change or a revocation of the user's sessions before
	// its session was stored; no session was made and a retry is safe.
	ErrLoginSuperseded = errors.New("login superseded by a concurrent change to the account")
)

// LockedError refuses a login during an offline lockout delay.
type LockedError struct{ RetryAfter time.Duration }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed logins; retry after %s", e.RetryAfter.Round(time.Second))
}

// ThrottledError refuses an attempt from a source (client address) that
// failed too often across usernames; the users it named are not locked.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins from this source; retry after %s", e.RetryAfter.Round(time.Second))
}

// WeakPasswordError is a new password the policy refuses.
type WeakPasswordError struct{ Reason string }

func (e *WeakPasswordError) Error() string { return "weak password: " + e.Reason }
