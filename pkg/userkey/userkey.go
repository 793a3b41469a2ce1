// Package userkey names a user the way every store keys it: a package
// (tenant) and a case-normalised username, stored as "package#username".
//
// Usernames are case-normalised (trimmed, lower-cased) because Keycloak
// lower-cases usernames itself: "Alice" and "alice" are one Keycloak user, so
// they must be one local user too, or a login could check the wrong hash.
// Package names are used as-is and must not contain '#', the key separator.
package userkey

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is a key with an empty, oversize or '#'-holding part; stores
// wrap it, so test with errors.Is.
var ErrInvalid = errors.New("users: invalid key")

// MaxNameLength bounds package names and usernames: Keycloak keeps
// usernames in a 255-character column, and it keeps keys far below
// DynamoDB's 2048-byte partition key limit whatever a client sends.
const MaxNameLength = 255

// Key identifies a user: a package (tenant) and a normalised username.
type Key struct {
	Package  string
	Username string
}

// New normalises username and checks both parts.
func New(pkg, username string) (Key, error) {
	return Key{Package: pkg, Username: username}.Normalize()
}

// NormalizeUsername applies the case rule every store and caller shares.
func NormalizeUsername(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// String is the storage key "package#username". The package cannot contain
// '#', so the first '#' always separates the two parts.
func (k Key) String() string { return k.Package + "#" + k.Username }

// Normalize is k with its username normalised, or ErrInvalid.
func (k Key) Normalize() (Key, error) {
	k.Username = NormalizeUsername(k.Username)
	if err := CheckPackage(k.Package); err != nil {
		return k, err
	}
	if k.Username == "" || len(k.Username) > MaxNameLength {
		return k, fmt.Errorf("%w: username %.64q", ErrInvalid, k.Username)
	}
	return k, nil
}

// CheckPackage refuses an empty, oversize or '#'-holding package name.
func CheckPackage(pkg string) error {
	if pkg == "" || strings.Contains(pkg, "#") || len(pkg) > MaxNameLength {
		return fmt.Errorf("%w: package %.64q", ErrInvalid, pkg)
	}
	return nil
}
