package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/platform"
)

// env is what every command gets: the loaded configuration, lazily the AWS
// configuration, and where to write.
type env struct {
	configPath string
	cfg        config.Config
	aws        *aws.Config
	out        io.Writer
	stderr     io.Writer // progress bars and notes that are not the command's output
	log        *slog.Logger
	// asJSON is set by --json on the status-like commands.
	asJSON bool
	checks []checkJSON
}

// errChecksFailed makes a checklist with a ✗ exit non-zero without printing
// the failures twice.
var errChecksFailed = errors.New("some checks failed")

func newRoot() *cobra.Command {
	e := &env{}
	root := &cobra.Command{
		Use:   "kcguard",
		Short: "Operate kcguard: keep people logging in when Keycloak is unreachable",
		Long: `kcguard is the operator tool for the kcguard Lambda functions.

Configuration comes from defaults, then the YAML file named by --config (or
$KCGUARD_CONFIG), then KCGUARD_* environment variables. AWS calls go where the
SDK's standard variables say (AWS_REGION, AWS_ENDPOINT_URL, ...).

Exit codes: 0 success; 1 a checklist, health check (status --check) or
migration found problems; 2 the command failed (AWS, Keycloak, configuration);
64 usage error (unknown command, bad flag or argument).

Deprecated names (still work, with a warning): list-sessions (sessions list),
logout-user (sessions logout-user), sync-now and sync sync-now (sync now),
start (serve).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			e.out, e.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			cfg, err := config.Load(e.configPath)
			if err != nil {
				return err
			}
			e.cfg = cfg
			e.log = platform.Logger(cmd.ErrOrStderr(), cfg.Log)
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "unknown shorthand flag") {
			// Session ids made before ids avoided a leading '-' still exist.
			return usageError(fmt.Errorf("%w (an argument starting with '-', such as a session id, goes after --: kcguard sessions invalidate -- -ID)", err))
		}
		return usageError(err)
	})
	root.PersistentFlags().StringVar(&e.configPath, "config", os.Getenv("KCGUARD_CONFIG"),
		"configuration file (YAML); default $KCGUARD_CONFIG")
	root.AddCommand(newConfigCmd(e), newBreakerCmd(e), newUsersCmd(e), newServeCmd(e), newSyncCmd(e), newMigrateCmd(e),
		newSessionsCmd(e), newTokensCmd(e), newCleanupCmd(e), newStatusCmd(e), newReportCmd(e),
		deprecatedAlias(e, "list-sessions", newSessionsCmd, "list"),
		deprecatedAlias(e, "logout-user", newSessionsCmd, "logout-user"),
		deprecatedAlias(e, "sync-now", newSyncCmd, "now"),
		deprecatedAlias(e, "start", newServeCmd))
	addTo(root, "users", newUsersHistoryCmd(e))
	addTo(root, "tokens", newTokensListCmd(e))
	addTo(root, "sync", newSyncPendingCmd(e), deprecatedAlias(e, "sync-now", newSyncCmd, "now"))
	addJSONFlags(e, root)
	strictTree(root)
	return root
}

// awsConfig loads the SDK configuration once per command.
func (e *env) awsConfig(ctx context.Context) (aws.Config, error) {
	if e.aws == nil {
		c, err := platform.AWS(ctx)
		if err != nil {
			return c, err
		}
		e.aws = &c
	}
	return *e.aws, nil
}

// validated returns the configuration or the full list of its problems.
func (e *env) validated() (config.Config, error) {
	if err := e.cfg.Validate(); err != nil {
		if e.configPath == "" {
			err = fmt.Errorf("%w\nno configuration file was given (--config or KCGUARD_CONFIG); "+
				"for the local stack load its environment first: set -a; . local/stack.env; set +a", err)
		}
		return e.cfg, err
	}
	return e.cfg, nil
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.out, format, args...) }
