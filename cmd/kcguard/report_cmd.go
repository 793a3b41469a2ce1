package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/report"
	"github.com/kcguard/kcguard/pkg/status"
)

func newReportCmd(e *env) *cobra.Command {
	var pkg, out, sinceFlag string
	cmd := &cobra.Command{
		Use:   "report summary|detailed|sync-queue --package P [--out FILE] [--since D]",
		Short: "Write an HTML report (print-friendly) of a package",
		Long: `report writes the same HTML GET /reports/{kind} serves:

  summary     status now, logins in the period by outcome and auth mode, by day
  detailed    the summary, plus logins by hour, users with failed or locked
              logins, and every event of the period (newest first, up to 500)
  sync-queue  queue and DLQ depth, journal counts, pending and failed jobs,
              users waiting for Keycloak

--since is a duration back from now (24h, 90m, 7d) or an RFC 3339 time; default 24h.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: report.Kinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			if !slices.Contains(report.Kinds, kind) {
				return usageError(fmt.Errorf("unknown report %q; kinds: %s", kind, strings.Join(report.Kinds, ", ")))
			}
			now := time.Now()
			since, err := status.ParseSince(sinceFlag, now)
			if err != nil {
				return usageError(err)
			}
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if !slices.Contains(rt.Config.PackageNames(), pkg) {
				return usageError(fmt.Errorf("unknown package %q; packages: %s", pkg, strings.Join(rt.Config.PackageNames(), ", ")))
			}
			var w io.Writer = e.out
			if out != "" {
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := rt.Reporter().Write(cmd.Context(), w, kind, pkg, since, now); err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pkg, "package", "", "the package (required)")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	cmd.Flags().StringVar(&sinceFlag, "since", "", "period start: 24h, 7d, or an RFC 3339 time (default 24h)")
	_ = cmd.MarkFlagRequired("package")
	return cmd
}
