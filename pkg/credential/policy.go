package credential

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Policy is the local password policy, checked when a password is set
// (never at login, so a policy change does not lock anyone out).
type Policy struct {
	// MinLength is the minimum length in characters (Unicode code points).
	// Zero means 12.
	MinLength int
	// MaxBytes is the maximum length in UTF-8 bytes. Zero means 1024: longer
	// input buys no security and only costs hashing time.
	MaxBytes int
}

// Policy defaults.
const (
	DefaultMinLength = 12
	DefaultMaxBytes  = 1024
)

// PolicyReason says which rule a password broke; it is stable and safe to
// show to the user or return as an API error code.
type PolicyReason string

// Reasons a password is refused.
const (
	ReasonTooShort       PolicyReason = "too_short"
	ReasonTooLong        PolicyReason = "too_long"
	ReasonEqualsUsername PolicyReason = "equals_username"
	// ReasonInvalidEncoding: not valid UTF-8. Keycloak hashes the UTF-8 of a
	// Java string; invalid bytes would hash differently there and break sync.
	ReasonInvalidEncoding PolicyReason = "invalid_encoding"
)

// ErrPolicy is matched by every *PolicyError (errors.Is(err, ErrPolicy)).
var ErrPolicy = errors.New("password does not meet the policy")

// PolicyError says why a password was refused. It never contains the password.
type PolicyError struct {
	Reason PolicyReason
	Limit  int // the minimum or maximum involved, else 0
}

func (e *PolicyError) Error() string {
	switch e.Reason {
	case ReasonTooShort:
		return fmt.Sprintf("password must be at least %d characters", e.Limit)
	case ReasonTooLong:
		return fmt.Sprintf("password must be at most %d bytes", e.Limit)
	case ReasonEqualsUsername:
		return "password must not equal the username"
	case ReasonInvalidEncoding:
		return "password must be valid UTF-8"
	}
	return string(e.Reason)
}

// Is makes errors.Is(err, ErrPolicy) true.
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

// Check returns nil or a *PolicyError for the first rule password breaks.
func (p Policy) Check(username, password string) error {
	minLen, maxBytes := p.MinLength, p.MaxBytes
	if minLen == 0 {
		minLen = DefaultMinLength
	}
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	// Size first: never walk a huge input rune by rune.
	if len(password) > maxBytes {
		return &PolicyError{Reason: ReasonTooLong, Limit: maxBytes}
	}
	if !utf8.ValidString(password) {
		return &PolicyError{Reason: ReasonInvalidEncoding}
	}
	if utf8.RuneCountInString(password) < minLen {
		return &PolicyError{Reason: ReasonTooShort, Limit: minLen}
	}
	if username != "" && strings.EqualFold(password, username) {
		return &PolicyError{Reason: ReasonEqualsUsername}
	}
	return nil
}
