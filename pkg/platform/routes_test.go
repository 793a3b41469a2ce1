package platform_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Each function serves exactly the routes pkg/schema gives it (what the CDK
// app and template.yaml route to it), each with a handler. Login and
// password are one route each (LoginFunction, PasswordFunction); the
// sessions and status functions dispatch by route key.
func TestEachFunctionServesItsSchemaRoutes(t *testing.T) {
	served := map[string][]httpapi.Route{
		"login,password": platform.AuthRoutes(&httpapi.AuthHandlers{}),
		"sessions":       platform.SessionRoutes(&httpapi.SessionHandlers{}),
		"status":         platform.StatusRoutes(&httpapi.StatusHandlers{}),
	}
	var all []string
	for fns, routes := range served {
		var got, want []string
		for _, r := range routes {
			if r.Handler == nil {
				t.Errorf("%s: %s %s has no handler", fns, r.Method, r.Path)
			}
			got = append(got, r.Method+" "+r.Path)
		}
		for _, fn := range strings.Split(fns, ",") {
			for _, r := range schema.RoutesOf(fn) {
				want = append(want, r.Key())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s serves %q, pkg/schema routes %q to it", fns, got, want)
		}
		all = append(all, got...)
	}
	if len(all) != len(schema.Routes) {
		t.Errorf("the functions serve %d routes, pkg/schema has %d", len(all), len(schema.Routes))
	}
}

// The whole API fits in one http.ServeMux (`kcguard serve`): no two route
// patterns conflict, and every route is reached under its own method only.
func TestTheWholeAPIServesLocally(t *testing.T) {
	routes := slices.Concat(platform.AuthRoutes(&httpapi.AuthHandlers{}),
		platform.SessionRoutes(&httpapi.SessionHandlers{}), platform.StatusRoutes(&httpapi.StatusHandlers{}))
	srv := &httpapi.Server{Routes: routes, Log: slog.New(slog.DiscardHandler)}
	for _, r := range schema.Routes {
		path := strings.NewReplacer("{id}", "s-1", "{package}", "hc", "{username}", "alice.hc", "{kind}", "daily").Replace(r.Path)
		other := map[string]string{"GET": "PUT", "POST": "PUT", "DELETE": "PUT"}[r.Method]
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(other, path, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 405 (%s)", other, path, rec.Code, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/no/such/route", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /no/such/route: %d, want 404", rec.Code)
	}
}
