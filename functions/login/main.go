// Function login serves POST /login: local check first, Keycloak second.
// Each answer is counted by outcome (auth mode, failure, lockout) as an EMF
// metric on stdout.
package main

import (
	"os"

	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("login", func(rt *platform.Runtime) any {
		rt.WarmLogin()
		return platform.CountLogins(rt.AuthHandlers().Login, os.Stdout)
	})
}
