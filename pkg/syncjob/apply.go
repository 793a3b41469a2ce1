package syncjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/users"
)

// KeycloakAdmin is what applying jobs needs from Keycloak.
type KeycloakAdmin interface {
	FindUser(ctx context.Context, pkg, username string) (keycloak.User, error)
	CreateUser(ctx context.Context, pkg string, spec keycloak.UserSpec) (string, error)
	UpdateUser(ctx context.Context, pkg, userID string, u keycloak.UserUpdate) error
	ImportPasswordHash(ctx context.Context, pkg, userID string, h credential.Hash) error
	LogoutUser(ctx context.Context, pkg, userID string) error
}

// Users is what applying jobs needs from the local credential store.
type Users interface {
	Get(ctx context.Context, key users.Key) (users.User, error)
	MarkSynced(ctx context.Context, key users.Key, version int64) (bool, error)
	SetKeycloakID(ctx context.Context, key users.Key, id string) error
}

// Result says what applying a job did.
type Result string

const (
	Applied    Result = "applied"    // Keycloak now has the user's current version
	Superseded Result = "superseded" // Keycloak already had this version or a newer one
)

// Applier brings Keycloak to a user's local state. The password flow calls
// it directly while the breaker is closed; the sync worker calls it for
// queued jobs. Both go through this one code path.
type Applier struct {
	Keycloak KeycloakAdmin
	Users    Users
	Log      *slog.Logger
}

// Apply applies j. For credential and profile jobs it applies the user's
// CURRENT local state, which may be newer than the job: a user who changed
// their password three times during an outage costs Keycloak one write, and
// the two older jobs are then superseded. KeycloakSyncedVersion only rises
// (conditional write), so no order of retries or duplicates can roll Keycloak
// back to an older password.
func (a *Applier) Apply(ctx context.Context, j Job) (Result, error) {
	if err := j.Validate(); err != nil {
		return "", err
	}
	key, err := users.NewKey(j.Package, j.Username)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	u, err := a.Users.Get(ctx, key)
	if errors.Is(err, users.ErrNotFound) {
		// Deleted locally after the job was queued: nothing left to sync.
		return Superseded, nil
	}
	if err != nil {
		return "", fmt.Errorf("read local user: %w", err)
	}
	if j.Type == LogoutUser {
		return a.logout(ctx, u)
	}
	if j.Version <= u.KeycloakSyncedVersion {
		return Superseded, nil
	}
	hash, err := credential.ParseHash(u.Hash.SecretData, u.Hash.CredentialData)
	if err != nil {
		return "", fmt.Errorf("%w: local hash of %s: %v", ErrMalformed, key, err)
	}
	id, created, err := a.ensureUser(ctx, u, hash)
	if err != nil {
		return "", err
	}
	if !created {
		if err := a.push(ctx, j.Type, u, id, hash); errors.Is(err, keycloak.ErrNotFound) {
			// The id we remembered was deleted in Keycloak: provision anew.
			if id, err = a.create(ctx, u, hash); err != nil {
				return "", err
			}
		} else if err != nil {
			return "", err
		}
	}
	if _, err := a.Users.MarkSynced(ctx, key, u.Version); err != nil {
		return "", fmt.Errorf("mark %s synced at version %d: %w", key, u.Version, err)
	}
	a.logger().InfoContext(ctx, "synced to keycloak", "package", u.Package, "username", u.Username,
		"job", j.ID, "job_version", j.Version, "applied_version", u.Version, "keycloak_id", id)
	return Applied, nil
}

// push writes the change a job of type t stands for.
func (a *Applier) push(ctx context.Context, t Type, u users.User, id string, hash credential.Hash) error {
	if t == UpdateUser {
		enabled := u.Enabled
		upd := keycloak.UserUpdate{Enabled: &enabled}
		if u.Email != "" {
			upd.Email = &u.Email
		}
		return a.Keycloak.UpdateUser(ctx, u.Package, id, upd)
	}
	return a.Keycloak.ImportPasswordHash(ctx, u.Package, id, hash)
}

// ensureUser finds the user's Keycloak id, creating the user (with its hash,
// in the same request) when Keycloak has none; created reports the latter.
func (a *Applier) ensureUser(ctx context.Context, u users.User, hash credential.Hash) (string, bool, error) {
	if u.KeycloakID != "" {
		return u.KeycloakID, false, nil
	}
	ku, err := a.Keycloak.FindUser(ctx, u.Package, u.Username)
	switch {
	case errors.Is(err, keycloak.ErrNotFound):
		id, err := a.create(ctx, u, hash)
		return id, err == nil, err
	case err != nil:
		return "", false, err
	}
	if err := a.Users.SetKeycloakID(ctx, u.Key(), ku.ID); err != nil {
		return "", false, fmt.Errorf("remember keycloak id: %w", err)
	}
	return ku.ID, false, nil
}

// Local attributes that carry the names Keycloak's user profile asks for.
const (
	AttrFirstName = "first_name"
	AttrLastName  = "last_name"
)

func (a *Applier) create(ctx context.Context, u users.User, hash credential.Hash) (string, error) {
	// Keycloak 24+'s default user profile requires first and last name; a
	// user created without them gets VERIFY_PROFILE and every password
	// grant fails with "Account is not fully set up". Local accounts often
	// have no names, so the username stands in.
	first, last := u.Attributes[AttrFirstName], u.Attributes[AttrLastName]
	if first == "" {
		first = u.Username
	}
	if last == "" {
		last = u.Username
	}
	id, err := a.Keycloak.CreateUser(ctx, u.Package, keycloak.UserSpec{
		Username: u.Username, Email: u.Email, Disabled: !u.Enabled, EmailVerified: u.Email != "", Password: hash,
		FirstName: first, LastName: last,
	})
	if err != nil {
		return "", err
	}
	if err := a.Users.SetKeycloakID(ctx, u.Key(), id); err != nil {
		return "", fmt.Errorf("remember keycloak id: %w", err)
	}
	return id, nil
}

func (a *Applier) logout(ctx context.Context, u users.User) (Result, error) {
	id := u.KeycloakID
	if id == "" {
		ku, err := a.Keycloak.FindUser(ctx, u.Package, u.Username)
		if errors.Is(err, keycloak.ErrNotFound) {
			return Superseded, nil // no Keycloak user, no Keycloak sessions
		}
		if err != nil {
			return "", err
		}
		id = ku.ID
	}
	if err := a.Keycloak.LogoutUser(ctx, u.Package, id); err != nil && !errors.Is(err, keycloak.ErrNotFound) {
		return "", err
	}
	return Applied, nil
}

func (a *Applier) logger() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}
