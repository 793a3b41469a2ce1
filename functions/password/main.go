// Function password serves POST /password: local change first, then sync to
// Keycloak now or through the queue.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("password", (*platform.Runtime).PasswordFunction)
}
