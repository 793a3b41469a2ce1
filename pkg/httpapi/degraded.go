package httpapi

import (
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/sessions"
)

// DegradedRoutes are routes refused to sessions Keycloak did not confirm
// (auth_mode local or cached: "logged on with cached account
// information"), e.g. payments while Keycloak is down. Keys are API
// Gateway route keys, "POST /payments"; a catch-all ($default) route is
// matched by the request's method and path instead.
//
// With the authorizer's result cache on, add $context.routeKey to the
// identity sources: the answer now depends on the route, and a cached
// "yes" for GET /orders must not open POST /payments.
type DegradedRoutes map[string]bool

// NewDegradedRoutes builds the set from authorizer.deny_degraded_routes.
func NewDegradedRoutes(keys []string) DegradedRoutes {
	d := DegradedRoutes{}
	for _, k := range keys {
		d[normalizeRouteKey(k)] = true
	}
	return d
}

func normalizeRouteKey(k string) string {
	method, path, _ := strings.Cut(strings.TrimSpace(k), " ")
	return strings.ToUpper(method) + " " + strings.TrimSpace(path)
}

// Denies reports whether rec may not use the route of req.
func (d DegradedRoutes) Denies(req events.APIGatewayV2CustomAuthorizerV2Request, rec sessions.Record) bool {
	if len(d) == 0 || rec.AuthMode == sessions.AuthKeycloak {
		return false
	}
	key := req.RouteKey
	if key == "" {
		key = req.RequestContext.RouteKey
	}
	if key != "" && key != "$default" && d[normalizeRouteKey(key)] {
		return true
	}
	return d[normalizeRouteKey(req.RequestContext.HTTP.Method+" "+req.RawPath)]
}
