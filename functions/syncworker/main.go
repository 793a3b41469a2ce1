// Function syncworker consumes the SQS FIFO sync queue and replays queued
// changes into Keycloak, reporting partial batch failures.
package main

import (
	"github.com/kcguard/kcguard/pkg/platform"
)

func main() {
	platform.Start("syncworker", (*platform.Runtime).SyncWorkerFunction)
}
