// Function status serves the operators' read-only views: GET /status
// (JSON), the dashboard page and its login, and the HTML reports.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("status", (*platform.Runtime).StatusFunction)
}
