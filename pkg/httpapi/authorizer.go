package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/sessions"
)

// AuthorizerStore is what the authorizer needs from the session store.
type AuthorizerStore interface {
	GetByToken(ctx context.Context, token string, now time.Time) (sessions.Record, error)
}

// IdleSlider slides a session's idle expiry (sessions.Dynamo.Touch).
type IdleSlider interface {
	Touch(ctx context.Context, id string, now time.Time) (bool, error)
}

// Authorizer is an API Gateway HTTP API Lambda authorizer (payload 2.0,
// simple responses) that accepts kcguard session tokens, so the company's
// other APIs stay protected, and usable, while Keycloak is down.
//
// Cost: one GetItem per uncached call; with Slide, at most one conditional
// write a minute per session to slide its idle expiry. API Gateway can cache the
// answer per token (authorizer result TTL): every cached second is a second
// a revoked session still passes, so keep the TTL short (0–60 s) and size it
// against that revocation delay.
type Authorizer struct {
	Store AuthorizerStore
	// Slide, when set, slides the idle expiry of each session it accepts.
	// The deployed authorizer leaves it nil: it runs in front of other
	// APIs, so it may only read its session table (issue 11, finding 7),
	// and a session used only through it expires idle_timeout after its
	// last write by kcguard itself.
	Slide IdleSlider
	Now   func() time.Time
	Log   *slog.Logger
	// DenyDegraded refuses these routes to local and cached sessions.
	DenyDegraded DegradedRoutes
}

// Handle authorises one request.
func (a *Authorizer) Handle(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	deny := events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}
	token := BearerToken(authorization(req))
	if token == "" {
		return deny, nil
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	rec, err := a.Store.GetByToken(ctx, token, now)
	switch {
	case errors.Is(err, sessions.ErrNotFound), errors.Is(err, sessions.ErrExpired), errors.Is(err, sessions.ErrRevoked):
		return deny, nil
	case err != nil:
		// Unknown is not "no": answering an error makes API Gateway return
		// 500 (retryable, never cached) instead of telling a valid user
		// their session is gone.
		a.log().ErrorContext(ctx, "authorizer: session store unavailable", "err", err)
		return deny, fmt.Errorf("session store unavailable")
	}
	if a.DenyDegraded.Denies(req, rec) {
		a.log().InfoContext(ctx, "authorizer: route denied to a degraded session", "route", req.RouteKey, "auth_mode", rec.AuthMode, "session", rec.ID)
		return deny, nil
	}
	if a.Slide != nil {
		if _, err := a.Slide.Touch(ctx, rec.ID, now); err != nil {
			a.log().WarnContext(ctx, "authorizer: last-seen not updated", "session", rec.ID, "err", err)
		}
	}
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{
		IsAuthorized: true,
		Context: map[string]any{
			"username": rec.Username, "package": rec.Package, "auth_mode": string(rec.AuthMode), "session_id": rec.ID,
		},
	}, nil
}

func authorization(req events.APIGatewayV2CustomAuthorizerV2Request) string {
	for k, v := range req.Headers {
		if strings.EqualFold(k, "authorization") {
			return v
		}
	}
	return ""
}

func (a *Authorizer) log() *slog.Logger {
	if a.Log == nil {
		return slog.Default()
	}
	return a.Log
}
