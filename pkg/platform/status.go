package platform

import (
	"github.com/kcguard/kcguard/pkg/dashboard"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/status"
)

// RunLog records and reads the last run of each scheduled job.
func (rt *Runtime) RunLog() *status.RunLog {
	return &status.RunLog{DB: rt.DynamoDB, Table: rt.Config.Tables.Breaker}
}

// StatusReader builds the operators' status Snapshot (GET /status,
// `kcguard status`, the dashboard and the reports).
func (rt *Runtime) StatusReader() *status.Reader {
	realms := map[string]string{}
	for name, p := range rt.Config.Keycloak.Packages {
		realms[name] = p.Realm
	}
	r := &status.Reader{
		Breaker: rt.Breaker, Probe: &status.RealmProbe{BaseURL: rt.Config.Keycloak.URL, Realms: realms, Timeout: rt.Config.Keycloak.Timeout},
		Queue: rt.Queue, DLQ: rt.DLQ, Users: rt.Users, Sessions: rt.SessionReporter(),
		Tokens: rt.Tokens, Runs: rt.RunLog(), Packages: rt.Config.PackageNames(),
		RefreshWindow: rt.Config.Cleanup.RefreshWindow,
	}
	if rt.Journal != nil { // a nil *journal.Dynamo must stay a nil interface
		r.Journal = rt.Journal
	}
	return r
}

// StatusHandlers serve /status, the dashboard and the reports.
func (rt *Runtime) StatusHandlers() *httpapi.StatusHandlers {
	return &httpapi.StatusHandlers{Reader: rt.StatusReader(), Pages: dashboard.Pages{},
		Packages: rt.Config.PackageNames(), Guard: httpapi.AdminGuard{Key: rt.Config.API.AdminKey}, Log: rt.Log}
}

// StatusRoutes are served by functions/status. In AWS, /status and
// /reports/{kind} use IAM authorisation; the dashboard routes authenticate
// in the handler (admin key once, then a cookie), since a browser cannot
// sign requests.
func (rt *Runtime) StatusRoutes() []httpapi.Route {
	s := rt.StatusHandlers()
	return []httpapi.Route{
		{Method: "GET", Path: "/status", Handler: s.Status},
		{Method: "GET", Path: "/dashboard", Handler: s.Dashboard},
		{Method: "GET", Path: "/dashboard/status", Handler: s.Status},
		{Method: "POST", Path: "/dashboard/login", Handler: s.DashboardLogin},
		{Method: "POST", Path: "/dashboard/logout", Handler: s.DashboardLogout},
	}
}
