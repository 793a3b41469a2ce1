package httpapi

import (
	"strings"
)

// MaxAuthorizationLen bounds the Authorization header we look at; a session
// token is 60 characters.
const MaxAuthorizationLen = 512

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// header. It returns "" for a missing, oversize or malformed header; the
// scheme is case-insensitive (RFC 9110), the token is not.
func BearerToken(header string) string {
	if header == "" || len(header) > MaxAuthorizationLen {
		return ""
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return ""
	}
	return token
}
