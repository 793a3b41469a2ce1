// Function sessions serves the session routes (list, invalidate, logout,
// logout-all) and their /admin counterparts.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("sessions", (*platform.Runtime).SessionsFunction)
}
