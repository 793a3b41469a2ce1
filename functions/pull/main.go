// Function pull is the scheduled Keycloak pull (EventBridge, every
// pull.schedule_minutes, 1 by default): Keycloak's admin and user events
// since the last run (or a page-by-page compare when they cannot be
// trusted) are applied to the local store, so a disable, deletion, password
// reset or required action decided in Keycloak holds during the next outage.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("pull", (*platform.Runtime).PullHandler)
}
