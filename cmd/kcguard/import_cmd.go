package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kcguard/kcguard/pkg/adoption"
)

func newUsersImportCmd(e *env) *cobra.Command {
	var files []string
	var pkg string
	cmd := &cobra.Command{
		Use:   "import --keycloak-export FILE... --package P",
		Short: "Load users with their password hashes from a Keycloak realm export (kc.sh export)",
		Long: `import loads every user of a Keycloak realm export into the package's local
store with the password hash Keycloak holds, so users can log in through
kcguard during an outage without ever having given kcguard their password.
Give the realm file (users inside) or the multi-file layout's
<realm>-users-N.json files; repeat --keycloak-export for several.

Users are marked synced (Keycloak has them), keep their Keycloak id, enabled
flag and required actions; nothing is queued. Running it again changes nothing;
a newer export updates what changed, except a password changed through kcguard
that Keycloak has not received yet, which stays.

Reported per user, never guessed: hashes kcguard cannot verify (an algorithm
other than argon2, pbkdf2-sha512, pbkdf2-sha256, e.g. a custom provider),
malformed entries, users without a password (learnt at their next Keycloak
login). Exit code 0: every user with a password was loaded; 1: some were
skipped (listed); 2: the import could not run.

On a terminal a progress bar is drawn on standard error; otherwise one JSON
line per user is written to standard output, then a summary line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.validated()
			if err != nil {
				return err
			}
			p, ok := cfg.Keycloak.Packages[pkg]
			if !ok {
				return fmt.Errorf("package %q is not configured", pkg)
			}
			_, st, err := e.accounts(cmd.Context())
			if err != nil {
				return err
			}
			skipped := 0
			for _, f := range files {
				n, err := e.importFile(cmd.Context(), cmd, &adoption.Importer{Store: st, Package: pkg}, p.Realm, f)
				if err != nil {
					return err
				}
				skipped += n
			}
			if skipped > 0 {
				// Ran to the end but found problems: exit code 1, like a
				// checklist with a ✗ (2 means the import could not run).
				return fmt.Errorf("%d users not imported: %w", skipped, errChecksFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&files, "keycloak-export", nil, "realm export file (repeatable)")
	cmd.Flags().StringVar(&pkg, "package", "", "package (tenant) to load the users into")
	_ = cmd.MarkFlagRequired("keycloak-export")
	_ = cmd.MarkFlagRequired("package")
	return cmd
}

func (e *env) importFile(ctx context.Context, cmd *cobra.Command, im *adoption.Importer, realm, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	exp, err := adoption.ReadExport(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if exp.Realm != "" && exp.Realm != realm {
		return 0, fmt.Errorf("%s is an export of realm %q, but package %s is realm %q", path, exp.Realm, im.Package, realm)
	}
	bar := newProgress(cmd.ErrOrStderr(), cmd.OutOrStdout(), "import "+path, len(exp.Users))
	im.Progress = func(_, _ int, en adoption.Entry) { bar.step(en) }
	rep, err := im.Import(ctx, exp)
	bar.finish()
	if err != nil {
		return 0, err
	}
	e.printf("%s: %d users: %d created, %d updated, %d unchanged, %d kept (kcguard change pending), %d without password, %d service accounts, %d unsupported hash, %d malformed\n",
		path, rep.Total, rep.Counts[adoption.Created], rep.Counts[adoption.Updated], rep.Counts[adoption.Unchanged],
		rep.Counts[adoption.KeptLocal], rep.Counts[adoption.NoPassword], rep.Counts[adoption.ServiceAccount],
		rep.Counts[adoption.UnsupportedHash], rep.Counts[adoption.Malformed])
	for _, en := range rep.Entries {
		if en.Outcome.Skipped() {
			e.printf("  ✗ entry %d %s: %s: %s\n", en.Index, en.Username, en.Outcome, en.Detail)
		}
	}
	return rep.Skipped(), nil
}
