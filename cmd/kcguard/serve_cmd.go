package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/platform"
)

func newServeCmd(e *env) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API locally (the same handlers the Lambda functions run)",
		Long: `serve turns each HTTP request into the API Gateway v2 event Lambda would
receive and calls the same handler the deployed function runs, so

  curl -XPOST localhost:3000/login -d '{"username":"alice.hc","password":"...","package":"homechoice"}'

exercises the real login flow against the local stack. Loopback only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if addr == "" {
				addr = rt.Config.API.Addr
			}
			return serve(cmd.Context(), addr, rt, e)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "", "listen address (default api.addr, 127.0.0.1:3000)")
	return cmd
}

func serve(ctx context.Context, addr string, rt *platform.Runtime, e *env) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           rt.LocalAPI(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	e.log.Info("serving the kcguard API", "addr", l.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		rt.FlushAlerts(5 * time.Second)
		return nil
	}
}
