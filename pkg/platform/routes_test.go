package platform_test

import (
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
