// Package keycloaktest provides an in-memory keycloak.Keycloak for other
// packages' unit tests: users with password hashes, programmable failures
// and latency, and call counts.
package keycloaktest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
)

// Method names, for Fail, SetLatency and Calls.
const (
	PasswordGrant               = "PasswordGrant"
	Refresh                     = "Refresh"
	FindUser                    = "FindUser"
	CreateUser                  = "CreateUser"
	UpdateUser                  = "UpdateUser"
	ImportPasswordHash          = "ImportPasswordHash"
	PasswordCredentialCreatedAt = "PasswordCredentialCreatedAt"
	GetUser                     = "GetUser"
	BruteForceStatus            = "BruteForceStatus"
	LogoutUser                  = "LogoutUser"
	DeleteUser                  = "DeleteUser"
	Ping                        = "Ping"
	// All matches every method in Fail and SetLatency.
	All = "*"
)

// Fake is an in-memory Keycloak. The zero value is not usable; call New.
// All methods are safe for concurrent use.
type Fake struct {
	// Now is the clock for token expiry and credential dates; set it before
	// use. Defaults to time.Now.
	Now func() time.Time
	// TokenLifetime and RefreshLifetime of issued tokens (default 300s, 1800s).
	TokenLifetime, RefreshLifetime time.Duration

	mu       sync.Mutex
	hasher   *credential.Hasher
	users    map[string]map[string]*fakeUser // package → id → user
	refresh  map[string]refreshEntry         // refresh token → owner
	failures map[string][]failure
	latency  map[string]time.Duration
	calls    map[string]int
}

type fakeUser struct {
	user        keycloak.User
	password    credential.Hash
	createdAt   time.Time // of the password credential
	lockedUntil time.Time // brute-force lock
}

type refreshEntry struct {
	pkg, userID string
	expires     time.Time
}

type failure struct {
	err   error
	times int // < 0: until cleared
}

// New returns an empty Fake. Passwords set with AddUser are hashed at a
// tiny cost so unit tests stay fast; imported hashes keep theirs.
func New() *Fake {
	h, err := credential.NewHasher(credential.Params{Algorithm: credential.PBKDF2SHA512, Iterations: 1})
	if err != nil {
		panic(err) // constant, valid parameters
	}
	return &Fake{
		Now: time.Now, TokenLifetime: 300 * time.Second, RefreshLifetime: 1800 * time.Second,
		hasher: h, users: map[string]map[string]*fakeUser{}, refresh: map[string]refreshEntry{},
		failures: map[string][]failure{}, latency: map[string]time.Duration{}, calls: map[string]int{},
	}
}

var _ keycloak.Keycloak = (*Fake)(nil)

// AddUser adds an enabled user with a plaintext password (test setup only)
// and returns its id.
func (f *Fake) AddUser(pkg, username, password string) string {
	h, err := f.hasher.Hash(password)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := newID()
	f.pkg(pkg)[id] = &fakeUser{
		user:     keycloak.User{ID: id, Username: strings.ToLower(username), Enabled: true, CreatedAt: f.Now()},
		password: h, createdAt: f.Now(),
	}
	return id
}

// SetPassword changes a user's password as if done in Keycloak directly
// (e.g. by the user through the account console), for drift tests.
func (f *Fake) SetPassword(pkg, userID, password string) {
	h, err := f.hasher.Hash(password)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil {
		u.password, u.createdAt = h, f.Now()
	}
}

// SetEnabled enables or disables a user as an administrator would in
// Keycloak's admin console.
func (f *Fake) SetEnabled(pkg, userID string, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil {
		u.user.Enabled = enabled
	}
}

// SetRequiredActions sets a user's required actions (none clears them).
func (f *Fake) SetRequiredActions(pkg, userID string, actions ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil {
		u.user.RequiredActions = actions
	}
}

// Lock makes Keycloak's brute-force detector lock the user until until:
// like Keycloak 26, every grant is then "Invalid user credentials".
func (f *Fake) Lock(pkg, userID string, until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil {
		u.lockedUntil = until
	}
}

// User returns a copy of a stored user and its password hash.
func (f *Fake) User(pkg, userID string) (keycloak.User, credential.Hash, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pkg(pkg)[userID]
	if u == nil {
		return keycloak.User{}, credential.Hash{}, false
	}
	return u.user, u.password, true
}

// Fail makes the next times calls of method (or All) return err; times < 0
// means until ClearFailures. Build realistic errors with keycloak.NewError,
// e.g. keycloak.NewError("password grant", pkg, keycloak.ErrUnavailable, 503, "").
func (f *Fake) Fail(method string, err error, times int) {
	if times == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[method] = append(f.failures[method], failure{err: err, times: times})
}

// ClearFailures removes every programmed failure.
func (f *Fake) ClearFailures() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = map[string][]failure{}
}

// SetLatency delays every call of method (or All) by d, or until the
// caller's context ends.
func (f *Fake) SetLatency(method string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency[method] = d
}

// Calls returns how many times method was called (failed calls included).
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// enter counts the call, waits out the latency and returns a programmed
// failure, if any.
func (f *Fake) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	f.calls[method]++
	d := max(f.latency[method], f.latency[All])
	var err error
	for _, key := range []string{method, All} {
		if q := f.failures[key]; len(q) > 0 {
			err = q[0].err
			if q[0].times > 0 {
				q[0].times--
				if q[0].times == 0 {
					q = q[1:]
				}
			}
			f.failures[key] = q
			break
		}
	}
	f.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("keycloaktest %s: %w", method, ctx.Err())
		case <-t.C:
		}
	}
	if err == nil && ctx.Err() != nil {
		return fmt.Errorf("keycloaktest %s: %w", method, ctx.Err())
	}
	return err
}

func (f *Fake) pkg(pkg string) map[string]*fakeUser {
	m := f.users[pkg]
	if m == nil {
		m = map[string]*fakeUser{}
		f.users[pkg] = m
	}
	return m
}

func (f *Fake) byName(pkg, username string) *fakeUser {
	for _, u := range f.pkg(pkg) {
		if strings.EqualFold(u.user.Username, username) {
			return u
		}
	}
	return nil
}

func (f *Fake) token(pkg, userID string) keycloak.Token {
	now := f.Now()
	rt := "fake-refresh-" + newID()
	f.refresh[rt] = refreshEntry{pkg: pkg, userID: userID, expires: now.Add(f.RefreshLifetime)}
	return keycloak.Token{
		AccessToken: fakeJWT(userID), RefreshToken: rt, TokenType: "Bearer",
		ExpiresIn: int(f.TokenLifetime / time.Second), RefreshExpiresIn: int(f.RefreshLifetime / time.Second),
		ExpiresAt: now.Add(f.TokenLifetime), RefreshExpiresAt: now.Add(f.RefreshLifetime),
	}
}

func invalid(op, pkg string) error {
	return keycloak.NewError(op, pkg, keycloak.ErrInvalidCredentials, 400, "invalid_grant")
}

func refused(op, pkg string, why error, description string) error {
	e := keycloak.NewError(op, pkg, keycloak.ErrInvalidCredentials, 400, "invalid_grant: "+description)
	e.Refusal = why
	return e
}

func notFound(op, pkg string) error {
	return keycloak.NewError(op, pkg, keycloak.ErrNotFound, 404, "")
}

// PasswordGrant implements keycloak.Keycloak.
func (f *Fake) PasswordGrant(ctx context.Context, pkg, username, password string) (keycloak.Token, error) {
	if err := f.enter(ctx, PasswordGrant); err != nil {
		return keycloak.Token{}, err
	}
	f.mu.Lock()
	u := f.byName(pkg, username)
	var stored credential.Hash
	locked := false
	if u != nil {
		stored, locked = u.password, f.Now().Before(u.lockedUntil)
	}
	f.mu.Unlock()
	// Keycloak 26.7.3's order: a locked user learns nothing, a wrong
	// password learns nothing, and only then the account's state is named.
	if u == nil || stored.IsZero() || locked {
		return keycloak.Token{}, invalid("password grant", pkg)
	}
	// Verify outside the lock: imported hashes may be at full cost.
	if ok, _ := credential.Verify(stored, password); !ok {
		return keycloak.Token{}, invalid("password grant", pkg)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !u.user.Enabled {
		return keycloak.Token{}, refused("password grant", pkg, keycloak.ErrAccountDisabled, "Account disabled")
	}
	if len(u.user.RequiredActions) > 0 {
		return keycloak.Token{}, refused("password grant", pkg, keycloak.ErrActionRequired, "Account is not fully set up")
	}
	return f.token(pkg, u.user.ID), nil
}

// Refresh implements keycloak.Keycloak.
func (f *Fake) Refresh(ctx context.Context, pkg, refreshToken string) (keycloak.Token, error) {
	if err := f.enter(ctx, Refresh); err != nil {
		return keycloak.Token{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.refresh[refreshToken]
	if !ok || e.pkg != pkg || !f.Now().Before(e.expires) {
		return keycloak.Token{}, invalid("refresh", pkg)
	}
	// Like Keycloak's default (revokeRefreshToken off), the old refresh
	// token stays valid until it expires or the user is logged out.
	return f.token(pkg, e.userID), nil
}

// FindUser implements keycloak.Keycloak.
func (f *Fake) FindUser(ctx context.Context, pkg, username string) (keycloak.User, error) {
	if err := f.enter(ctx, FindUser); err != nil {
		return keycloak.User{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.byName(pkg, username); u != nil {
		return u.user, nil
	}
	return keycloak.User{}, notFound("find user", pkg)
}

// CreateUser implements keycloak.Keycloak.
func (f *Fake) CreateUser(ctx context.Context, pkg string, spec keycloak.UserSpec) (string, error) {
	if err := f.enter(ctx, CreateUser); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byName(pkg, spec.Username) != nil {
		return "", keycloak.NewError("create user", pkg, keycloak.ErrConflict, 409, "User exists with same username")
	}
	id := newID()
	now := f.Now()
	u := &fakeUser{user: keycloak.User{
		ID: id, Username: strings.ToLower(spec.Username), Email: spec.Email, FirstName: spec.FirstName,
		LastName: spec.LastName, Enabled: !spec.Disabled, EmailVerified: spec.EmailVerified,
		Attributes: spec.Attributes, CreatedAt: now,
	}}
	if !spec.Password.IsZero() {
		u.password, u.createdAt = spec.Password, now
	}
	f.pkg(pkg)[id] = u
	return id, nil
}

// UpdateUser implements keycloak.Keycloak.
func (f *Fake) UpdateUser(ctx context.Context, pkg, userID string, upd keycloak.UserUpdate) error {
	if err := f.enter(ctx, UpdateUser); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pkg(pkg)[userID]
	if u == nil {
		return notFound("update user", pkg)
	}
	if upd.Enabled != nil {
		u.user.Enabled = *upd.Enabled
		if *upd.Enabled {
			u.lockedUntil = time.Time{}
		}
	}
	if upd.Email != nil {
		u.user.Email = *upd.Email
	}
	if upd.FirstName != nil {
		u.user.FirstName = *upd.FirstName
	}
	if upd.LastName != nil {
		u.user.LastName = *upd.LastName
	}
	if upd.Attributes != nil {
		u.user.Attributes = upd.Attributes
	}
	if upd.RequiredActions != nil {
		u.user.RequiredActions = nil
		if len(*upd.RequiredActions) > 0 {
			u.user.RequiredActions = append([]string(nil), *upd.RequiredActions...)
		}
	}
	return nil
}

// ImportPasswordHash implements keycloak.Keycloak.
func (f *Fake) ImportPasswordHash(ctx context.Context, pkg, userID string, h credential.Hash) error {
	if err := f.enter(ctx, ImportPasswordHash); err != nil {
		return err
	}
	if h.IsZero() {
		return keycloak.NewError("import password hash", pkg, keycloak.ErrRejected, 0, "empty hash")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pkg(pkg)[userID]
	if u == nil {
		return notFound("import password hash", pkg)
	}
	u.password, u.createdAt = h, f.Now()
	return nil
}

// PasswordCredentialCreatedAt implements keycloak.Keycloak.
func (f *Fake) PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error) {
	if err := f.enter(ctx, PasswordCredentialCreatedAt); err != nil {
		return time.Time{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.pkg(pkg)[userID]
	if u == nil || u.password.IsZero() {
		return time.Time{}, notFound("get credentials", pkg)
	}
	// Keycloak keeps milliseconds.
	return u.createdAt.Truncate(time.Millisecond), nil
}

// GetUser implements keycloak.Keycloak.
func (f *Fake) GetUser(ctx context.Context, pkg, userID string) (keycloak.User, error) {
	if err := f.enter(ctx, GetUser); err != nil {
		return keycloak.User{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil {
		return u.user, nil
	}
	return keycloak.User{}, notFound("get user", pkg)
}

// BruteForceStatus implements keycloak.Keycloak. Like Keycloak, an unknown
// id reads as not locked.
func (f *Fake) BruteForceStatus(ctx context.Context, pkg, userID string) (keycloak.BruteForce, error) {
	if err := f.enter(ctx, BruteForceStatus); err != nil {
		return keycloak.BruteForce{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.pkg(pkg)[userID]; u != nil && f.Now().Before(u.lockedUntil) {
		return keycloak.BruteForce{Locked: true, LockedUntil: u.lockedUntil.Truncate(time.Second), Failures: 1}, nil
	}
	return keycloak.BruteForce{}, nil
}

// LogoutUser implements keycloak.Keycloak: the user's refresh tokens stop working.
func (f *Fake) LogoutUser(ctx context.Context, pkg, userID string) error {
	if err := f.enter(ctx, LogoutUser); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pkg(pkg)[userID] == nil {
		return notFound("logout user", pkg)
	}
	for rt, e := range f.refresh {
		if e.pkg == pkg && e.userID == userID {
			delete(f.refresh, rt)
		}
	}
	return nil
}

// DeleteUser implements keycloak.Keycloak.
func (f *Fake) DeleteUser(ctx context.Context, pkg, userID string) error {
	if err := f.enter(ctx, DeleteUser); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pkg(pkg)[userID] == nil {
		return notFound("delete user", pkg)
	}
	delete(f.pkg(pkg), userID)
	return nil
}

// Ping implements keycloak.Keycloak.
func (f *Fake) Ping(ctx context.Context) error { return f.enter(ctx, Ping) }

// fakeJWT is an unsigned token shaped like Keycloak's, whose "sub" claim
// is the user's id (Token.Subject reads it).
func fakeJWT(userID string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"sub":"`+userID+`","jti":"`+newID()+`"}`)) + ".fake-signature"
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
