// Function cleanup is the scheduled maintenance run (EventBridge, every
// cleanup.schedule_minutes): refresh expiring cached tokens, purge expired
// tokens and sessions, re-queue unsynced users, publish metrics as EMF.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("cleanup", (*platform.Runtime).CleanupHandler)
}
