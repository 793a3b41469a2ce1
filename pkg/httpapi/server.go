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
	"sync"
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
// receive, so the local API runs exactly the deployed handlers. Routes are
// matched by an http.ServeMux with the route keys as its patterns.
type Server struct {
	Routes []Route
	// MaxBodyBytes caps what is read from a request; API Gateway itself caps at 10 MB.
	MaxBodyBytes int64
	Log          *slog.Logger

	once sync.Once
	mux  *http.ServeMux
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(s.build)
	s.mux.ServeHTTP(w, r)
}

// build registers every route under its key. What no route matches falls
// to "/": 405 when the path is a route under another method, else 404,
// both in the API's error shape (the mux's own answers are plain text).
func (s *Server) build() {
	s.mux = http.NewServeMux()
	for i := range s.Routes {
		rt := &s.Routes[i]
		s.mux.Handle(rt.Method+" "+rt.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != rt.Method { // the mux serves HEAD with GET; API Gateway does not
				write(w, Fail(&Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method not allowed"}))
				return
			}
			write(w, s.serve(r, rt))
		}))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.routedUnderAnotherMethod(r) {
			write(w, Fail(&Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: "method not allowed"}))
			return
		}
		write(w, Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "no such route"}))
	})
}

// routedUnderAnotherMethod reports that r's path is a route for some
// method other than r's.
func (s *Server) routedUnderAnotherMethod(r *http.Request) bool {
	for _, rt := range s.Routes {
		if rt.Method == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = rt.Method
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			return true
		}
	}
	return false
}

// serve runs rt's handler on the event API Gateway would send for r.
func (s *Server) serve(r *http.Request, rt *Route) Response {
	ev, err := s.event(r, rt, pathParameters(r, rt.Path))
	if err != nil {
		return Fail(BadRequest("could not read the request body"))
	}
	resp, err := rt.Handler(r.Context(), ev)
	if err != nil { // API Gateway answers 500 when a function returns an error
		s.Log.ErrorContext(r.Context(), "handler failed", "route", ev.RouteKey, "err", err)
		return Fail(&Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
	}
	return resp
}

// write sends resp as API Gateway would.
func write(w http.ResponseWriter, resp Response) {
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

// pathParameters are the {name} segments of pattern as the mux matched them.
func pathParameters(r *http.Request, pattern string) map[string]string {
	params := map[string]string{}
	for _, seg := range strings.Split(pattern, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			params[name] = r.PathValue(name)
		}
	}
	return params
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
