package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// AccountStore is the part of the user store an operator's changes use
// (*users.Dynamo, *users.Memory).
type AccountStore interface {
	Create(ctx context.Context, u users.User, now time.Time) (users.User, error)
	Get(ctx context.Context, key userkey.Key) (users.User, error)
	UpdatePassword(ctx context.Context, key userkey.Key, expectedVersion int64, h users.Hash, now time.Time) (users.User, error)
	MarkSynced(ctx context.Context, key userkey.Key, version int64) (bool, error)
}

// Accounts are an operator's changes to local users (`kcguard users add`,
// `set-password`, `seed`): the login flow's password policy and hasher,
// without its lockout and audit (the operator is not the user). A new
// version reaches Keycloak through the sync queue or the reconciliation.
type Accounts struct {
	Users  AccountStore
	Hasher interface {
		Hash(password string) (credential.Hash, error)
	}
	Policy credential.Policy
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// NewAccount is a user an operator creates.
type NewAccount struct {
	Package, Username, Password, Email string
	// Group becomes the "group" attribute (migrate --where selects by it).
	Group string
}

// Create stores a new enabled user with a hash of a password that passes
// the policy; users.ErrAlreadyExists if the username is taken.
func (a Accounts) Create(ctx context.Context, n NewAccount) (users.User, error) {
	return a.create(ctx, a.Policy, n)
}

func (a Accounts) create(ctx context.Context, policy credential.Policy, n NewAccount) (users.User, error) {
	if err := policy.Check(n.Username, n.Password); err != nil {
		return users.User{}, err
	}
	h, err := a.Hasher.Hash(n.Password)
	if err != nil {
		return users.User{}, fmt.Errorf("hash password: %w", err)
	}
	u := users.User{Package: n.Package, Username: n.Username, Email: n.Email, Enabled: true, Hash: users.NewHash(h)}
	if n.Group != "" {
		u.Attributes = map[string]string{"group": n.Group}
	}
	return a.Users.Create(ctx, u, a.now())
}

// SetPassword is an operator's reset: a policy-checked hash stored as the
// next version (optimistic check against the version just read), so the
// sync carries it to Keycloak.
func (a Accounts) SetPassword(ctx context.Context, key userkey.Key, password string) (users.User, error) {
	if err := a.Policy.Check(key.Username, password); err != nil {
		return users.User{}, err
	}
	u, err := a.Users.Get(ctx, key)
	if err != nil {
		return users.User{}, err
	}
	h, err := a.Hasher.Hash(password)
	if err != nil {
		return users.User{}, fmt.Errorf("hash password: %w", err)
	}
	return a.Users.UpdatePassword(ctx, key, u.Version, users.NewHash(h), a.now())
}

// Seed creates a user that Keycloak already has with this password (a
// realm file of the local stack): the password is stored as Keycloak has
// it, whatever the policy, and marked synced, since there is nothing to
// send. created is false when the user existed (it is left as it is).
func (a Accounts) Seed(ctx context.Context, n NewAccount) (u users.User, created bool, err error) {
	u, err = a.create(ctx, credential.Policy{MinLength: 1}, n)
	switch {
	case errors.Is(err, users.ErrAlreadyExists):
		return users.User{}, false, nil
	case err != nil:
		return users.User{}, false, err
	}
	if _, err := a.Users.MarkSynced(ctx, u.Key(), u.Version); err != nil {
		return u, true, fmt.Errorf("mark %s/%s synced: %w", u.Package, u.Username, err)
	}
	u.KeycloakSyncedVersion = u.Version
	return u, true, nil
}

func (a Accounts) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}
