package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Handler is one Lambda function's handler for API Gateway v2 events.
type Handler func(context.Context, Request) (Response, error)

// Route binds an API Gateway route key ("POST /login", "DELETE /sessions/{id}")
// to a handler, as the HTTP API does in AWS.
type Route struct {
	Method  string
	Path    string // may contain {name} segments
	Handler Handler
}

// Server serves Lambda handlers over plain HTTP for local use (`kcguard
// serve`): each request becomes the same API Gateway v2 event Lambda would
// receive, so the local API runs exactly the deployed handlers.
type Server struct {
	Routes []Route
	// MaxBodyBytes caps what is read from a request; API Gateway itself caps at 10 MB.
	MaxBodyBytes int64
	Log          *slog.Logger
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, params, methodOK := s.match(r.Method, r.URL.Path)
	var resp Response
	switch {
	case route == nil && methodOK:
		resp = Fail(&Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method not allowed"})
	case route == nil:
		resp = Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route"})
	default:
		ev, err := s.event(r, route, params)
		if err != nil {
			resp = Fail(BadRequest("could not read the request body"))
			break
		}
		resp, err = route.Handler(r.Context(), ev)
		if err != nil { // API Gateway answers 500 when a function returns an error
			s.Log.ErrorContext(r.Context(), "handler failed", "route", ev.RouteKey, "err", err)
			resp = Fail(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
		}
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		body, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	_, _ = w.Write(body)
}

// match finds the route for method and path; methodOK reports that the path
// exists under another method.
func (s *Server) match(method, path string) (*Route, map[string]string, bool) {
	methodOK := false
	for i := range s.Routes {
		rt := &s.Routes[i]
		params, ok := matchPath(rt.Path, path)
		if !ok {
			continue
		}
		if rt.Method != method {
			methodOK = true
			continue
		}
		return rt, params, false
	}
	return nil, nil, methodOK
}

func matchPath(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if xs[i] == "" {
				return nil, false
			}
			params[p[1:len(p)-1]] = xs[i]
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, true
}

func (s *Server) event(r *http.Request, rt *Route, params map[string]string) (Request, error) {
	max := s.MaxBodyBytes
	if max <= 0 {
		max = 10 << 20
	}
	// Read one byte past the cap so the handler sees an oversize body and
	// answers 413 itself, as it would behind API Gateway.
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return Request{}, err
	}
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev := Request{
		Version:               "2.0",
		RouteKey:              rt.Method + " " + rt.Path,
		RawPath:               r.URL.Path,
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		PathParameters:        params,
		QueryStringParameters: map[string]string{},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:  rt.Method + " " + rt.Path,
			RequestID: requestID(),
			Stage:     "$default",
			TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: ip, UserAgent: r.UserAgent(),
			},
		},
	}
	for k, v := range r.URL.Query() {
		ev.QueryStringParameters[k] = strings.Join(v, ",")
	}
	if utf8.Valid(data) {
		ev.Body = string(data)
	} else {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(data), true
	}
	return ev, nil
}

func requestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ByRouteKey serves several routes from one Lambda function: API Gateway
// puts the matched route ("DELETE /sessions/{id}") in the event.
func ByRouteKey(routes []Route) Handler {
	byKey := map[string]Handler{}
	for _, r := range routes {
		byKey[r.Method+" "+r.Path] = r.Handler
	}
	return func(ctx context.Context, req Request) (Response, error) {
		if h, ok := byKey[req.RouteKey]; ok {
			return h(ctx, req)
		}
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route"}), nil
	}
}
