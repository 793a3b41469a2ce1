package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kcguard/kcguard/pkg/credential"
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
			st, hasher, err := e.userStore(cmd.Context())
			if err != nil {
				return err
			}
			u, err := createUser(cmd.Context(), st, hasher, e.policy(), pkg, args[0], pw, email, group)
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
			st, hasher, err := e.userStore(cmd.Context())
			if err != nil {
				return err
			}
			if err := e.policy().Check(args[0], pw); err != nil {
				return err
			}
			key, err := userkey.New(pkg, args[0])
			if err != nil {
				return err
			}
			u, err := st.Get(cmd.Context(), key)
			if err != nil {
				return err
			}
			h, err := hasher.Hash(pw)
			if err != nil {
				return err
			}
			u, err = st.UpdatePassword(cmd.Context(), key, u.Version, users.NewHash(h), time.Now())
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
			st, _, err := e.userStore(cmd.Context())
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
			st, hasher, err := e.userStore(cmd.Context())
			if err != nil {
				return err
			}
			for _, f := range args {
				if err := e.seedRealm(cmd.Context(), st, hasher, f); err != nil {
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

func (e *env) userStore(ctx context.Context) (*users.Dynamo, *credential.Hasher, error) {
	cfg, err := e.validated()
	if err != nil {
		return nil, nil, err
	}
	awsCfg, err := e.awsConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	hasher, err := platform.Hasher(cfg)
	if err != nil {
		return nil, nil, err
	}
	return users.NewDynamo(dynamodb.NewFromConfig(awsCfg), cfg.Tables.Users), hasher, nil
}

func (e *env) policy() credential.Policy {
	return credential.Policy{MinLength: e.cfg.Password.MinLength}
}

func createUser(ctx context.Context, st users.Store, hasher *credential.Hasher, policy credential.Policy,
	pkg, username, password, email, group string) (users.User, error) {
	if err := policy.Check(username, password); err != nil {
		return users.User{}, err
	}
	h, err := hasher.Hash(password)
	if err != nil {
		return users.User{}, err
	}
	u := users.User{Package: pkg, Username: username, Email: email, Enabled: true, Hash: users.NewHash(h)}
	if group != "" {
		u.Attributes = map[string]string{"group": group}
	}
	return st.Create(ctx, u, time.Now())
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

type realmExport struct {
	Realm string `json:"realm"`
	Users []struct {
		Username    string `json:"username"`
		Email       string `json:"email"`
		ServiceAcct string `json:"serviceAccountClientId"`
		Credentials []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"credentials"`
	} `json:"users"`
}

func (e *env) seedRealm(ctx context.Context, st users.Store, hasher *credential.Hasher, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r realmExport
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	pkg := ""
	for _, name := range e.cfg.PackageNames() {
		if e.cfg.Keycloak.Packages[name].Realm == r.Realm {
			pkg = name
		}
	}
	if pkg == "" {
		return fmt.Errorf("%s: no package is configured for realm %q", path, r.Realm)
	}
	for _, u := range r.Users {
		if u.ServiceAcct != "" {
			continue
		}
		for _, c := range u.Credentials {
			if c.Type != "password" || c.Value == "" {
				continue
			}
			// Seeded passwords predate our policy; store them as Keycloak has them.
			created, err := createUser(ctx, st, hasher, credential.Policy{MinLength: 1}, pkg, u.Username, c.Value, u.Email, "")
			switch {
			case errors.Is(err, users.ErrAlreadyExists):
				e.printf("• %s/%s: exists\n", pkg, u.Username)
				continue
			case err != nil:
				return fmt.Errorf("seed %s/%s: %w", pkg, u.Username, err)
			}
			// The realm export is what Keycloak holds: nothing to sync.
			if _, err := st.MarkSynced(ctx, created.Key(), created.Version); err != nil {
				return fmt.Errorf("seed %s/%s: %w", pkg, u.Username, err)
			}
			e.printf("• %s/%s: created\n", pkg, u.Username)
		}
	}
	return nil
}
