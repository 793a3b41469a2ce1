// Package keycloak is kcguard's small port to Keycloak: the password and
// refresh grants for logins, and the handful of admin calls the sync worker
// and operators need, including importing a locally made password hash
// (pkg/credential) so a password changed during an outage reaches Keycloak
// without its plaintext ever being stored or queued.
//
// It wraps gocloak's HTTP plumbing rather than its 700-method surface, and
// classifies every failure once (see errors.go) so the breaker counts only
// real outages.
package keycloak

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/go-resty/resty/v2"
	"golang.org/x/sync/singleflight"

	"github.com/kcguard/kcguard/pkg/credential"
)

// Keycloak is what kcguard needs from Keycloak. *Client implements it against
// a real server; keycloaktest.Fake in memory.
type Keycloak interface {
	// PasswordGrant logs username in with the package's client (resource
	// owner password grant).
	PasswordGrant(ctx context.Context, pkg, username, password string) (Token, error)
	// Refresh exchanges a refresh token for new tokens.
	Refresh(ctx context.Context, pkg, refreshToken string) (Token, error)
	// FindUser returns the user whose username is exactly username
	// (Keycloak usernames are case-insensitive), or ErrNotFound.
	FindUser(ctx context.Context, pkg, username string) (User, error)
	// CreateUser creates a user, with its password hash if spec has one, and
	// returns its id. ErrConflict if the username or email is taken.
	CreateUser(ctx context.Context, pkg string, spec UserSpec) (string, error)
	// UpdateUser changes the fields set in u.
	UpdateUser(ctx context.Context, pkg, userID string, u UserUpdate) error
	// ImportPasswordHash replaces the user's password with a hash made by
	// pkg/credential. No plaintext is involved.
	ImportPasswordHash(ctx context.Context, pkg, userID string, h credential.Hash) error
	// GetUser returns the user with that id (ErrNotFound if deleted), with
	// Enabled and RequiredActions as Keycloak holds them.
	GetUser(ctx context.Context, pkg, userID string) (User, error)
	// BruteForceStatus is Keycloak's brute-force detector's view of the
	// user: the only place that tells a temporarily locked user, whose
	// grants Keycloak answers with plain "Invalid user credentials".
	BruteForceStatus(ctx context.Context, pkg, userID string) (BruteForce, error)
	// PasswordCredentialCreatedAt is when the user's current password was set
	// in Keycloak, or ErrNotFound if the user has none.
	PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error)
	// LogoutUser ends all of the user's Keycloak sessions.
	LogoutUser(ctx context.Context, pkg, userID string) error
	// DeleteUser removes a user (operators, tests).
	DeleteUser(ctx context.Context, pkg, userID string) error
	// Ping is a cheap health check of the Keycloak server: the probe the
	// sync poller and the scheduled cleanup run through an open breaker
	// when its next probe is due.
	Ping(ctx context.Context) error
}

var _ Keycloak = (*Client)(nil)

// Realm is where one package (tenant) lives in Keycloak: its realm and the
// confidential client kcguard uses there. The client needs direct access
// grants and a service account with realm-management manage-users,
// view-users and query-users.
type Realm struct {
	Realm        string
	ClientID     string
	ClientSecret string
}

// Options configure a Client. Zero values take the documented defaults.
type Options struct {
	// BaseURL of Keycloak, e.g. http://127.0.0.1:8180 (no /auth suffix;
	// Keycloak ≥ 17 layout).
	BaseURL string
	// Packages maps each package name to its realm and client.
	Packages map[string]Realm
	// RequestTimeout bounds login-path calls: password grant, refresh, Ping.
	// Zero means DefaultRequestTimeout. A login must not wait on a sick
	// Keycloak longer than it takes the user to lose patience; the local
	// tier already answered.
	RequestTimeout time.Duration
	// AdminTimeout bounds admin calls and the service-account token fetch.
	// Zero means DefaultAdminTimeout.
	AdminTimeout time.Duration
	// TokenRefreshAhead is how long before expiry the cached service-account
	// token is replaced. Zero means 30s (capped at half the token lifetime).
	TokenRefreshAhead time.Duration
	// PingPackage names the package whose realm Ping checks. Empty means the
	// alphabetically first package.
	PingPackage string
	// HTTPClient to use. Nil means a dedicated client with pooled
	// keep-alive connections and no overall timeout (contexts bound calls).
	HTTPClient *http.Client
	// Logger for debug records of each call (op, package, status, duration).
	// Nil discards.
	Logger *slog.Logger
	// Now is the clock for token expiry. Nil means time.Now.
	Now func() time.Time
}

// Defaults for Options; keycloak.timeout and keycloak.admin_timeout
// default to these (config.Default).
const (
	DefaultRequestTimeout    = 2 * time.Second
	DefaultAdminTimeout      = 10 * time.Second
	DefaultTokenRefreshAhead = 30 * time.Second
)

// Client talks to one Keycloak server for any number of packages. It is safe
// for concurrent use; build it once per Lambda instance.
type Client struct {
	gc           *gocloak.GoCloak
	baseURL      string
	packages     map[string]Realm
	pingPackage  string
	reqTimeout   time.Duration
	adminTimeout time.Duration
	refreshAhead time.Duration
	log          *slog.Logger
	now          func() time.Time

	tokenFetch singleflight.Group
	mu         sync.Mutex
	tokens     map[string]serviceToken // by package
}

type serviceToken struct {
	access    string
	refreshAt time.Time
}

// New validates opts and returns a Client. It makes no network call.
func New(opts Options) (*Client, error) {
	var problems []error
	base := strings.TrimRight(opts.BaseURL, "/")
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		problems = append(problems, fmt.Errorf("base URL %q is not an absolute URL", opts.BaseURL))
	}
	if len(opts.Packages) == 0 {
		problems = append(problems, errors.New("no packages configured"))
	}
	for name, r := range opts.Packages {
		if r.Realm == "" || r.ClientID == "" || r.ClientSecret == "" {
			problems = append(problems, fmt.Errorf("package %q needs realm, client id and client secret", name))
		}
	}
	ping := opts.PingPackage
	if ping == "" && len(opts.Packages) > 0 {
		names := make([]string, 0, len(opts.Packages))
		for n := range opts.Packages {
			names = append(names, n)
		}
		slices.Sort(names)
		ping = names[0]
	} else if _, ok := opts.Packages[ping]; !ok && ping != "" {
		problems = append(problems, fmt.Errorf("ping package %q is not configured", ping))
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("keycloak options: %w", err)
	}

	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		hc = &http.Client{Transport: tr}
	}
	gc := gocloak.NewClient(base)
	gc.SetRestyClient(resty.NewWithClient(hc))

	c := &Client{
		gc:           gc,
		baseURL:      base,
		packages:     maps.Clone(opts.Packages),
		pingPackage:  ping,
		reqTimeout:   orDefault(opts.RequestTimeout, DefaultRequestTimeout),
		adminTimeout: orDefault(opts.AdminTimeout, DefaultAdminTimeout),
		refreshAhead: orDefault(opts.TokenRefreshAhead, DefaultTokenRefreshAhead),
		log:          opts.Logger,
		now:          opts.Now,
		tokens:       map[string]serviceToken{},
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (c *Client) realm(pkg string) (Realm, error) {
	r, ok := c.packages[pkg]
	if !ok {
		return Realm{}, fmt.Errorf("%w %q", ErrUnknownPackage, pkg)
	}
	return r, nil
}

func (c *Client) tokenURL(realm string) string {
	return c.baseURL + "/realms/" + url.PathEscape(realm) + "/protocol/openid-connect/token"
}

func (c *Client) adminURL(realm string, path ...string) string {
	u := c.baseURL + "/admin/realms/" + url.PathEscape(realm)
	for _, p := range path {
		u += "/" + url.PathEscape(p)
	}
	return u
}

// call runs one HTTP exchange under its own timeout and classifies the
// outcome. The caller's ctx ending is reported as ctx.Err(), our timeout as
// ErrUnavailable.
func (c *Client) call(ctx context.Context, op, pkg string, timeout time.Duration, tokenEndpoint bool,
	send func(context.Context) (*resty.Response, error)) (*resty.Response, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	resp, err := send(rctx)
	elapsed := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			c.log.DebugContext(ctx, "keycloak call abandoned by caller", "op", op, "package", pkg, "duration", elapsed)
			return nil, fmt.Errorf("keycloak %s [%s]: %w", op, pkg, ctx.Err())
		}
		reason := transportReason(err)
		if errors.Is(rctx.Err(), context.DeadlineExceeded) {
			reason = fmt.Sprintf("no answer within %s", timeout)
		}
		c.log.DebugContext(ctx, "keycloak call failed", "op", op, "package", pkg, "duration", elapsed, "reason", reason)
		return nil, &Error{Op: op, Package: pkg, Kind: ErrUnavailable, Reason: reason}
	}
	status := resp.StatusCode()
	c.log.DebugContext(ctx, "keycloak call", "op", op, "package", pkg, "status", status, "duration", elapsed)
	if !resp.IsError() {
		return resp, nil
	}
	var oauthErr, description, reason string
	if e, ok := resp.Error().(*gocloak.HTTPErrorResponse); ok && e != nil {
		oauthErr, description, reason = e.Error, e.Description, e.String()
	}
	kind := classifyStatus(status, tokenEndpoint, oauthErr)
	if unrecognisedRefusal(status, tokenEndpoint, oauthErr) {
		kind, reason = ErrUnavailable, "refusal without Keycloak's OAuth error body (a proxy in front of Keycloak?)"
	}
	ce := &Error{Op: op, Package: pkg, Status: status, Kind: kind, Reason: reason}
	if ce.Kind == ErrInvalidCredentials {
		ce.Refusal = classifyRefusal(description)
	}
	return nil, ce
}

// unrecognisedRefusal reports a 401 or 403 from the token endpoint that
// does not carry Keycloak's OAuth JSON error: Keycloak always names its
// refusals (invalid_grant, invalid_client, ...), so this one comes from
// something in front of it (a proxy, a WAF, a login page) and says nothing
// about the password. It is an outage: reading it as a wrong password would
// refuse every user, or mark every login as credential drift.
func unrecognisedRefusal(status int, tokenEndpoint bool, oauthErr string) bool {
	return tokenEndpoint && oauthErr == "" && (status == http.StatusUnauthorized || status == http.StatusForbidden)
}

// transportReason drops the request URL from a transport error: the text
// stays useful ("connection refused") and carries no query parameters.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// Token is a Keycloak token response. String and LogValue redact the tokens.
type Token struct {
	AccessToken      string
	RefreshToken     string
	ExpiresIn        int // seconds, as Keycloak sent it
	RefreshExpiresIn int // seconds; 0 for offline tokens
	TokenType        string
	// ExpiresAt and RefreshExpiresAt are computed from the time the request
	// was sent, so they are never later than Keycloak's own view.
	ExpiresAt        time.Time
	RefreshExpiresAt time.Time // zero when RefreshExpiresIn is 0
}

func (t Token) String() string {
	return fmt.Sprintf("keycloak.Token{type=%s expires=%s}", t.TokenType, t.ExpiresAt.Format(time.RFC3339))
}

// GoString keeps %#v from printing the tokens.
func (t Token) GoString() string { return t.String() }

// LogValue keeps slog from printing the tokens.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", t.TokenType), slog.Time("expires_at", t.ExpiresAt))
}

// Subject is the access token's "sub" claim: the user's Keycloak id. The
// token is not verified here; it came straight from Keycloak's token
// endpoint. Empty if the token carries none (a lightweight access token).
func (t Token) Subject() string {
	parts := strings.Split(t.AccessToken, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}

func toToken(j *gocloak.JWT, sent time.Time) Token {
	t := Token{
		AccessToken: j.AccessToken, RefreshToken: j.RefreshToken,
		ExpiresIn: j.ExpiresIn, RefreshExpiresIn: j.RefreshExpiresIn, TokenType: j.TokenType,
		ExpiresAt: sent.Add(time.Duration(j.ExpiresIn) * time.Second),
	}
	if j.RefreshExpiresIn > 0 {
		t.RefreshExpiresAt = sent.Add(time.Duration(j.RefreshExpiresIn) * time.Second)
	}
	return t
}

// grant posts a token request. The client authenticates with
// client_secret_post: unlike gocloak's Basic header it needs no extra
// encoding of ids or secrets with special characters.
func (c *Client) grant(ctx context.Context, op, pkg string, timeout time.Duration, userGrant bool, form map[string]string) (Token, error) {
	r, err := c.realm(pkg)
	if err != nil {
		return Token{}, err
	}
	form["client_id"] = r.ClientID
	form["client_secret"] = r.ClientSecret
	var jwt gocloak.JWT
	sent := c.now()
	_, err = c.call(ctx, op, pkg, timeout, userGrant, func(ctx context.Context) (*resty.Response, error) {
		req := c.gc.GetRequest(ctx).SetFormData(form).SetResult(&jwt)
		replayable(req.Header)
		return req.Post(c.tokenURL(r.Realm))
	})
	if err != nil {
		return Token{}, err
	}
	if jwt.AccessToken == "" {
		// A 2xx without a token is a broken proxy or server, not the user's fault.
		return Token{}, &Error{Op: op, Package: pkg, Kind: ErrUnavailable, Reason: "token response without access_token"}
	}
	return toToken(&jwt, sent), nil
}

// replayable lets net/http send a token request again on a fresh
// connection when the pooled one it chose turns out closed by the server
// before any answer (a keep-alive race), instead of failing the login as a
// Keycloak outage: the nil-valued Idempotency-Key marks the request
// replayable and is not sent on the wire. A request the server answered is
// never sent twice.
func replayable(h http.Header) { h["Idempotency-Key"] = nil }

// PasswordGrant implements Keycloak.
func (c *Client) PasswordGrant(ctx context.Context, pkg, username, password string) (Token, error) {
	return c.grant(ctx, "password grant", pkg, c.reqTimeout, true, map[string]string{
		"grant_type": "password", "username": username, "password": password,
	})
}

// Refresh implements Keycloak.
func (c *Client) Refresh(ctx context.Context, pkg, refreshToken string) (Token, error) {
	return c.grant(ctx, "refresh", pkg, c.reqTimeout, true, map[string]string{
		"grant_type": "refresh_token", "refresh_token": refreshToken,
	})
}

// serviceToken returns the package's service-account access token, fetching
// it at most once at a time per package however many callers need it.
func (c *Client) serviceToken(ctx context.Context, pkg string) (string, error) {
	c.mu.Lock()
	t, ok := c.tokens[pkg]
	c.mu.Unlock()
	if ok && c.now().Before(t.refreshAt) {
		return t.access, nil
	}
	// The shared fetch must not die with whichever caller started it, so it
	// runs detached from that caller's cancellation, bounded by AdminTimeout.
	ch := c.tokenFetch.DoChan(pkg, func() (any, error) {
		fctx := context.WithoutCancel(ctx)
		tok, err := c.grant(fctx, "service account token", pkg, c.adminTimeout, false,
			map[string]string{"grant_type": "client_credentials"})
		if err != nil {
			return "", err
		}
		life := time.Duration(tok.ExpiresIn) * time.Second
		ahead := min(c.refreshAhead, life/2)
		c.mu.Lock()
		c.tokens[pkg] = serviceToken{access: tok.AccessToken, refreshAt: tok.ExpiresAt.Add(-ahead)}
		c.mu.Unlock()
		return tok.AccessToken, nil
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("keycloak service account token [%s]: %w", pkg, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

// dropToken forgets a token Keycloak refused (revoked, realm keys rotated),
// unless another caller already replaced it.
func (c *Client) dropToken(pkg, access string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens[pkg].access == access {
		delete(c.tokens, pkg)
	}
}

// admin runs an authenticated admin call, retrying once with a fresh token
// if Keycloak answers 401 to the cached one.
func (c *Client) admin(ctx context.Context, op, pkg string,
	send func(ctx context.Context, r Realm, token string) (*resty.Response, error)) (*resty.Response, error) {
	r, err := c.realm(pkg)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.serviceToken(ctx, pkg)
		if err != nil {
			return nil, err
		}
		resp, err := c.call(ctx, op, pkg, c.adminTimeout, false, func(ctx context.Context) (*resty.Response, error) {
			return send(ctx, r, tok)
		})
		var e *Error
		if attempt == 0 && errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			c.dropToken(pkg, tok)
			continue
		}
		return resp, err
	}
}

// User is a Keycloak user as kcguard sees it.
type User struct {
	ID            string
	Username      string
	Email         string
	FirstName     string
	LastName      string
	Enabled       bool
	EmailVerified bool
	Attributes    map[string][]string
	CreatedAt     time.Time
	// RequiredActions (UPDATE_PASSWORD, VERIFY_EMAIL, ...): Keycloak refuses
	// password grants until they are done.
	RequiredActions []string
}

func fromGocloak(u *gocloak.User) User {
	out := User{
		ID: gocloak.PString(u.ID), Username: gocloak.PString(u.Username), Email: gocloak.PString(u.Email),
		FirstName: gocloak.PString(u.FirstName), LastName: gocloak.PString(u.LastName),
		Enabled: gocloak.PBool(u.Enabled), EmailVerified: gocloak.PBool(u.EmailVerified),
	}
	if u.Attributes != nil {
		out.Attributes = *u.Attributes
	}
	if u.CreatedTimestamp != nil {
		out.CreatedAt = time.UnixMilli(*u.CreatedTimestamp)
	}
	if u.RequiredActions != nil && len(*u.RequiredActions) > 0 {
		out.RequiredActions = *u.RequiredActions
	}
	return out
}

// GetUser implements Keycloak: GET /admin/realms/{realm}/users/{id}.
func (c *Client) GetUser(ctx context.Context, pkg, userID string) (User, error) {
	var u gocloak.User
	_, err := c.admin(ctx, "get user", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&u).Get(c.adminURL(r.Realm, "users", userID))
	})
	if err != nil {
		return User{}, err
	}
	return fromGocloak(&u), nil
}

// BruteForce is Keycloak's brute-force state of one user.
type BruteForce struct {
	// Locked: Keycloak refuses every password, right or wrong, until
	// LockedUntil (zero when locked until an administrator unlocks).
	Locked      bool
	LockedUntil time.Time
	Failures    int
}

// BruteForceStatus implements Keycloak: GET /admin/realms/{realm}/
// attack-detection/brute-force/users/{id}, which on 26.7.3 answers
// {"disabled":true,"failedLoginNotBefore":<epoch s>,"numFailures":n,...}
// for a locked user (and all zeros, 200, for an unknown id).
func (c *Client) BruteForceStatus(ctx context.Context, pkg, userID string) (BruteForce, error) {
	var st struct {
		Disabled             bool  `json:"disabled"`
		FailedLoginNotBefore int64 `json:"failedLoginNotBefore"`
		NumFailures          int   `json:"numFailures"`
	}
	_, err := c.admin(ctx, "brute-force status", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&st).
			Get(c.adminURL(r.Realm, "attack-detection", "brute-force", "users", userID))
	})
	if err != nil {
		return BruteForce{}, err
	}
	b := BruteForce{Locked: st.Disabled, Failures: st.NumFailures}
	if st.Disabled && st.FailedLoginNotBefore > 0 {
		b.LockedUntil = time.Unix(st.FailedLoginNotBefore, 0)
	}
	return b, nil
}

// FindUser implements Keycloak.
func (c *Client) FindUser(ctx context.Context, pkg, username string) (User, error) {
	var users []*gocloak.User
	_, err := c.admin(ctx, "find user", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).
			SetQueryParams(map[string]string{"username": username, "exact": "true", "briefRepresentation": "false"}).
			SetResult(&users).
			Get(c.adminURL(r.Realm, "users"))
	})
	if err != nil {
		return User{}, err
	}
	for _, u := range users {
		if strings.EqualFold(gocloak.PString(u.Username), username) {
			return fromGocloak(u), nil
		}
	}
	return User{}, &Error{Op: "find user", Package: pkg, Kind: ErrNotFound}
}

// UserSpec describes a user to create. The zero value of Disabled creates an
// enabled user.
type UserSpec struct {
	Username      string
	Email         string
	FirstName     string
	LastName      string
	Disabled      bool
	EmailVerified bool
	// Attributes are only kept by Keycloak if its user profile declares them
	// or allows unmanaged attributes (Keycloak ≥ 24 drops others silently).
	Attributes map[string][]string
	// Password, if not zero, becomes the user's password credential in the
	// same request, so the user never exists without one.
	Password credential.Hash
}

func passwordCredential(h credential.Hash) gocloak.CredentialRepresentation {
	return gocloak.CredentialRepresentation{
		Type:           gocloak.StringP("password"),
		Temporary:      gocloak.BoolP(false),
		SecretData:     gocloak.StringP(h.SecretData()),
		CredentialData: gocloak.StringP(h.CredentialData()),
	}
}

// CreateUser implements Keycloak.
func (c *Client) CreateUser(ctx context.Context, pkg string, spec UserSpec) (string, error) {
	u := gocloak.User{
		Username:      gocloak.StringP(spec.Username),
		Enabled:       gocloak.BoolP(!spec.Disabled),
		EmailVerified: gocloak.BoolP(spec.EmailVerified),
	}
	if spec.Email != "" {
		u.Email = gocloak.StringP(spec.Email)
	}
	if spec.FirstName != "" {
		u.FirstName = gocloak.StringP(spec.FirstName)
	}
	if spec.LastName != "" {
		u.LastName = gocloak.StringP(spec.LastName)
	}
	if spec.Attributes != nil {
		u.Attributes = &spec.Attributes
	}
	if !spec.Password.IsZero() {
		u.Credentials = &[]gocloak.CredentialRepresentation{passwordCredential(spec.Password)}
	}
	resp, err := c.admin(ctx, "create user", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetBody(u).Post(c.adminURL(r.Realm, "users"))
	})
	if err != nil {
		return "", err
	}
	loc := resp.Header().Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	if id == "" {
		return "", &Error{Op: "create user", Package: pkg, Kind: ErrUnavailable, Status: resp.StatusCode(),
			Reason: "created without a Location header"}
	}
	return id, nil
}

// UserUpdate lists the fields to change; nil fields are left as they are.
type UserUpdate struct {
	// Enabled true also clears a brute-force lockout of the user.
	Enabled   *bool
	Email     *string
	FirstName *string
	LastName  *string
	// Attributes, if non-nil, replaces the user's whole attribute set. As
	// with UserSpec, Keycloak ≥ 24 silently drops attributes its user
	// profile does not declare (verified on 26.7.3 with the local realms).
	Attributes map[string][]string
	// RequiredActions, if non-nil, replaces the user's required actions
	// (what an administrator does in the admin console; tests).
	RequiredActions *[]string
}

// UpdateUser implements Keycloak.
func (c *Client) UpdateUser(ctx context.Context, pkg, userID string, upd UserUpdate) error {
	u := gocloak.User{Enabled: upd.Enabled, Email: upd.Email, FirstName: upd.FirstName, LastName: upd.LastName,
		RequiredActions: upd.RequiredActions}
	if upd.Attributes != nil {
		u.Attributes = &upd.Attributes
	}
	return c.putUser(ctx, "update user", pkg, userID, u)
}

// ImportPasswordHash implements Keycloak: PUT /admin/realms/{realm}/users/{id}
// with only credentials:[{type:password, secretData, credentialData}].
// Keycloak 26 (UserResource.updateUser → RepresentationToModel.createCredentials
// → PasswordCredentialProvider.createCredential) replaces the existing
// password credential in place, moves the old one into the password history
// and stamps createdDate with its own clock; fields absent from the body are
// left unchanged.
func (c *Client) ImportPasswordHash(ctx context.Context, pkg, userID string, h credential.Hash) error {
	if h.IsZero() {
		return &Error{Op: "import password hash", Package: pkg, Kind: ErrRejected, Reason: "empty hash"}
	}
	return c.putUser(ctx, "import password hash", pkg, userID, gocloak.User{
		Credentials: &[]gocloak.CredentialRepresentation{passwordCredential(h)},
	})
}

func (c *Client) putUser(ctx context.Context, op, pkg, userID string, u gocloak.User) error {
	_, err := c.admin(ctx, op, pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetBody(u).Put(c.adminURL(r.Realm, "users", userID))
	})
	return err
}

// PasswordCredentialCreatedAt implements Keycloak.
func (c *Client) PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error) {
	var creds []*gocloak.CredentialRepresentation
	_, err := c.admin(ctx, "get credentials", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).SetResult(&creds).
			Get(c.adminURL(r.Realm, "users", userID, "credentials"))
	})
	if err != nil {
		return time.Time{}, err
	}
	for _, cr := range creds {
		if gocloak.PString(cr.Type) == "password" && cr.CreatedDate != nil {
			return time.UnixMilli(*cr.CreatedDate), nil
		}
	}
	return time.Time{}, &Error{Op: "get credentials", Package: pkg, Kind: ErrNotFound, Reason: "user has no password"}
}

// LogoutUser implements Keycloak.
func (c *Client) LogoutUser(ctx context.Context, pkg, userID string) error {
	_, err := c.admin(ctx, "logout user", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).Post(c.adminURL(r.Realm, "users", userID, "logout"))
	})
	return err
}

// DeleteUser implements Keycloak.
func (c *Client) DeleteUser(ctx context.Context, pkg, userID string) error {
	_, err := c.admin(ctx, "delete user", pkg, func(ctx context.Context, r Realm, tok string) (*resty.Response, error) {
		return c.gc.GetRequestWithBearerAuth(ctx, tok).Delete(c.adminURL(r.Realm, "users", userID))
	})
	return err
}

// Ping implements Keycloak: GET the ping package's realm OpenID discovery
// document. It is public, so it spends no token and starts no session.
// Its errors are classified like any call's: no answer or a 5xx is an
// outage (IsOutage), so the breaker stays open.
func (c *Client) Ping(ctx context.Context) error {
	r := c.packages[c.pingPackage]
	_, err := c.call(ctx, "ping", c.pingPackage, c.reqTimeout, false, func(ctx context.Context) (*resty.Response, error) {
		return c.gc.GetRequest(ctx).
			Get(c.baseURL + "/realms/" + url.PathEscape(r.Realm) + "/.well-known/openid-configuration")
	})
	return err
}
