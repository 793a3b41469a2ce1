// Function authorizer is the API Gateway HTTP API Lambda authorizer that
// accepts kcguard session tokens.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("authorizer", (*platform.Runtime).AuthorizerFunction)
}
