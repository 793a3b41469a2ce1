package schema

// Route is one route of the HTTP API and the Lambda function that serves
// it. pkg/platform binds a handler to each, the CDK app (infra/) builds
// them and template.yaml is checked against them (infra's parity test).
type Route struct {
	Method string
	// Path may hold {name} segments (API Gateway's and http.ServeMux's syntax).
	Path string
	// Function is the folder under functions/ that serves the route.
	Function string
	// IAM routes are for operators: API Gateway lets only SigV4-signed
	// requests through.
	IAM bool
}

// Key is the route key, as API Gateway puts it in the event: "DELETE /sessions/{id}".
func (r Route) Key() string { return r.Method + " " + r.Path }

// The routes of the HTTP API.
var (
	Login          = Route{Method: "POST", Path: "/login", Function: "login"}
	ChangePassword = Route{Method: "POST", Path: "/password", Function: "password"}

	ListSessions       = Route{Method: "GET", Path: "/sessions", Function: "sessions"}
	DeleteSession      = Route{Method: "DELETE", Path: "/sessions/{id}", Function: "sessions"}
	Logout             = Route{Method: "POST", Path: "/logout", Function: "sessions"}
	LogoutAll          = Route{Method: "POST", Path: "/logout-all", Function: "sessions"}
	AdminListSessions  = Route{Method: "GET", Path: "/admin/sessions", Function: "sessions", IAM: true}
	AdminDeleteSession = Route{Method: "DELETE", Path: "/admin/sessions/{id}", Function: "sessions", IAM: true}
	AdminLogoutUser    = Route{Method: "POST", Path: "/admin/users/{package}/{username}/logout", Function: "sessions", IAM: true}
	AdminMetrics       = Route{Method: "GET", Path: "/admin/metrics", Function: "sessions", IAM: true}

	Status             = Route{Method: "GET", Path: "/status", Function: "status", IAM: true}
	Dashboard          = Route{Method: "GET", Path: "/dashboard", Function: "status", IAM: true}
	DashboardStatus    = Route{Method: "GET", Path: "/dashboard/status", Function: "status", IAM: true}
	DashboardLoginForm = Route{Method: "GET", Path: "/dashboard/login", Function: "status", IAM: true}
	DashboardLogin     = Route{Method: "POST", Path: "/dashboard/login", Function: "status", IAM: true}
	DashboardLogout    = Route{Method: "POST", Path: "/dashboard/logout", Function: "status", IAM: true}
	Report             = Route{Method: "GET", Path: "/reports/{kind}", Function: "status", IAM: true}

	// Routes is the whole HTTP API, function by function.
	Routes = []Route{Login, ChangePassword,
		ListSessions, DeleteSession, Logout, LogoutAll, AdminListSessions, AdminDeleteSession, AdminLogoutUser, AdminMetrics,
		Status, Dashboard, DashboardStatus, DashboardLoginForm, DashboardLogin, DashboardLogout, Report}
)

// RoutesOf are the routes function serves, in the order of Routes.
func RoutesOf(function string) []Route {
	var out []Route
	for _, r := range Routes {
		if r.Function == function {
			out = append(out, r)
		}
	}
	return out
}
