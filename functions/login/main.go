// Function login serves POST /login: local check first, Keycloak second.
// Each answer is counted by outcome (auth mode, failure, lockout) as an EMF
// metric on stdout.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("login", (*platform.Runtime).LoginFunction)
}
