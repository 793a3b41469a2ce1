package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/status"
)

// StatusReader builds the status Snapshot (status.Reader).
type StatusReader interface {
	Read(ctx context.Context, now time.Time) status.Snapshot
}

// ReportWriter renders an HTML report of kind for pkg since a time.
type ReportWriter interface {
	Write(ctx context.Context, w io.Writer, kind, pkg string, since, now time.Time) error
}

// Pages are the dashboard's two HTML documents.
type Pages interface {
	Dashboard() []byte
	Login(message string) []byte
}

// StatusHandlers serve /status, the dashboard and the reports: read-only
// operator views (AdminGuard.CheckRead).
type StatusHandlers struct {
	Reader   StatusReader
	Reports  ReportWriter
	Pages    Pages
	Packages []string
	Guard    AdminGuard
	// ReportKinds are the kinds Reports knows.
	ReportKinds []string
	Now         func() time.Time
	Log         *slog.Logger
}

func (h *StatusHandlers) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Status handles GET /status (and GET /dashboard/status, the same answer
// for the dashboard's cookie): the Snapshot as JSON.
func (h *StatusHandlers) Status(ctx context.Context, req Request) (Response, error) {
	if e := h.Guard.CheckRead(req); e != nil {
		return Fail(e), nil
	}
	return JSON(http.StatusOK, h.Reader.Read(ctx, h.now())), nil
}

func html(status int, body []byte) Response {
	return Response{StatusCode: status, Body: string(body), Headers: map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		// Everything is inline and same-origin: no other origin is ever asked.
		"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
			"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
		"Referrer-Policy": "no-referrer",
	}}
}

// Dashboard handles GET /dashboard: the page for a logged-in operator; a
// redirect to the login form for anyone else (the usual answer to a
// browser, which would log a 401 page as an error).
func (h *StatusHandlers) Dashboard(_ context.Context, req Request) (Response, error) {
	if h.Guard.CheckRead(req) != nil {
		return redirect("/dashboard/login"), nil
	}
	return html(http.StatusOK, h.Pages.Dashboard()), nil
}

// DashboardLoginForm handles GET /dashboard/login.
func (h *StatusHandlers) DashboardLoginForm(_ context.Context, _ Request) (Response, error) {
	return html(http.StatusOK, h.Pages.Login("")), nil
}

func redirect(to string) Response {
	r := html(http.StatusSeeOther, nil)
	r.Headers["Location"] = to
	return r
}

// DashboardLogin handles POST /dashboard/login (form field "key"): a right
// key gets the dashboard cookie and a redirect to the page.
func (h *StatusHandlers) DashboardLogin(_ context.Context, req Request) (Response, error) {
	data, e := Body(req, 4096)
	if e != nil {
		return html(e.Status, h.Pages.Login("The request was too large.")), nil
	}
	form, err := url.ParseQuery(string(data))
	if err != nil || !h.Guard.KeyMatches(form.Get("key")) {
		if h.Log != nil {
			h.Log.Warn("dashboard login refused", "source_ip", req.RequestContext.HTTP.SourceIP)
		}
		return html(http.StatusUnauthorized, h.Pages.Login("That key is not the admin key.")), nil
	}
	r := redirect("/dashboard")
	r.Cookies = []string{h.Guard.SessionCookie(!loopback(req))}
	return r, nil
}

// DashboardLogout handles POST /dashboard/logout.
func (h *StatusHandlers) DashboardLogout(_ context.Context, _ Request) (Response, error) {
	r := redirect("/dashboard/login")
	r.Cookies = []string{ClearCookie()}
	return r, nil
}

// loopback reports a plain-HTTP request to this machine (kcguard serve),
// where a Secure cookie would not be sent back.
func loopback(req Request) bool {
	host := Header(req, "host")
	if i := strings.LastIndex(host, ":"); i > 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return host == "127.0.0.1" || host == "localhost" || host == "[::1]"
}

// Report handles GET /reports/{kind}?package=P&since=D (D a duration such
// as 24h or 7d, or an RFC 3339 time; default 24h).
func (h *StatusHandlers) Report(ctx context.Context, req Request) (Response, error) {
	if e := h.Guard.CheckRead(req); e != nil {
		return Fail(e), nil
	}
	kind := req.PathParameters["kind"]
	if !slices.Contains(h.ReportKinds, kind) {
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeNotFound,
			Message: "no such report; kinds: " + strings.Join(h.ReportKinds, ", ")}), nil
	}
	pkg := req.QueryStringParameters["package"]
	if e := checkText("package", &pkg, MaxPackageLen); e != nil {
		return Fail(e), nil
	}
	if !slices.Contains(h.Packages, pkg) {
		return Fail(&Error{Status: http.StatusNotFound, Code: CodeUnknownPackage, Message: "unknown package"}), nil
	}
	now := h.now()
	since, err := status.ParseSince(req.QueryStringParameters["since"], now)
	if err != nil {
		return Fail(BadRequest("%s", err.Error())), nil
	}
	var b strings.Builder
	if err := h.Reports.Write(ctx, &b, kind, pkg, since, now); err != nil {
		if h.Log != nil {
			h.Log.ErrorContext(ctx, "report failed", "kind", kind, "package", pkg, "err", err)
		}
		return Fail(&Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "report could not be built"}), nil
	}
	return html(http.StatusOK, []byte(b.String())), nil
}
