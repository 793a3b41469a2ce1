package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/migrate"
	"github.com/kcguard/kcguard/pkg/platform"
)

// errMigrationFailures makes `kcguard migrate` exit non-zero when users failed.
var errMigrationFailures = fmt.Errorf("%w: some users could not be provisioned", errChecksFailed)

const whereHelp = `--where selects users; conditions are joined by "," (or AND) and must all hold:
  group~ADMIN              attribute contains ADMIN (case-insensitive)
  group=ADMIN              attribute equals ADMIN (case-insensitive)
  group!=ADMIN             attribute does not equal ADMIN
  enabled=true             enabled users only (enabled=false: disabled only)
  username~x, email~x      also work on the username and e-mail
The seed's SQL form is accepted and mapped:
  "UserGroup LIKE '%ADMIN%'"  → group~ADMIN ('ADMIN%' = starts with, '%ADMIN' = ends with)
  "UserGroup = 'ADMIN' AND Enabled = 'true'"
Columns map UserGroup → group, UserName → username, Email → email; any other
name is a user attribute (lower-cased).`

func newMigrateCmd(e *env) *cobra.Command {
	var (
		dryRun bool
		where  string
		set    migrate.Settings
	)
	cmd := &cobra.Command{
		Use:   "migrate PACKAGE [--dry-run] [--where EXPR]",
		Short: "Provision a package's local users into Keycloak (hashes imported, idempotent)",
		Long: `migrate creates every matching local user in the package's Keycloak realm,
importing its password hash (no plaintext), or updates the user if Keycloak has
it already (never a duplicate), and marks it synced: a second run finds nothing
to do. It reads users in pages, provisions them with bounded concurrency and a
rate limit, shows a progress bar on a terminal and prints JSON lines (one per
user, then a summary) otherwise. It exits non-zero if any user failed.

` + whereHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := migrate.ParseWhere(where)
			if err != nil {
				return err
			}
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			if _, ok := rt.Config.Keycloak.Packages[args[0]]; !ok {
				return fmt.Errorf("unknown package %q (configured: %s)", args[0], strings.Join(rt.Config.PackageNames(), ", "))
			}
			set.DryRun = dryRun
			return e.migrate(cmd.Context(), rt, args[0], w, set)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be created or updated; change nothing")
	cmd.Flags().StringVar(&where, "where", "", "select users (see below)")
	cmd.Flags().IntVar(&set.Concurrency, "concurrency", migrate.DefaultConcurrency, "parallel Keycloak calls")
	cmd.Flags().Float64Var(&set.Rate, "rate", 20, "users per second at most (0: unlimited)")
	cmd.Flags().IntVar(&set.PageSize, "batch", migrate.DefaultPageSize, "users read per page")

	var statusWhere string
	status := &cobra.Command{
		Use:   "status PACKAGE [--where EXPR]",
		Short: "Show how many of a package's users Keycloak has",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := migrate.ParseWhere(statusWhere)
			if err != nil {
				return err
			}
			rt, err := e.runtime(cmd.Context())
			if err != nil {
				return err
			}
			m := &migrate.Migrator{Users: rt.Users}
			st, err := m.StatusOf(cmd.Context(), args[0], w)
			if err != nil {
				return err
			}
			if e.asJSON {
				return e.printJSON(map[string]any{"package": st.Package, "where": st.Where, "users": st.Users,
					"synced": st.Synced, "pending": st.Pending, "unmigrated": st.Unmigrated})
			}
			e.printf("package %s (%s): %d local users, %d synced to Keycloak, %d pending, %d never provisioned\n",
				st.Package, st.Where, st.Users, st.Synced, st.Pending, st.Unmigrated)
			return nil
		},
	}
	status.Flags().StringVar(&statusWhere, "where", "", "select users (see kcguard migrate --help)")
	cmd.AddCommand(status)
	return cmd
}

func (e *env) migrate(ctx context.Context, rt *platform.Runtime, pkg string, w migrate.Where, set migrate.Settings) error {
	m := &migrate.Migrator{Users: rt.Users, Applier: rt.Applier, Keycloak: rt.Keycloak, Settings: set}
	total, err := m.Count(ctx, pkg, w)
	if err != nil {
		return err
	}
	bar := newProgress(e.stderr, e.out, "migrate "+pkg, total)
	m.OnUser = func(r migrate.UserResult, _ migrate.Summary) {
		if r.Result == migrate.Failed && bar.onTerminal() {
			bar.interrupt()
			fmt.Fprintf(e.stderr, "✗ %s: %s\n", r.Username, r.Reason)
		}
		bar.step(r)
	}
	sum, err := m.Run(ctx, pkg, w)
	bar.finish()
	if bar.onTerminal() {
		verb := "provisioned"
		if sum.DryRun {
			verb = "would provision (dry run)"
		}
		e.printf("%s %s users of %s (%s) in %s: created %d, updated %d, skipped %d, failed %d\n", verb,
			fmt.Sprint(sum.Total), pkg, sum.Where, sum.Duration.Round(time.Millisecond), sum.Created, sum.Updated, sum.Skipped, sum.Failed)
	} else {
		_ = json.NewEncoder(e.out).Encode(struct {
			Summary migrate.Summary `json:"summary"`
		}{sum})
	}
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return errMigrationFailures
	}
	return nil
}
