package syncjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Result says what applying a job did.
type Result string

const (
	Applied    Result = "applied"    // Keycloak now has the user's current version
	Superseded Result = "superseded" // Keycloak already had this version or a newer one
)

// ConflictPolicy decides what happens when Keycloak's password credential
// is newer than the local change being synced (someone changed it in
// Keycloak directly).
type ConflictPolicy string

const (
	// LocalWins imports the local hash anyway: the local store is the
	// source of truth (the default).
	LocalWins ConflictPolicy = "local_wins"
	// KeycloakWins leaves Keycloak's password alone, marks the version
	// synced so it is not retried, and records the drift.
	KeycloakWins ConflictPolicy = "keycloak_wins"
)

// Applier brings Keycloak to a user's local state. The password flow calls
// it directly while the breaker is closed; the sync worker calls it for
// queued jobs. Both go through this one code path.
type Applier struct {
	Keycloak KeycloakAdmin
	Users    Users
	Log      *slog.Logger
	// Conflicts is the conflict policy; empty means LocalWins.
	Conflicts ConflictPolicy
}

// Report says in detail what applying a job did.
type Report struct {
	Result Result
	// Version is the local version Keycloak has after the call: the one
	// applied, or the synced one found (0 when the user is gone).
	Version int64
	// Created reports that the Keycloak user was created by this call.
	Created bool
	// Conflict is the policy applied when Keycloak's password was newer
	// than the local change, else empty.
	Conflict ConflictPolicy
	// Reason explains a superseded job.
	Reason string
}

// Apply applies j. For credential and profile jobs it applies the user's
// CURRENT local state, which may be newer than the job: a user who changed
// their password three times during an outage costs Keycloak one write, and
// the two older jobs are then superseded. KeycloakSyncedVersion only rises
// (conditional write), so no order of retries or duplicates can roll Keycloak
// back to an older password.
func (a *Applier) Apply(ctx context.Context, j Job) (Result, error) {
	r, err := a.Sync(ctx, j)
	return r.Result, err
}

// Sync is Apply with the details the journal, the worker and migration need.
func (a *Applier) Sync(ctx context.Context, j Job) (Report, error) {
	if err := j.Validate(); err != nil {
		return Report{}, err
	}
	key, err := userkey.New(j.Package, j.Username)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	u, err := a.Users.Get(ctx, key)
	if errors.Is(err, users.ErrNotFound) {
		// Deleted locally after the job was queued: nothing left to sync.
		return Report{Result: Superseded, Reason: "user deleted locally"}, nil
	}
	if err != nil {
		return Report{}, fmt.Errorf("read local user: %w", err)
	}
	if j.Type == LogoutUser {
		res, err := a.logout(ctx, u)
		return Report{Result: res}, err
	}
	if j.Version <= u.KeycloakSyncedVersion {
		rep := Report{Result: Superseded, Version: u.KeycloakSyncedVersion,
			Reason: fmt.Sprintf("keycloak already has version %d", u.KeycloakSyncedVersion)}
		if j.Version != u.Version {
			// A newer change follows: its job ends the sessions, and ending
			// them here too could end a session the new password just made.
			return rep, nil
		}
		return a.endSessions(ctx, j, u, rep)
	}
	hash, err := u.Hash.Verifier()
	if err != nil {
		return Report{}, fmt.Errorf("%w: local hash of %s: %v", ErrMalformed, key, err)
	}
	id, created, err := a.ensureUser(ctx, u, hash)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Result: Applied, Version: u.Version, Created: created}
	if !created {
		conflict, err := a.conflict(ctx, j.Type, u, id)
		if err != nil {
			return Report{}, err
		}
		rep.Conflict = conflict
		if conflict == KeycloakWins {
			return a.keepKeycloak(ctx, j, u, rep)
		}
		if err := a.push(ctx, j.Type, u, id, hash); errors.Is(err, keycloak.ErrNotFound) {
			// The id we remembered was deleted in Keycloak: provision anew.
			if id, err = a.create(ctx, u, hash); err != nil {
				return Report{}, err
			}
			rep.Created = true
		} else if err != nil {
			return Report{}, err
		}
	}
	if u, err = a.settle(ctx, j.Type, u, id); err != nil {
		return Report{}, err
	}
	rep.Version = u.Version
	if _, err := a.Users.MarkSynced(ctx, key, u.Version); err != nil {
		return Report{}, fmt.Errorf("mark %s synced at version %d: %w", key, u.Version, err)
	}
	a.logger().InfoContext(ctx, "synced to keycloak", "package", u.Package, "username", u.Username,
		"job", j.ID, "job_version", j.Version, "applied_version", u.Version, "keycloak_id", id,
		"created", rep.Created, "conflict", string(rep.Conflict))
	return a.endSessions(ctx, j, u, rep)
}

// endSessions logs the user out of Keycloak for a job that asks it, after
// the password part is settled: the job that applied the password, or the
// newest change's job when an earlier job (say a drift re-sync) applied
// it. A failure fails the job: its retry finds the password superseded and
// logs out again (logging out is idempotent).
func (a *Applier) endSessions(ctx context.Context, j Job, u users.User, rep Report) (Report, error) {
	if !j.EndSessions {
		return rep, nil
	}
	if _, err := a.logout(ctx, u); err != nil {
		return Report{}, fmt.Errorf("end keycloak sessions of %s: %w", u.Key(), err)
	}
	return rep, nil
}

// maxSettle bounds the re-imports of one Sync while the user keeps
// changing; past it the job fails and is retried later.
const maxSettle = 3

// ErrStillChanging: the user's local version kept moving under a sync.
var ErrStillChanging = errors.New("user kept changing during the sync")

// settle makes sure the import of u is not older than the user's current
// local version before it is marked synced (issue 11, finding 2). Two syncs
// of one user may overlap (a direct sync during a password change, a queued
// job, a retry, a redrive): the older one reads v2, the newer reads v3 and
// imports it, then the older import lands last and Keycloak holds v2. So
// after importing, read the user again: only a read made after this sync's
// last import that still shows the imported version lets it be marked
// synced. Otherwise the newer state is imported too, and checked again. A
// sync whose import landed early is harmless: any sync that started later
// imports after it.
func (a *Applier) settle(ctx context.Context, t Type, u users.User, id string) (users.User, error) {
	if t != SetPassword && t != ProvisionUser {
		return u, nil
	}
	for i := 0; ; i++ {
		cur, err := a.Users.Get(ctx, u.Key())
		if errors.Is(err, users.ErrNotFound) {
			return u, nil // deleted meanwhile: MarkSynced finds nothing to mark
		}
		if err != nil {
			return u, fmt.Errorf("re-read %s after import: %w", u.Key(), err)
		}
		if cur.Version == u.Version {
			return u, nil
		}
		if i == maxSettle {
			return u, fmt.Errorf("%w: %s at version %d after %d imports", ErrStillChanging, u.Key(), cur.Version, i+1)
		}
		hash, err := cur.Hash.Verifier()
		if err != nil {
			return u, fmt.Errorf("%w: local hash of %s: %v", ErrMalformed, u.Key(), err)
		}
		a.logger().InfoContext(ctx, "user changed during sync; importing the newer version", "event", "sync_resettle",
			"package", u.Package, "username", u.Username, "imported_version", u.Version, "current_version", cur.Version)
		if err := a.Keycloak.ImportPasswordHash(ctx, cur.Package, id, hash); err != nil {
			return u, err
		}
		u = cur
	}
}

// conflict reports which policy applies when Keycloak's password credential
// is newer than the local password change about to be pushed, or "".
//
// The local change time is PasswordChangedAt of the state being applied
// (the newest local change, which may be newer than the job). A re-push of
// a hash kcguard itself imported after that time also looks newer; under
// local_wins that costs one redundant write, under keycloak_wins nothing,
// as Keycloak then already has the local hash.
func (a *Applier) conflict(ctx context.Context, t Type, u users.User, id string) (ConflictPolicy, error) {
	if t != SetPassword && t != ProvisionUser {
		return "", nil
	}
	changed := u.PasswordChangedAt
	if changed.IsZero() {
		return "", nil
	}
	kcAt, err := a.Keycloak.PasswordCredentialCreatedAt(ctx, u.Package, id)
	switch {
	case errors.Is(err, keycloak.ErrNotFound):
		return "", nil // no password in Keycloak (or no user: push recreates it)
	case err != nil:
		return "", err
	case !kcAt.After(changed):
		return "", nil
	}
	policy := a.Conflicts
	if policy == "" {
		policy = LocalWins
	}
	a.logger().WarnContext(ctx, "sync conflict: keycloak password newer than the local change", "event", "sync_conflict",
		"package", u.Package, "username", u.Username, "policy", string(policy),
		"keycloak_changed_at", kcAt.UTC(), "local_changed_at", changed.UTC())
	return policy, nil
}

// keepKeycloak settles a keycloak_wins conflict: Keycloak's password stays,
// and the version is marked synced so reconciliation does not re-queue it.
func (a *Applier) keepKeycloak(ctx context.Context, j Job, u users.User, rep Report) (Report, error) {
	if _, err := a.Users.MarkSynced(ctx, u.Key(), u.Version); err != nil {
		return Report{}, fmt.Errorf("mark %s synced at version %d: %w", u.Key(), u.Version, err)
	}
	a.logger().WarnContext(ctx, "credential drift kept: keycloak_wins", "event", "sync_drift_kept",
		"package", u.Package, "username", u.Username, "job", j.ID, "version", u.Version)
	rep.Result = Superseded
	rep.Reason = "conflict: keycloak password is newer (keycloak_wins); local change not pushed, drift recorded"
	return rep, nil
}

// push writes the change a job of type t stands for.
// A provision_user job for a user Keycloak already has (migration) brings
// over both the profile and the password.
func (a *Applier) push(ctx context.Context, t Type, u users.User, id string, hash credential.Hash) error {
	if t == UpdateUser || t == ProvisionUser {
		enabled := u.Enabled
		upd := keycloak.UserUpdate{Enabled: &enabled}
		if u.Email != "" {
			upd.Email = &u.Email
		}
		if err := a.Keycloak.UpdateUser(ctx, u.Package, id, upd); err != nil || t == UpdateUser {
			return err
		}
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
