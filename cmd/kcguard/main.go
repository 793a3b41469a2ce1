// Command kcguard is the operator tool: configuration checks, breaker
// control, users, sessions, sync and migration, and `serve` (the local API).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kcguard:", err)
		os.Exit(exitCode(err))
	}
}
