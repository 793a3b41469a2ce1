package keycloak_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
)

// Integration tests against the real Keycloak 26.7.3 of the local stack,
// each through its own toxiproxy proxy. They skip under -short and fail if
// the stack is down.

const pkgHC = "homechoice"

func packages() map[string]keycloak.Realm {
	return map[string]keycloak.Realm{
		"homechoice": {Realm: testenv.Homechoice.Name, ClientID: testenv.Homechoice.ClientID, ClientSecret: testenv.Homechoice.ClientSecret},
		"janee":      {Realm: testenv.Janee.Name, ClientID: testenv.Janee.ClientID, ClientSecret: testenv.Janee.ClientSecret},
	}
}

func newClient(t *testing.T, baseURL string, mod func(*keycloak.Options)) *keycloak.Client {
	t.Helper()
	opts := keycloak.Options{BaseURL: baseURL, Packages: packages()}
	if mod != nil {
		mod(&opts)
	}
	c, err := keycloak.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// uniqueUser creates a throwaway user (never a seeded one: brute-force
// detection is on) and deletes it when the test ends.
func uniqueUser(t *testing.T, c *keycloak.Client, spec keycloak.UserSpec) (id, username string) {
	t.Helper()
	ctx := context.Background()
	if spec.Username == "" {
		spec.Username = testenv.Unique("kcg-test")
	}
	// Keycloak 26's default user profile requires email, first and last
	// name; without them a password grant fails with invalid_grant
	// "Account is not fully set up" (required action VERIFY_PROFILE).
	if spec.Email == "" {
		spec.Email = strings.ToLower(spec.Username) + "@example.test"
	}
	if spec.FirstName == "" {
		spec.FirstName = "Test"
	}
	if spec.LastName == "" {
		spec.LastName = "User"
	}
	id, err := c.CreateUser(ctx, pkgHC, spec)
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() {
		if err := c.DeleteUser(context.Background(), pkgHC, id); err != nil {
			t.Errorf("delete user %s: %v", spec.Username, err)
		}
	})
	return id, spec.Username
}

func mustHash(t *testing.T, p credential.Params, password string) credential.Hash {
	t.Helper()
	h, err := credential.NewHasher(p)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func TestPasswordGrantSeededUser(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		pkg   string
		realm testenv.Realm
		user  string
	}{
		{"homechoice", testenv.Homechoice, "alice.hc"},
		{"janee", testenv.Janee, "dave.jn"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			before := time.Now()
			tok, err := c.PasswordGrant(ctx, tc.pkg, tc.user, tc.realm.Users[tc.user])
			if err != nil {
				t.Fatalf("password grant: %v", err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
				t.Fatalf("incomplete token %v", tok)
			}
			if tok.ExpiresIn != 300 || tok.ExpiresAt.Before(before.Add(299*time.Second)) {
				t.Fatalf("expiry: in=%d at=%v", tok.ExpiresIn, tok.ExpiresAt)
			}
			ref, err := c.Refresh(ctx, tc.pkg, tok.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if ref.AccessToken == "" || ref.AccessToken == tok.AccessToken {
				t.Fatal("refresh returned no new access token")
			}
			if _, err := c.Refresh(ctx, tc.pkg, "not-a-refresh-token"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
				t.Fatalf("bad refresh token: err = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func TestWrongPasswordIsInvalidCredentials(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	_, user := uniqueUser(t, c, keycloak.UserSpec{Password: mustHash(t, credential.Params{}, "the-right-password-1")})
	_, err := c.PasswordGrant(context.Background(), pkgHC, user, "a-wrong-password-1")
	if !errors.Is(err, keycloak.ErrInvalidCredentials) || keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want ErrInvalidCredentials and no outage", err)
	}
	var ke *keycloak.Error
	// Keycloak 26.7.3 answers a wrong password with 400 invalid_grant.
	if !errors.As(err, &ke) || ke.Status != http.StatusBadRequest {
		t.Fatalf("err = %#v, want *keycloak.Error with 400", err)
	}
	// Unknown user: same answer, Keycloak does not reveal existence.
	if _, err := c.PasswordGrant(context.Background(), pkgHC, testenv.Unique("nobody"), "whatever-password"); !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("unknown user: err = %v", err)
	}
}

func TestDisabledUserIsInvalidCredentials(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	_, user := uniqueUser(t, c, keycloak.UserSpec{Disabled: true, Password: mustHash(t, credential.Params{}, "the-right-password-1")})
	_, err := c.PasswordGrant(context.Background(), pkgHC, user, "the-right-password-1")
	if !errors.Is(err, keycloak.ErrInvalidCredentials) {
		t.Fatalf("err = %v, want ErrInvalidCredentials", err)
	}
}

func TestWrongClientSecretIsRejectedNotInvalidCredentials(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, func(o *keycloak.Options) {
		o.Packages = map[string]keycloak.Realm{pkgHC: {Realm: "homechoice", ClientID: "kcguard", ClientSecret: "wrong-secret-XYZ"}}
	})
	_, err := c.PasswordGrant(context.Background(), pkgHC, "alice.hc", testenv.Homechoice.Users["alice.hc"])
	if !errors.Is(err, keycloak.ErrRejected) || keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want ErrRejected", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-XYZ") || strings.Contains(err.Error(), testenv.Homechoice.Users["alice.hc"]) {
		t.Fatalf("error leaks a secret: %v", err)
	}
	if _, err := c.FindUser(context.Background(), pkgHC, "alice.hc"); !errors.Is(err, keycloak.ErrRejected) {
		t.Fatalf("admin with wrong secret: err = %v, want ErrRejected", err)
	}
}

func TestProxyDisabledIsQuickOutage(t *testing.T) {
	base, proxy := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	// Warm a pooled connection first: a cut must also break open connections.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	proxy.Disable()
	start := time.Now()
	_, err := c.PasswordGrant(context.Background(), pkgHC, "alice.hc", testenv.Homechoice.Users["alice.hc"])
	elapsed := time.Since(start)
	if !errors.Is(err, keycloak.ErrUnavailable) || !keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if elapsed > 500*time.Millisecond {
		t.Fatalf("took %v; a refused connection should fail fast", elapsed)
	}
	if err := c.Ping(context.Background()); !keycloak.IsOutage(err) {
		t.Fatalf("ping while down: %v", err)
	}
	proxy.Enable()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping after enable: %v", err)
	}
}

func TestSlowKeycloakTimesOutAtRequestTimeout(t *testing.T) {
	base, proxy := testenv.Keycloak(t)
	const timeout = 500 * time.Millisecond
	c := newClient(t, base, func(o *keycloak.Options) { o.RequestTimeout = timeout })
	proxy.Latency(3000)
	start := time.Now()
	_, err := c.PasswordGrant(context.Background(), pkgHC, "alice.hc", testenv.Homechoice.Users["alice.hc"])
	elapsed := time.Since(start)
	if !keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want outage", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("our own timeout must not look like the caller's deadline")
	}
	if elapsed < timeout || elapsed > timeout+300*time.Millisecond {
		t.Fatalf("took %v, want ≈%v", elapsed, timeout)
	}
	t.Logf("timed out after %v: %v", elapsed, err)

	proxy.Heal()
	proxy.Blackhole()
	start = time.Now()
	if err := c.Ping(context.Background()); !keycloak.IsOutage(err) || time.Since(start) > timeout+300*time.Millisecond {
		t.Fatalf("blackhole: err = %v after %v", err, time.Since(start))
	}
}

func TestCallerCancellationIsNotAnOutage(t *testing.T) {
	base, proxy := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	proxy.Latency(1500)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := c.PasswordGrant(ctx, pkgHC, "alice.hc", testenv.Homechoice.Users["alice.hc"])
	if !errors.Is(err, context.Canceled) || keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want context.Canceled and no outage", err)
	}
	// The caller's own deadline is also the caller's business.
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	if _, err := c.FindUser(dctx, pkgHC, "alice.hc"); !errors.Is(err, context.DeadlineExceeded) || keycloak.IsOutage(err) {
		t.Fatalf("err = %v, want context.DeadlineExceeded and no outage", err)
	}
}

// countingTransport counts client_credentials token requests.
type countingTransport struct {
	next         http.RoundTripper
	serviceFetch atomic.Int32
}

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") && r.Body != nil && r.GetBody != nil {
		body, _ := r.GetBody()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(body)
		if v, _ := url.ParseQuery(buf.String()); v.Get("grant_type") == "client_credentials" {
			ct.serviceFetch.Add(1)
		}
	}
	return ct.next.RoundTrip(r)
}

func TestServiceTokenFetchedOnceForConcurrentCalls(t *testing.T) {
	base, proxy := testenv.Keycloak(t)
	ct := &countingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	c := newClient(t, base, func(o *keycloak.Options) { o.HTTPClient = &http.Client{Transport: ct} })
	// Slow the path so all 20 callers pile up on the first fetch.
	proxy.Latency(200)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			u, err := c.FindUser(context.Background(), pkgHC, "bob.hc")
			if err == nil && u.Username != "bob.hc" {
				err = errors.New("wrong user " + u.Username)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := ct.serviceFetch.Load(); n != 1 {
		t.Fatalf("service-account token fetched %d times for 20 concurrent calls, want 1", n)
	}
	// Cached: later calls fetch nothing.
	if _, err := c.FindUser(context.Background(), pkgHC, "carol.hc"); err != nil {
		t.Fatal(err)
	}
	if n := ct.serviceFetch.Load(); n != 1 {
		t.Fatalf("token fetched again while cached (%d)", n)
	}
}

func TestServiceTokenRefreshedAheadOfExpiry(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	ct := &countingTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
	var now atomic.Pointer[time.Time]
	t0 := time.Now()
	now.Store(&t0)
	c := newClient(t, base, func(o *keycloak.Options) {
		o.HTTPClient = &http.Client{Transport: ct}
		o.Now = func() time.Time { return *now.Load() }
	})
	ctx := context.Background()
	if _, err := c.FindUser(ctx, pkgHC, "alice.hc"); err != nil {
		t.Fatal(err)
	}
	// Realm access tokens live 300s; refresh 30s ahead.
	t1 := t0.Add(260 * time.Second)
	now.Store(&t1)
	if _, err := c.FindUser(ctx, pkgHC, "alice.hc"); err != nil {
		t.Fatal(err)
	}
	if n := ct.serviceFetch.Load(); n != 1 {
		t.Fatalf("fetches at t+260s = %d, want 1", n)
	}
	t2 := t0.Add(275 * time.Second)
	now.Store(&t2)
	if _, err := c.FindUser(ctx, pkgHC, "alice.hc"); err != nil {
		t.Fatal(err)
	}
	if n := ct.serviceFetch.Load(); n != 2 {
		t.Fatalf("fetches at t+275s = %d, want 2 (refreshed ahead of expiry)", n)
	}
}

func TestUserAdmin(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	ctx := context.Background()
	username := testenv.Unique("Kcg-Admin")
	id, _ := uniqueUser(t, c, keycloak.UserSpec{Username: username, Email: strings.ToLower(username) + "@example.test",
		FirstName: "Ada", LastName: "Lovelace"})

	u, err := c.FindUser(ctx, pkgHC, strings.ToUpper(username))
	if err != nil {
		t.Fatalf("find (case-insensitive): %v", err)
	}
	if u.ID != id || u.Username != strings.ToLower(username) || !u.Enabled || u.FirstName != "Ada" || u.CreatedAt.IsZero() {
		t.Fatalf("found %+v", u)
	}
	// exact=true: a prefix must not match.
	if _, err := c.FindUser(ctx, pkgHC, username[:len(username)-2]); !errors.Is(err, keycloak.ErrNotFound) {
		t.Fatalf("prefix: err = %v, want ErrNotFound", err)
	}
	if _, err := c.CreateUser(ctx, pkgHC, keycloak.UserSpec{Username: username}); !errors.Is(err, keycloak.ErrConflict) {
		t.Fatalf("duplicate: err = %v, want ErrConflict", err)
	}
	if _, err := c.PasswordCredentialCreatedAt(ctx, pkgHC, id); !errors.Is(err, keycloak.ErrNotFound) {
		t.Fatalf("no password: err = %v, want ErrNotFound", err)
	}

	no, mail := false, "new-"+strings.ToLower(username)+"@example.test"
	if err := c.UpdateUser(ctx, pkgHC, id, keycloak.UserUpdate{Enabled: &no, Email: &mail}); err != nil {
		t.Fatalf("update: %v", err)
	}
	u, _ = c.FindUser(ctx, pkgHC, username)
	if u.Enabled || u.Email != mail || u.FirstName != "Ada" || u.LastName != "Lovelace" {
		t.Fatalf("after update %+v", u)
	}
	if err := c.UpdateUser(ctx, pkgHC, "00000000-0000-0000-0000-000000000000", keycloak.UserUpdate{Enabled: &no}); !errors.Is(err, keycloak.ErrNotFound) {
		t.Fatalf("update missing user: err = %v, want ErrNotFound", err)
	}
	if _, err := c.FindUser(ctx, "nope", username); !errors.Is(err, keycloak.ErrUnknownPackage) {
		t.Fatalf("unknown package: err = %v", err)
	}
}

// TestImportPasswordHash is the sync-without-plaintext proof: a hash made
// locally by pkg/credential, imported through the Admin API, lets the user
// log in to Keycloak 26.7.3 with the new password and not the old one.
func TestImportPasswordHash(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	// Keycloak verifies pbkdf2-sha512 at 210,000 iterations: on the shared,
	// loaded test machine that can exceed the 2 s login timeout, which
	// would fail this test for a reason it does not test.
	c := newClient(t, base, func(o *keycloak.Options) { o.RequestTimeout = 10 * time.Second })
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		params credential.Params
	}{
		{"argon2id default", credential.Params{}},
		{"pbkdf2-sha512 default", credential.Params{Algorithm: credential.PBKDF2SHA512}},
		{"argon2id custom cost", credential.Params{Iterations: 3, Argon2MemoryKiB: 12288}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const oldPW, newPW = "old-Password-123", "new-Pässwörd-✓-456"
			id, user := uniqueUser(t, c, keycloak.UserSpec{FirstName: "Grace", Password: mustHash(t, credential.Params{}, oldPW)})
			if _, err := c.PasswordGrant(ctx, pkgHC, user, oldPW); err != nil {
				t.Fatalf("login with the initial hash: %v", err)
			}
			createdBefore, err := c.PasswordCredentialCreatedAt(ctx, pkgHC, id)
			if err != nil {
				t.Fatal(err)
			}

			time.Sleep(10 * time.Millisecond) // createdDate has ms resolution
			hash := mustHash(t, tc.params, newPW)
			if err := c.ImportPasswordHash(ctx, pkgHC, id, hash); err != nil {
				t.Fatalf("import %v: %v", hash, err)
			}
			if _, err := c.PasswordGrant(ctx, pkgHC, user, newPW); err != nil {
				t.Fatalf("login with the imported password: %v", err)
			}
			createdAfter, err := c.PasswordCredentialCreatedAt(ctx, pkgHC, id)
			if err != nil {
				t.Fatal(err)
			}
			if !createdAfter.After(createdBefore) {
				t.Fatalf("createdDate %v not after %v", createdAfter, createdBefore)
			}
			// The import PUT carries only credentials: profile fields survive.
			u, err := c.FindUser(ctx, pkgHC, user)
			if err != nil || u.FirstName != "Grace" || u.Email == "" || !u.Enabled {
				t.Fatalf("user after import %+v, %v", u, err)
			}

			// Logout ends the sessions: the refresh token stops working.
			tok, err := c.PasswordGrant(ctx, pkgHC, user, newPW)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.LogoutUser(ctx, pkgHC, id); err != nil {
				t.Fatalf("logout: %v", err)
			}
			if _, err := c.Refresh(ctx, pkgHC, tok.RefreshToken); !errors.Is(err, keycloak.ErrInvalidCredentials) {
				t.Fatalf("refresh after logout: err = %v, want ErrInvalidCredentials", err)
			}

			// Last: within about a second after a wrong password, Keycloak
			// 26.7.3 may refuse even the right one (event
			// user_temporarily_disabled, answered as "Invalid user
			// credentials"), so no successful login may follow this.
			if _, err := c.PasswordGrant(ctx, pkgHC, user, oldPW); !errors.Is(err, keycloak.ErrInvalidCredentials) {
				t.Fatalf("old password after import: err = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

func TestImportMalformedHashIsRejected(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	id, _ := uniqueUser(t, c, keycloak.UserSpec{})
	if err := c.ImportPasswordHash(context.Background(), pkgHC, id, credential.Hash{}); !errors.Is(err, keycloak.ErrRejected) {
		t.Fatalf("empty hash: err = %v", err)
	}
}

// TestNoSecretsInLogsOrErrors runs a full flow with debug logging captured
// and checks no password, token or client secret shows up.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	base, proxy := testenv.Keycloak(t)
	var logs bytes.Buffer
	c := newClient(t, base, func(o *keycloak.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	const pw = "Secret-Pass-Word-987"
	id, user := uniqueUser(t, c, keycloak.UserSpec{Password: mustHash(t, credential.Params{}, pw)})
	tok, err := c.PasswordGrant(ctx, pkgHC, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	var errText strings.Builder
	for _, err := range []error{
		func() error { _, err := c.PasswordGrant(ctx, pkgHC, user, pw+"-wrong"); return err }(),
		func() error { _, err := c.Refresh(ctx, pkgHC, tok.RefreshToken+"x"); return err }(),
		c.ImportPasswordHash(ctx, pkgHC, id, mustHash(t, credential.Params{}, pw+"-2")),
		func() error { proxy.Disable(); _, err := c.PasswordGrant(ctx, pkgHC, user, pw); return err }(),
	} {
		if err != nil {
			errText.WriteString(err.Error() + "\n")
		}
	}
	proxy.Enable()
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("token", "token", tok)
	out := logs.String() + errText.String() + tok.String()
	if logs.Len() == 0 {
		t.Fatal("no log output captured")
	}
	for _, secret := range []string{pw, tok.AccessToken, tok.RefreshToken, testenv.Homechoice.ClientSecret} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret leaked into logs or errors:\n%s", out)
		}
	}
}

// TestContract runs the same behavioural suite as the fake's tests.
func TestContract(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	keycloaktest.RunContract(t, newClient(t, base, nil), pkgHC)
}

// Keycloak 26.7.3 answers a user its brute-force detector has locked with
// the same "Invalid user credentials" as a wrong password, even to the right
// password; only the admin API's brute-force status tells the two apart.
func TestBruteForceLockIsOnlyVisibleInTheAdminAPI(t *testing.T) {
	base, _ := testenv.Keycloak(t)
	c := newClient(t, base, nil)
	ctx := context.Background()
	pw := "authority-Right-Pass-1"
	id, user := uniqueUser(t, c, keycloak.UserSpec{Username: testenv.Unique("authority-bf"),
		Password: mustHash(t, credential.Params{}, pw)})
	if bf, err := c.BruteForceStatus(ctx, pkgHC, id); err != nil || bf.Locked {
		t.Fatalf("fresh user: %+v %v", bf, err)
	}
	if err := keycloaktest.LockUser(ctx, c, pkgHC, user, id); err != nil {
		t.Fatal(err)
	}
	_, err := c.PasswordGrant(ctx, pkgHC, user, pw)
	if !errors.Is(err, keycloak.ErrInvalidCredentials) || errors.Is(err, keycloak.ErrAccountDisabled) || errors.Is(err, keycloak.ErrActionRequired) {
		t.Fatalf("locked, right password: %v, want a plain invalid credentials", err)
	}
	bf, err := c.BruteForceStatus(ctx, pkgHC, id)
	if err != nil || !bf.Locked || !bf.LockedUntil.After(time.Now()) || bf.Failures < 1 {
		t.Fatalf("brute-force status of a locked user: %+v %v", bf, err)
	}
	a, err := keycloak.InspectAccount(ctx, c, pkgHC, id)
	if err != nil || !a.Found || !a.BruteForce.Locked || !a.User.Enabled {
		t.Fatalf("inspect: %+v %v", a, err)
	}
	// Enabling the user (what an administrator's unlock does) clears it.
	on := true
	if err := c.UpdateUser(ctx, pkgHC, id, keycloak.UserUpdate{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PasswordGrant(ctx, pkgHC, user, pw); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}
