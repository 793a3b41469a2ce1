package provision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/pull"
)

// EventsAdmin reads and changes a realm's event settings (*keycloak.Client).
type EventsAdmin interface {
	GetEventsConfig(ctx context.Context, pkg string) (keycloak.EventsConfig, error)
	SetEventsConfig(ctx context.Context, pkg string, cfg keycloak.EventsConfig) error
}

// eventsProblems lists what `sync pull` needs from a realm's event settings
// and is missing: admin events with their details (disable, delete, admin
// resets, required actions) and user events of the password-changing types.
func eventsProblems(ec keycloak.EventsConfig, maxGap time.Duration) []string {
	var p []string
	if !ec.AdminEventsEnabled {
		p = append(p, "admin events off")
	}
	if !ec.AdminEventsDetailsEnabled {
		p = append(p, "admin event details off")
	}
	if !ec.EventsEnabled {
		p = append(p, "user events off")
	}
	if missing := missingTypes(ec.EnabledEventTypes); len(missing) > 0 {
		p = append(p, "user event types missing: "+strings.Join(missing, ", "))
	}
	if exp := time.Duration(ec.EventsExpiration) * time.Second; exp > 0 && exp < maxGap {
		p = append(p, fmt.Sprintf("user events expire after %s, below pull.max_gap %s", exp, maxGap))
	}
	return p
}

// missingTypes: Keycloak treats an empty list as every type.
func missingTypes(enabled []string) []string {
	if len(enabled) == 0 {
		return nil
	}
	var out []string
	for _, t := range pull.UserEventTypes {
		if !slices.Contains(enabled, t) {
			out = append(out, t)
		}
	}
	return out
}

// CheckEvents reports, per package, whether the realm records the events
// `sync pull` reads.
// maxGap is pull.max_gap, which the recorded events must outlive.
func CheckEvents(ctx context.Context, kc EventsAdmin, realms map[string]keycloak.Realm, maxGap time.Duration) []Check {
	var checks []Check
	for _, name := range slices.Sorted(maps.Keys(realms)) {
		c := Check{Name: fmt.Sprintf("package %s: realm %s events for sync pull", name, realms[name].Realm)}
		ec, err := kc.GetEventsConfig(ctx, name)
		switch {
		case errors.Is(err, keycloak.ErrRejected):
			c.Detail = "cannot read the event settings: give the service account realm-management view-events (and manage-events for config fix): " + err.Error()
		case err != nil:
			c.Detail = err.Error()
		default:
			if p := eventsProblems(ec, maxGap); len(p) > 0 {
				c.Detail = strings.Join(p, "; ") + " (config fix turns them on); until then every pull compares all users"
			} else {
				c.OK, c.Detail = true, "admin events with details and password events on"
			}
		}
		checks = append(checks, c)
	}
	return checks
}

// FixEvents turns on what CheckEvents finds off, keeping every other
// setting (listeners, retention, the other event types) as it is.
func FixEvents(ctx context.Context, kc EventsAdmin, pkg string) (string, error) {
	ec, err := kc.GetEventsConfig(ctx, pkg)
	if err != nil {
		return "", fmt.Errorf("read events config of %s: %w", pkg, err)
	}
	if len(eventsProblems(ec, 0)) == 0 {
		return "already on", nil
	}
	ec.EventsEnabled, ec.AdminEventsEnabled, ec.AdminEventsDetailsEnabled = true, true, true
	ec.EnabledEventTypes = append(ec.EnabledEventTypes, missingTypes(ec.EnabledEventTypes)...)
	if err := kc.SetEventsConfig(ctx, pkg, ec); err != nil {
		return "", fmt.Errorf("turn on events of %s (the service account needs manage-events): %w", pkg, err)
	}
	return "turned on", nil
}
