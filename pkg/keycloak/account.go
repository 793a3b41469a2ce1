package keycloak

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Account is everything Keycloak's admin API says about one user that can
// explain a refused password grant.
type Account struct {
	// Found is false when the user no longer exists in Keycloak.
	Found bool
	User  User
	// BruteForce is the brute-force detector's state of the user.
	BruteForce BruteForce
	// PasswordSetAt is when Keycloak's current password was set (zero when
	// the user has no password).
	PasswordSetAt time.Time
}

// AccountReader is the part of Keycloak InspectAccount needs.
type AccountReader interface {
	GetUser(ctx context.Context, pkg, userID string) (User, error)
	BruteForceStatus(ctx context.Context, pkg, userID string) (BruteForce, error)
	PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error)
}

// InspectAccount reads the user, its brute-force state and its password's
// date in parallel: one round trip's latency, on the rare path where a
// grant was refused and kcguard must know why. A user Keycloak no longer
// has is Found=false, not an error.
func InspectAccount(ctx context.Context, k AccountReader, pkg, userID string) (Account, error) {
	var (
		a                     Account
		wg                    sync.WaitGroup
		userErr, bfErr, pwErr error
	)
	wg.Add(3)
	go func() { defer wg.Done(); a.User, userErr = k.GetUser(ctx, pkg, userID) }()
	go func() { defer wg.Done(); a.BruteForce, bfErr = k.BruteForceStatus(ctx, pkg, userID) }()
	go func() { defer wg.Done(); a.PasswordSetAt, pwErr = k.PasswordCredentialCreatedAt(ctx, pkg, userID) }()
	wg.Wait()
	if errors.Is(userErr, ErrNotFound) {
		return Account{}, nil
	}
	if errors.Is(pwErr, ErrNotFound) {
		pwErr = nil // a user without a password
	}
	if err := errors.Join(userErr, bfErr, pwErr); err != nil {
		return Account{}, err
	}
	a.Found = true
	return a, nil
}
