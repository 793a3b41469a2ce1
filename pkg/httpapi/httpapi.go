// Package httpapi translates API Gateway HTTP API (payload v2) events into
// service calls and back. Every error answer has the same shape,
//
//	{"error": {"code": "invalid_request", "message": "..."}}
//
// with a stable code; internal error text never reaches a client.
package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Request and Response are the API Gateway v2 payloads.
type (
	Request  = events.APIGatewayV2HTTPRequest
	Response = events.APIGatewayV2HTTPResponse
)

// Error is an answer to the client: status, stable code, human message.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sets Retry-After when positive
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Stable error codes of the public API.
const (
	CodeInvalidRequest     = "invalid_request"
	CodeInvalidCredentials = "invalid_credentials"
	CodeLocked             = "locked"
	CodeTooManyRequests    = "too_many_requests"
	CodeUnknownPackage     = "unknown_package"
	CodeWeakPassword       = "weak_password"
	CodeConflict           = "conflict"
	CodeLoginSuperseded    = "login_superseded"
	CodeUnauthorized       = "unauthorized"
	CodeNotFound           = "not_found"
	CodeForbidden          = "forbidden"
	CodeOfflineDisabled    = "offline_login_disabled"
	// Keycloak's decisions, named only after the password was verified.
	CodeAccountDisabled      = "account_disabled"
	CodeActionRequired       = "action_required"
	CodeOfflineWindowExpired = "offline_window_expired"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
	CodeMethodNotAllowed     = "method_not_allowed"
)

// BadRequest is a 400 invalid_request with a message for the client.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// JSON answers status with v encoded as JSON.
func JSON(status int, v any) Response {
	body, err := json.Marshal(v)
	if err != nil { // only for programmer errors: our own response types always encode
		return Fail(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
	}
	return Response{
		StatusCode: status,
		Headers: map[string]string{
			"Content-Type":           "application/json",
			"Cache-Control":          "no-store", // answers carry session and Keycloak tokens
			"X-Content-Type-Options": "nosniff",
		},
		Body: string(body),
	}
}

// Fail answers with the error's status and the standard error body.
func Fail(e *Error) Response {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	r := JSON(e.Status, map[string]body{"error": {Code: e.Code, Message: e.Message}})
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		r.Headers["Retry-After"] = strconv.Itoa(secs)
	}
	return r
}

// Body returns the request body bytes, decoding base64 when API Gateway
// encoded it, and refuses bodies over max bytes.
func Body(req Request, max int) ([]byte, *Error) {
	raw := req.Body
	if len(raw) > base64.StdEncoding.EncodedLen(max)+4 {
		return nil, tooLarge(max)
	}
	data := []byte(raw)
	if req.IsBase64Encoded {
		var err error
		if data, err = base64.StdEncoding.DecodeString(raw); err != nil {
			return nil, BadRequest("body is not valid base64")
		}
	}
	if len(data) > max {
		return nil, tooLarge(max)
	}
	return data, nil
}

func tooLarge(max int) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalidRequest,
		Message: fmt.Sprintf("request body is larger than %d bytes", max)}
}

// DecodeJSON decodes exactly one JSON object into dst. Unknown fields and
// trailing data are client errors. The content type is not checked: the
// body decides (curl -d sends JSON labelled as a form, and that is fine).
func DecodeJSON(req Request, max int, dst any) *Error {
	data, e := Body(req, max)
	if e != nil {
		return e
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return BadRequest("request body is empty; a JSON object is required")
	}
	if !utf8.Valid(data) { // encoding/json would silently replace bad bytes
		return BadRequest("request body must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return BadRequest("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest("request body has data after the JSON object")
	}
	return nil
}

// describeJSONError turns a decoder error into a message safe for clients:
// it names the field or position, never echoes values (which may be passwords).
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be a %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return "request body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "malformed JSON"
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	default:
		return "number"
	}
}

func header(req Request, name string) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Header returns a request header, case-insensitively.
func Header(req Request, name string) string { return header(req, name) }
