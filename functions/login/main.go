// Function login serves POST /login: local check first, Keycloak second.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("login", func(rt *platform.Runtime) any {
		rt.WarmLogin()
		return rt.AuthHandlers().Login
	})
}
