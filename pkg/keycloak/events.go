package keycloak

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/go-resty/resty/v2"
)

// The calls in this file let kcguard learn what Keycloak decided without
// waiting for a login (pkg/pull): the realm's admin events and user events,
// a page of full user representations, and the realm's event settings. The
// service account needs realm-management view-events (read) and
// manage-events (EventsConfig updates) on top of the user roles.

// AdminEvent is one Keycloak admin event on a user (resourceType USER).
type AdminEvent struct {
	ID            string
	Time          time.Time
	OperationType string // CREATE, UPDATE, DELETE, ACTION
	ResourcePath  string // "users/{id}", "users/{id}/reset-password", ...
	// ActorUserID is the user who made the change (authDetails.userId):
	// kcguard's own service account for kcguard's sync.
	ActorUserID string
	// Representation is the JSON body Keycloak recorded (admin events
	// details on); for a DELETE it carries the deleted user's username.
	Representation string
}

// UserID is the Keycloak id of the user the event is about, "" if the
// resource path is not a user's.
func (e AdminEvent) UserID() string {
	rest, ok := strings.CutPrefix(e.ResourcePath, "users/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// SubResource is what below the user the event touched ("" for the user
// itself, "reset-password", "execute-actions-email", "credentials", ...).
func (e AdminEvent) SubResource() string {
	rest, _ := strings.CutPrefix(e.ResourcePath, "users/")
	_, sub, _ := strings.Cut(rest, "/")
	return sub
}

// UserEvent is one Keycloak user event (the user acting in Keycloak:
// UPDATE_PASSWORD, RESET_PASSWORD, UPDATE_CREDENTIAL, ...).
type UserEvent struct {
	ID     string
	Time   time.Time
	Type   string
	UserID string
}

// EventQuery pages through events from From (inclusive). Max zero means 100.
type EventQuery struct {
	From  time.Time
	First int
	Max   int
	// Types filters user events (ignored for admin events).
	Types []string
}

func (q EventQuery) params() map[string]string {
	p := map[string]string{"first": strconv.Itoa(q.First), "max": strconv.Itoa(q.Max)}
	if q.Max <= 0 {
		p["max"] = "100"
	}
	if !q.From.IsZero() {
		// Keycloak 26 takes epoch milliseconds as well as yyyy-MM-dd.
		p["dateFrom"] = strconv.FormatInt(q.From.UnixMilli(), 10)
	}
	return p
}

type adminEventJSON struct {
	ID            string `json:"id"`
	Time          int64  `json:"time"`
	OperationType string `json:"operationType"`
	ResourceType  string `json:"resourceType"`
	ResourcePath  string `json:"resourcePath"`
	AuthDetails   struct {
		UserID string `json:"userId"`
	} `json:"authDetails"`
	Representation string `json:"representation"`
}

type userEventJSON struct {
	ID     string `json:"id"`
	Time   int64  `json:"time"`
	Type   string `json:"type"`
	UserID string `json:"userId"`
}

// AdminEvents returns one page of the realm's admin events on users, newest
// first (Keycloak's order).
func (c *Client) AdminEvents(ctx context.Context, pkg string, q EventQuery) ([]AdminEvent, error) {
	var raw []adminEventJSON
	_, err := c.admin(ctx, "admin events", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		p := q.params()
		p["resourceTypes"] = "USER"
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetQueryParams(p).SetResult(&raw).
			Get(c.adminURL(r.Realm, "admin-events"))
	})
	if err != nil {
		return nil, err
	}
	out := make([]AdminEvent, 0, len(raw))
	for _, e := range raw {
		out = append(out, AdminEvent{ID: e.ID, Time: time.UnixMilli(e.Time), OperationType: e.OperationType,
			ResourcePath: e.ResourcePath, ActorUserID: e.AuthDetails.UserID, Representation: e.Representation})
	}
	return out, nil
}

// UserEvents returns one page of the realm's user events of q.Types, newest
// first.
func (c *Client) UserEvents(ctx context.Context, pkg string, q EventQuery) ([]UserEvent, error) {
	var raw []userEventJSON
	_, err := c.admin(ctx, "user events", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		req := c.gc.GetRequestWithBearerAuth(ctx, tok).SetQueryParams(q.params()).SetResult(&raw)
		for _, t := range q.Types {
			req.QueryParam.Add("type", t)
		}
		return req.Get(c.adminURL(r.Realm, "events"))
	})
	if err != nil {
		return nil, err
	}
	out := make([]UserEvent, 0, len(raw))
	for _, e := range raw {
		out = append(out, UserEvent{ID: e.ID, Time: time.UnixMilli(e.Time), Type: e.Type, UserID: e.UserID})
	}
	return out, nil
}

// ListUsers returns one page of the realm's users with their full
// representation (enabled, required actions), ordered by Keycloak.
func (c *Client) ListUsers(ctx context.Context, pkg string, first, max int) ([]User, error) {
	var raw []*gocloak.User
	_, err := c.admin(ctx, "list users", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).
			SetQueryParams(map[string]string{"first": strconv.Itoa(first), "max": strconv.Itoa(max), "briefRepresentation": "false"}).
			SetResult(&raw).Get(c.adminURL(r.Realm, "users"))
	})
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(raw))
	for _, u := range raw {
		out = append(out, fromGocloak(u))
	}
	return out, nil
}

// ServiceAccountUserID is the Keycloak user id of the package's service
// account (its token's subject): admin events it caused are kcguard's own.
func (c *Client) ServiceAccountUserID(ctx context.Context, pkg string) (string, error) {
	tok, err := c.serviceToken(ctx, pkg)
	if err != nil {
		return "", err
	}
	parts := strings.Split(tok, ".")
	var claims struct {
		Sub string `json:"sub"`
	}
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(b, &claims)
		}
	}
	if claims.Sub == "" {
		return "", &Error{Op: "service account id", Package: pkg, Kind: ErrRejected,
			Reason: "service-account token has no sub claim (enable the client's basic scope)"}
	}
	return claims.Sub, nil
}

// EventsConfig is the part of a realm's event settings kcguard relies on.
type EventsConfig struct {
	EventsEnabled             bool     `json:"eventsEnabled"`
	EventsExpiration          int64    `json:"eventsExpiration,omitempty"` // seconds; 0 keeps forever
	EnabledEventTypes         []string `json:"enabledEventTypes"`
	AdminEventsEnabled        bool     `json:"adminEventsEnabled"`
	AdminEventsDetailsEnabled bool     `json:"adminEventsDetailsEnabled"`
	EventsListeners           []string `json:"eventsListeners,omitempty"`
}

// GetEventsConfig reads the realm's event settings (view-events). The admin
// events retention is a realm attribute the service account cannot read;
// pkg/pull bounds the gap it trusts events for with its own setting.
func (c *Client) GetEventsConfig(ctx context.Context, pkg string) (EventsConfig, error) {
	var cfg EventsConfig
	_, err := c.admin(ctx, "get events config", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&cfg).Get(c.adminURL(r.Realm, "events", "config"))
	})
	return cfg, err
}

// SetEventsConfig replaces the realm's event settings (manage-events).
func (c *Client) SetEventsConfig(ctx context.Context, pkg string, cfg EventsConfig) error {
	_, err := c.admin(ctx, "set events config", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetBody(cfg).Put(c.adminURL(r.Realm, "events", "config"))
	})
	return err
}
