package platform

import (
	"context"
	"net/http"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/httpapi"
)

// History is a user's audit trail, newest first (`kcguard users
// history`). Attempts on a username kcguard does not know are audited under
// its keyed pseudonym, never the typed text, so with no event under the
// name the trail is read under the pseudonym (when audit.username_hmac_key
// is set: a per-process random key cannot be matched).
func (rt *Runtime) History(ctx context.Context, pkg, username string, limit int) ([]audit.Event, error) {
	events, err := rt.Audit.ListByUser(ctx, pkg, username, limit)
	if err != nil || len(events) > 0 || rt.Config.Audit.UsernameHMACKey == "" {
		return events, err
	}
	pseudonym := audit.NewPseudonyms([]byte(rt.Config.Audit.UsernameHMACKey)).Username(pkg, username)
	return rt.Audit.ListByUser(ctx, pkg, pseudonym, limit)
}

// LocalAPI is every route of the API as one HTTP handler (`kcguard
// serve`), with the body limit API Gateway's functions apply.
func (rt *Runtime) LocalAPI() http.Handler {
	return &httpapi.Server{Routes: rt.Routes(), MaxBodyBytes: int64(rt.Config.API.MaxBodyBytes), Log: rt.Log}
}
