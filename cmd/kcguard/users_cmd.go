package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kcguard/kcguard/pkg/adoption"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

func newUsersCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage local users (the credential store that works while Keycloak is down)",
		Long: `Passwords are read from standard input (first line) or typed at a prompt,
never from flags, so they stay out of shell history and process lists.`,
	}
	var pkg, email, group string
	add := &cobra.Command{
		Use:   "add USERNAME --package P",
		Short: "Create a local user; the password is read from standard input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			acc, _, err := e.accounts(cmd.Context())
			if err != nil {
				return err
			}
			u, err := acc.Create(cmd.Context(), auth.NewAccount{Package: pkg, Username: args[0], Password: pw,
				Email: email, Group: group})
			if err != nil {
				return err
			}
			e.printf("created %s in package %s (version %d, %s)\n", u.Username, u.Package, u.Version, u.Hash.Algorithm)
			return nil
		},
	}
	add.Flags().StringVar(&email, "email", "", "e-mail address")
	add.Flags().StringVar(&group, "group", "", "group attribute (used by migrate --where)")

	setPassword := &cobra.Command{
		Use:   "set-password USERNAME --package P",
		Short: "Set a local user's password (operator reset); the password is read from standard input",
		Long: `set-password stores a new hash with version+1, so the sync queue or the
reconciliation carries it to Keycloak. Use POST /password for user changes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			acc, _, err := e.accounts(cmd.Context())
			if err != nil {
				return err
			}
			key, err := userkey.New(pkg, args[0])
			if err != nil {
				return err
			}
			u, err := acc.SetPassword(cmd.Context(), key, pw)
			if err != nil {
				return err
			}
			e.printf("password of %s set (version %d; Keycloak has version %d until the sync runs)\n",
				u.Username, u.Version, u.KeycloakSyncedVersion)
			return nil
		},
	}

	show := &cobra.Command{
		Use:   "show USERNAME --package P",
		Short: "Show a local user: versions, sync state, lockout (never the hash)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, st, err := e.accounts(cmd.Context())
			if err != nil {
				return err
			}
			key, err := userkey.New(pkg, args[0])
			if err != nil {
				return err
			}
			entry, err := st.Lookup(cmd.Context(), key, time.Now())
			if err != nil {
				return err
			}
			if !entry.Found {
				return fmt.Errorf("no user %s in package %s", key.Username, key.Package)
			}
			u := entry.User
			if e.asJSON {
				return e.printJSON(map[string]any{"username": u.Username, "package": u.Package, "enabled": u.Enabled,
					"email": u.Email, "attributes": u.Attributes, "hash_algorithm": u.Hash.Algorithm, "version": u.Version,
					"keycloak_synced_version": u.KeycloakSyncedVersion, "sync_pending": u.Unsynced(), "keycloak_id": u.KeycloakID,
					"password_changed_at": u.PasswordChangedAt, "failed_logins": entry.Lockout.FailedAttempts,
					"locked_until": entry.Lockout.LockedUntil})
			}
			e.printf("user:            %s\npackage:         %s\nenabled:         %v\nemail:           %s\n",
				u.Username, u.Package, u.Enabled, u.Email)
			e.printf("attributes:      %v\nhash:            %s\nversion:         %d\nkeycloak synced: %d",
				u.Attributes, u.Hash.Algorithm, u.Version, u.KeycloakSyncedVersion)
			if u.Unsynced() {
				e.printf(" (sync pending)")
			}
			e.printf("\nkeycloak id:     %s\npassword set:    %s\nfailed logins:   %d\n",
				u.KeycloakID, u.PasswordChangedAt.Format(time.RFC3339), entry.Lockout.FailedAttempts)
			confirmed := "never"
			if !u.KeycloakConfirmedAt.IsZero() {
				confirmed = u.KeycloakConfirmedAt.Format(time.RFC3339)
			}
			e.printf("keycloak confirmed: %s\nhash stale:      %v\nrequired actions: %v\n", confirmed, u.HashStale, u.RequiredActions)
			if u.KeycloakMustDecide() {
				e.printf("offline login:   refused until Keycloak accepts this user again (disabled, reset or actions pending)\n")
			}
			if entry.Lockout.Locked(time.Now()) {
				e.printf("locked until:    %s\n", entry.Lockout.LockedUntil.Format(time.RFC3339))
			}
			return nil
		},
	}

	seed := &cobra.Command{
		Use:   "seed REALM.json...",
		Short: "Create local users from Keycloak realm exports (local stack only; existing users are kept)",
		Long: `seed reads realm export files (local/realms/*.json), maps each realm to the
package configured for it, and creates every user that has a plaintext
password credential there, so both tiers know the seeded users. It is meant
for the local stack: real realm exports carry hashes, not passwords.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			acc, _, err := e.accounts(cmd.Context())
			if err != nil {
				return err
			}
			for _, f := range args {
				if err := e.seedRealm(cmd.Context(), acc, f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, setPassword, show} {
		c.Flags().StringVar(&pkg, "package", "", "package (tenant) of the user")
		_ = c.MarkFlagRequired("package")
	}
	cmd.AddCommand(add, setPassword, show, seed, newUsersImportCmd(e))
	return cmd
}

// accounts builds the operator's user changes and the users table they
// write (platform.Accounts).
func (e *env) accounts(ctx context.Context) (auth.Accounts, *users.Dynamo, error) {
	cfg, err := e.validated()
	if err != nil {
		return auth.Accounts{}, nil, err
	}
	awsCfg, err := e.awsConfig(ctx)
	if err != nil {
		return auth.Accounts{}, nil, err
	}
	return platform.Accounts(cfg, awsCfg)
}

// readPassword takes a password from r: from a terminal without echo (the
// prompt goes to stderr), else the first line (a pipe).
func readPassword(r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(os.Stderr, "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if len(b) == 0 {
			return "", errors.New("no password entered")
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, nil
}

func (e *env) seedRealm(ctx context.Context, acc auth.Accounts, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	exp, err := adoption.ReadExport(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pkg, ok := e.cfg.PackageOfRealm(exp.Realm)
	if !ok {
		return fmt.Errorf("%s: no package is configured for realm %q", path, exp.Realm)
	}
	for _, u := range exp.PlainPasswords() {
		_, created, err := acc.Seed(ctx, auth.NewAccount{Package: pkg, Username: u.Username, Password: u.Password, Email: u.Email})
		switch {
		case err != nil:
			return fmt.Errorf("seed %s/%s: %w", pkg, u.Username, err)
		case created:
			e.printf("• %s/%s: created\n", pkg, u.Username)
		default:
			e.printf("• %s/%s: exists\n", pkg, u.Username)
		}
	}
	return nil
}
