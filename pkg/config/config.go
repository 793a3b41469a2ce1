// Package config loads kcguard's one Config: defaults, then a YAML file
// (local runs and the CLI), then environment variables (Lambda). Validate
// reports every problem at once so an operator fixes a config in one pass.
//
// AWS endpoints are not configured here: the SDK's standard variables
// (AWS_REGION, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, ...) point the
// same binaries at moto locally and at AWS in production.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
)

// Config is everything a kcguard function or command needs to know.
type Config struct {
	Keycloak Keycloak `yaml:"keycloak"`
	Tables   Tables   `yaml:"tables"`
	Sync     Sync     `yaml:"sync"`
	// KMSKeyID encrypts cached Keycloak tokens at rest (key id, ARN or alias).
	KMSKeyID   string     `yaml:"kms_key_id" env:"KCGUARD_KMS_KEY_ID"`
	Lockout    Lockout    `yaml:"lockout"`
	Audit      Audit      `yaml:"audit"`
	Password   Password   `yaml:"password"`
	Sessions   Sessions   `yaml:"sessions"`
	Cleanup    Cleanup    `yaml:"cleanup"`
	API        API        `yaml:"api"`
	Log        Log        `yaml:"log"`
	Pull       Pull       `yaml:"pull"`
	Authorizer Authorizer `yaml:"authorizer"`
	Alerts     Alerts     `yaml:"alerts"`
	AWS        AWS        `yaml:"aws"`
}

// Alerts is where operators hear about breaker transitions.
type Alerts struct {
	// TopicARN is the SNS topic the winner of each breaker transition
	// publishes to (opened, closed). Empty: transitions are only logged.
	TopicARN string `yaml:"topic_arn" env:"KCGUARD_ALERTS_TOPIC_ARN"`
	// DailySummaryHour is the UTC hour from which the first cleanup run of
	// each day publishes every package's summary report to TopicARN (e-mail
	// subscribers read it). Default 7; -1 turns the daily summary off.
	DailySummaryHour int `yaml:"daily_summary_hour" env:"KCGUARD_ALERTS_DAILY_SUMMARY_HOUR"`
}

// AWS bounds every AWS SDK call (DynamoDB, SQS, KMS, SNS, Secrets Manager,
// Lambda), so a brownout answers 503 instead of hanging the request.
type AWS struct {
	// AttemptTimeout bounds one HTTP attempt of an SDK call. Default 2s.
	AttemptTimeout time.Duration `yaml:"attempt_timeout" env:"KCGUARD_AWS_ATTEMPT_TIMEOUT"`
	// CallBudget bounds one SDK call with all its retries. Default 4s:
	// a login makes a handful of calls in sequence, and the first one
	// that runs out ends the request, well inside API Gateway's 30s.
	CallBudget time.Duration `yaml:"call_budget" env:"KCGUARD_AWS_CALL_BUDGET"`
	// MaxAttempts is the SDK's attempts per call (1 = no retry). Default 3;
	// CallBudget cuts retries short whatever this is.
	MaxAttempts int `yaml:"max_attempts" env:"KCGUARD_AWS_MAX_ATTEMPTS"`
}

// Keycloak is where the second authentication tier lives.
type Keycloak struct {
	// URL is the Keycloak base URL (no /realms suffix).
	URL string `yaml:"url" env:"KCGUARD_KEYCLOAK_URL"`
	// Timeout bounds one password grant or refresh: a login never waits
	// longer than this on Keycloak.
	Timeout time.Duration `yaml:"timeout" env:"KCGUARD_KEYCLOAK_TIMEOUT"`
	// ParallelGrant starts the Keycloak grant alongside the local hash check
	// for users with no failed attempt on record (see
	// auth.Settings.ParallelKeycloak). Default on; false runs the two in
	// sequence.
	ParallelGrant bool `yaml:"parallel_grant" env:"KCGUARD_KEYCLOAK_PARALLEL_GRANT"`
	// LearnOnLogin checks usernames unknown locally against Keycloak and
	// stores those it accepts (see auth.Settings.LearnOnLogin for the
	// timing trade-off). Default off.
	LearnOnLogin bool `yaml:"learn_on_login" env:"KCGUARD_KEYCLOAK_LEARN_ON_LOGIN"`
	// AdminTimeout bounds admin API calls (sync, migration).
	AdminTimeout time.Duration `yaml:"admin_timeout" env:"KCGUARD_KEYCLOAK_ADMIN_TIMEOUT"`
	// Packages maps a package (tenant) to its realm and client. In Lambda it
	// comes as JSON in KCGUARD_PACKAGES.
	Packages map[string]Package `yaml:"packages" env:"KCGUARD_PACKAGES"`
	// SecretsID names a Secrets Manager secret holding a JSON object
	// {"<package>": "<client secret>"}; empty means secrets come from
	// KCGUARD_KEYCLOAK_SECRET_<PACKAGE> or the YAML file (local only).
	SecretsID  string     `yaml:"secrets_id" env:"KCGUARD_KEYCLOAK_SECRETS_ID"`
	Resilience Resilience `yaml:"resilience"`
}

// Package is one tenant: a Keycloak realm and the confidential client
// kcguard uses in it (password grant and service account).
type Package struct {
	Realm        string `yaml:"realm"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
}

// Resilience keeps the setting names operators know from the original system.
type Resilience struct {
	Enabled          bool `yaml:"enabled" env:"KCGUARD_RESILIENCE_ENABLED"`
	FailureThreshold int  `yaml:"failure_threshold" env:"KCGUARD_RESILIENCE_FAILURE_THRESHOLD"`
	CooldownSeconds  int  `yaml:"cooldown_seconds" env:"KCGUARD_RESILIENCE_COOLDOWN_SECONDS"`
	// TokenGracePeriodHours is how long a cached Keycloak token may stand
	// in for Keycloak during an outage: 1..168, default 24
	// (tokencache.DefaultGracePeriod). There is no 0: allow_offline_mode
	// decides whether logins go on without Keycloak at all.
	TokenGracePeriodHours int  `yaml:"token_grace_period_hours" env:"KCGUARD_RESILIENCE_TOKEN_GRACE_PERIOD_HOURS"`
	AllowOfflineMode      bool `yaml:"allow_offline_mode" env:"KCGUARD_RESILIENCE_ALLOW_OFFLINE_MODE"`
	// HealthCheckCacheSeconds is how long an instance trusts its copy of
	// the fleet's breaker state: 1..300 and not above cooldown_seconds,
	// default 30 (breaker.DefaultStateCacheTTL). There is no 0: every
	// login reading the shared item would only add a DynamoDB call.
	HealthCheckCacheSeconds int `yaml:"health_check_cache_seconds" env:"KCGUARD_RESILIENCE_HEALTH_CHECK_CACHE_SECONDS"`
	// OfflineCredentialsExpirationDays refuses local and cached logins
	// during an outage to users Keycloak has not confirmed (login, sync,
	// pull) for this many days (SSSD's offline_credentials_expiration).
	// 0, the default, means no limit.
	OfflineCredentialsExpirationDays int `yaml:"offline_credentials_expiration_days" env:"KCGUARD_RESILIENCE_OFFLINE_CREDENTIALS_EXPIRATION_DAYS"`
}

// OfflineWindow is OfflineCredentialsExpirationDays as a duration (0: no limit).
func (r Resilience) OfflineWindow() time.Duration {
	return time.Duration(r.OfflineCredentialsExpirationDays) * 24 * time.Hour
}

// Cooldown is CooldownSeconds as a duration.
func (r Resilience) Cooldown() time.Duration { return time.Duration(r.CooldownSeconds) * time.Second }

// GracePeriod is how long a cached Keycloak token may stand in for Keycloak.
func (r Resilience) GracePeriod() time.Duration {
	return time.Duration(r.TokenGracePeriodHours) * time.Hour
}

// StateCacheTTL is how long an instance trusts its copy of the breaker state.
func (r Resilience) StateCacheTTL() time.Duration {
	return time.Duration(r.HealthCheckCacheSeconds) * time.Second
}

// Tables are the physical DynamoDB table names.
type Tables struct {
	Users    string `yaml:"users" env:"KCGUARD_TABLE_USERS"`
	Sessions string `yaml:"sessions" env:"KCGUARD_TABLE_SESSIONS"`
	Tokens   string `yaml:"tokens" env:"KCGUARD_TABLE_TOKENS"`
	Breaker  string `yaml:"breaker" env:"KCGUARD_TABLE_BREAKER"`
	Audit    string `yaml:"audit" env:"KCGUARD_TABLE_AUDIT"`
	// Journal is the sync journal (each queued job's status). Empty turns
	// the journal off; the sync itself does not depend on it.
	Journal string `yaml:"journal" env:"KCGUARD_TABLE_JOURNAL"`
}

// Sync is the queue that carries changes to Keycloak.
type Sync struct {
	Queue string `yaml:"queue" env:"KCGUARD_SYNC_QUEUE"`
	DLQ   string `yaml:"dlq" env:"KCGUARD_SYNC_DLQ"`
	// MaxReceiveCount is how many failed deliveries move a job to the DLQ.
	MaxReceiveCount int `yaml:"max_receive_count" env:"KCGUARD_SYNC_MAX_RECEIVE_COUNT"`
	// VisibilityTimeoutSeconds must exceed the worker's own timeout.
	VisibilityTimeoutSeconds int `yaml:"visibility_timeout_seconds" env:"KCGUARD_SYNC_VISIBILITY_TIMEOUT_SECONDS"`
	// JournalRetention is how long a sync journal entry lives after its
	// last status change (DynamoDB TTL). Default 7 days.
	JournalRetention time.Duration `yaml:"journal_retention" env:"KCGUARD_SYNC_JOURNAL_RETENTION"`
	// ConflictPolicy decides when Keycloak's password is newer than the
	// local change being synced: "local_wins" (default) imports the local
	// hash anyway; "keycloak_wins" skips it and records the drift.
	ConflictPolicy string `yaml:"conflict_policy" env:"KCGUARD_SYNC_CONFLICT_POLICY"`
	// WorkerFunction is the sync worker's Lambda function name (or ARN).
	// With it, the instance that opens the breaker disables the worker's
	// SQS event source mapping and the one that closes it enables it, so no
	// queued change burns a receive during an outage. Empty: no mapping to
	// control (local: `kcguard sync run` pauses by itself).
	WorkerFunction string `yaml:"worker_function" env:"KCGUARD_SYNC_WORKER_FUNCTION"`
	// EventSourceMapping is the mapping's UUID, if known. Empty: it is
	// found by ListEventSourceMappings(worker_function, queue ARN); the
	// worker cannot be given its own mapping's UUID without a
	// CloudFormation cycle, the other functions can.
	EventSourceMapping string `yaml:"event_source_mapping" env:"KCGUARD_SYNC_EVENT_SOURCE_MAPPING"`
}

// Lockout is the offline brute-force protection of the local tier.
type Lockout struct {
	// MaxFailures is how many failed local checks are free before delays start.
	MaxFailures int `yaml:"max_failures" env:"KCGUARD_LOCKOUT_MAX_FAILURES"`
	// Delay is the first delay; each further failure adds another Delay
	// (Keycloak's wait increment), up to MaxDelay.
	Delay    time.Duration `yaml:"delay" env:"KCGUARD_LOCKOUT_DELAY"`
	MaxDelay time.Duration `yaml:"max_delay" env:"KCGUARD_LOCKOUT_MAX_DELAY"`
	// SourceMaxFailures failed checks from one client address, across any
	// usernames, are free; then the address gets 429 too_many_requests for
	// SourceDelay, growing by SourceDelay per failure up to SourceMaxDelay,
	// before it can lock the users it names. -1 turns it off.
	SourceMaxFailures int           `yaml:"source_max_failures" env:"KCGUARD_LOCKOUT_SOURCE_MAX_FAILURES"`
	SourceDelay       time.Duration `yaml:"source_delay" env:"KCGUARD_LOCKOUT_SOURCE_DELAY"`
	SourceMaxDelay    time.Duration `yaml:"source_max_delay" env:"KCGUARD_LOCKOUT_SOURCE_MAX_DELAY"`
}

// Audit is the audit trail.
type Audit struct {
	// UsernameHMACKey keys the HMAC-SHA256 that the trail keeps instead of
	// an unknown username (it may be a password typed in the wrong field)
	// and that names client addresses in the source throttle. In AWS it can
	// also come from the Secrets Manager secret (entry
	// "_audit_username_hmac_key"). Empty: a random key per process, so
	// pseudonyms cannot be correlated across instances.
	UsernameHMACKey string `yaml:"username_hmac_key" env:"KCGUARD_AUDIT_USERNAME_HMAC_KEY"`
}

// Password is the policy for new passwords.
type Password struct {
	MinLength int `yaml:"min_length" env:"KCGUARD_PASSWORD_MIN_LENGTH"`
	// Algorithm is the local hash: "argon2" or "pbkdf2-sha512" (both importable into Keycloak).
	Algorithm string `yaml:"algorithm" env:"KCGUARD_PASSWORD_ALGORITHM"`
	// RevokeOtherSessions ends the user's other sessions after a change.
	RevokeOtherSessions bool `yaml:"revoke_other_sessions" env:"KCGUARD_PASSWORD_REVOKE_OTHER_SESSIONS"`
}

// Sessions are kcguard's own login sessions.
type Sessions struct {
	IdleTimeout time.Duration `yaml:"idle_timeout" env:"KCGUARD_SESSIONS_IDLE_TIMEOUT"`
	MaxLifetime time.Duration `yaml:"max_lifetime" env:"KCGUARD_SESSIONS_MAX_LIFETIME"`
	// MaxPerUser caps one user's live sessions: a login beyond it ends the
	// user's oldest session: 1..1000, default 10
	// (sessions.DefaultMaxPerUser); -1 turns the cap off. There is no 0.
	MaxPerUser int `yaml:"max_per_user" env:"KCGUARD_SESSIONS_MAX_PER_USER"`
}

// Cleanup is the scheduled maintenance run (functions/cleanup,
// `kcguard cleanup run`). Every step is bounded in items and in time; a run
// that reaches a bound stops cleanly and the next run continues. The sync
// journal it purges keeps sync.journal_retention.
type Cleanup struct {
	// ScheduleMinutes is how often the run is scheduled (EventBridge rate,
	// and `kcguard cleanup run --schedule` locally). Default 5.
	ScheduleMinutes int `yaml:"schedule_minutes" env:"KCGUARD_CLEANUP_SCHEDULE_MINUTES"`
	// RefreshWindow: cached Keycloak tokens whose access token expires
	// within it are refreshed ahead. Default 10m.
	RefreshWindow time.Duration `yaml:"refresh_window" env:"KCGUARD_CLEANUP_REFRESH_WINDOW"`
	// RefreshLimit bounds the tokens refreshed per run. Default 200.
	RefreshLimit int `yaml:"refresh_limit" env:"KCGUARD_CLEANUP_REFRESH_LIMIT"`
	// RefreshConcurrency bounds parallel refresh calls to Keycloak. Default 4.
	RefreshConcurrency int `yaml:"refresh_concurrency" env:"KCGUARD_CLEANUP_REFRESH_CONCURRENCY"`
	// DeleteLimit bounds the expired sessions, and separately the expired
	// cached tokens, deleted per run. Default 5000.
	DeleteLimit int `yaml:"delete_limit" env:"KCGUARD_CLEANUP_DELETE_LIMIT"`
	// ReconcileLimit bounds the unsynced users re-queued per run. Default 500.
	ReconcileLimit int `yaml:"reconcile_limit" env:"KCGUARD_CLEANUP_RECONCILE_LIMIT"`
	// StepTimeout bounds each step; TimeBudget bounds the whole run and
	// must stay below the function's timeout. Defaults 60s and 4m.
	StepTimeout time.Duration `yaml:"step_timeout" env:"KCGUARD_CLEANUP_STEP_TIMEOUT"`
	TimeBudget  time.Duration `yaml:"time_budget" env:"KCGUARD_CLEANUP_TIME_BUDGET"`
}

// API is the local HTTP server (`kcguard serve`) and request limits.
type API struct {
	Addr         string `yaml:"addr" env:"KCGUARD_API_ADDR"`
	MaxBodyBytes int    `yaml:"max_body_bytes" env:"KCGUARD_API_MAX_BODY_BYTES"`
	// AdminKey guards /admin routes locally; in AWS they use IAM auth.
	AdminKey string `yaml:"admin_key" env:"KCGUARD_ADMIN_KEY"`
	// AdminPrincipals are the IAM caller ARNs (as API Gateway reports
	// them: a user or assumed-role session ARN; a trailing "*" matches any
	// session of a role) allowed on /admin routes. IAM authorisation alone
	// only proves the caller may invoke the API; empty means no IAM caller
	// is an administrator. Env: a JSON array or a comma-separated list.
	AdminPrincipals []string `yaml:"admin_principals" env:"KCGUARD_ADMIN_PRINCIPALS"`
}

// Pull is `kcguard sync pull` and the scheduled functions/pull: Keycloak's
// admin and user events applied to the local store.
type Pull struct {
	// ScheduleMinutes is how often the pull is scheduled (EventBridge
	// rate). Default 1: a disable in Keycloak reaches kcguard within the
	// schedule plus one pull.
	ScheduleMinutes int `yaml:"schedule_minutes" env:"KCGUARD_PULL_SCHEDULE_MINUTES"`
	// MaxGap is the oldest cursor events are trusted for; an older one
	// (missed runs, expired events) makes the run compare every user page
	// by page. Keep it below the realm's events expiration. Default 1h.
	MaxGap time.Duration `yaml:"max_gap" env:"KCGUARD_PULL_MAX_GAP"`
	// CompareEvery forces a full compare this often. Default 24h.
	CompareEvery time.Duration `yaml:"compare_every" env:"KCGUARD_PULL_COMPARE_EVERY"`
	// PageSize of Keycloak event and user pages. Default 100.
	PageSize int `yaml:"page_size" env:"KCGUARD_PULL_PAGE_SIZE"`
}

// Authorizer is the API Gateway Lambda authorizer for downstream APIs.
type Authorizer struct {
	// DenyDegradedRoutes are route keys ("POST /payments", as API Gateway
	// sends them in routeKey) refused to sessions made without Keycloak
	// (auth_mode local or cached). Empty: every route allows them.
	DenyDegradedRoutes []string `yaml:"deny_degraded_routes" env:"KCGUARD_AUTHORIZER_DENY_DEGRADED_ROUTES"`
}

// Log configures slog.
type Log struct {
	Level  string `yaml:"level" env:"KCGUARD_LOG_LEVEL"`
	Format string `yaml:"format" env:"KCGUARD_LOG_FORMAT"` // json or text
}

// Default is the configuration with every default filled in. A setting
// that a package also defaults takes that package's exported default, so a
// key left out of the configuration and a zero in the package's own
// Settings mean the same. What only the configuration knows (names,
// schedules, SQS and AWS SDK bounds, logging) is written here.
func Default() Config {
	return Config{
		Keycloak: Keycloak{
			URL:           "http://127.0.0.1:8180",
			Timeout:       keycloak.DefaultRequestTimeout,
			AdminTimeout:  keycloak.DefaultAdminTimeout,
			ParallelGrant: true,
			Packages:      map[string]Package{},
			Resilience: Resilience{
				Enabled:                 true,
				FailureThreshold:        breaker.DefaultFailureThreshold,
				CooldownSeconds:         int(breaker.DefaultCooldown / time.Second),
				TokenGracePeriodHours:   int(tokencache.DefaultGracePeriod / time.Hour),
				AllowOfflineMode:        true,
				HealthCheckCacheSeconds: int(breaker.DefaultStateCacheTTL / time.Second),
			},
		},
		Tables: Tables{
			Users:    "kcguard-users",
			Sessions: "kcguard-sessions",
			Tokens:   "kcguard-tokens",
			Breaker:  "kcguard-breaker",
			Audit:    "kcguard-audit",
			Journal:  "kcguard-sync-journal",
		},
		Pull: Pull{ScheduleMinutes: 1, MaxGap: pull.DefaultMaxGap, CompareEvery: pull.DefaultCompareEvery,
			PageSize: pull.DefaultPageSize},
		Alerts: Alerts{DailySummaryHour: 7},
		Sync: Sync{
			Queue:                    "kcguard-sync.fifo",
			DLQ:                      "kcguard-sync-dlq.fifo",
			MaxReceiveCount:          5,
			VisibilityTimeoutSeconds: 120,
			JournalRetention:         journal.DefaultRetention,
			ConflictPolicy:           string(syncjob.LocalWins),
		},
		KMSKeyID: "alias/kcguard-tokens",
		Lockout: Lockout{MaxFailures: auth.DefaultMaxFailures, Delay: auth.DefaultFailureDelay,
			MaxDelay: auth.DefaultMaxFailureDelay, SourceMaxFailures: auth.DefaultSourceMaxFailures,
			SourceDelay: auth.DefaultSourceDelay, SourceMaxDelay: auth.DefaultSourceMaxDelay},
		Password: Password{MinLength: credential.DefaultMinLength, Algorithm: string(credential.Argon2),
			RevokeOtherSessions: true},
		Sessions: Sessions{IdleTimeout: auth.DefaultSessionIdle, MaxLifetime: auth.DefaultSessionLifetime,
			MaxPerUser: sessions.DefaultMaxPerUser},
		Cleanup: Cleanup{ScheduleMinutes: 5, RefreshWindow: cleanup.DefaultRefreshWindow,
			RefreshLimit: cleanup.DefaultRefreshLimit, RefreshConcurrency: cleanup.DefaultRefreshConcurrency,
			DeleteLimit: cleanup.DefaultDeleteLimit, ReconcileLimit: cleanup.DefaultReconcileLimit,
			StepTimeout: cleanup.DefaultStepTimeout, TimeBudget: cleanup.DefaultTimeBudget},
		API: API{Addr: "127.0.0.1:3000", MaxBodyBytes: 8 << 10},
		Log: Log{Level: "info", Format: "json"},
		AWS: AWS{AttemptTimeout: 2 * time.Second, CallBudget: 4 * time.Second, MaxAttempts: 3},
	}
}

// Load builds the Config: defaults, then the YAML file at path (skipped when
// path is empty), then the environment. It does not validate.
func Load(path string) (Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup func(string) (string, bool)) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true) // a misspelt setting is an error, not a silent default
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, errIOEOF) {
			return cfg, fmt.Errorf("parse %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, lookup); err != nil {
		return cfg, err
	}
	applySecretEnv(&cfg, lookup)
	return cfg, nil
}

// SecretEnvName is the variable that carries a package's client secret locally.
func SecretEnvName(pkg string) string {
	return "KCGUARD_KEYCLOAK_SECRET_" + strings.ToUpper(nonWord.ReplaceAllString(pkg, "_"))
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]`)

func applySecretEnv(cfg *Config, lookup func(string) (string, bool)) {
	for name, p := range cfg.Keycloak.Packages {
		if v, ok := lookup(SecretEnvName(name)); ok {
			p.ClientSecret = v
			cfg.Keycloak.Packages[name] = p
		}
	}
}

// PackageNames lists the configured packages in order.
func (c Config) PackageNames() []string {
	names := make([]string, 0, len(c.Keycloak.Packages))
	for n := range c.Keycloak.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PackageOfRealm names the package configured for a Keycloak realm.
func (c Config) PackageOfRealm(realm string) (string, bool) {
	for _, name := range c.PackageNames() {
		if c.Keycloak.Packages[name].Realm == realm {
			return name, true
		}
	}
	return "", false
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if err := checkKeycloakURL(c.Keycloak.URL); err != "" {
		add("keycloak.url %q %s", c.Keycloak.URL, err)
	}
	if c.Keycloak.Timeout <= 0 || c.Keycloak.Timeout > 30*time.Second {
		add("keycloak.timeout %s must be in (0, 30s]", c.Keycloak.Timeout)
	}
	if c.Keycloak.AdminTimeout <= 0 || c.Keycloak.AdminTimeout > 5*time.Minute {
		add("keycloak.admin_timeout %s must be in (0, 5m]", c.Keycloak.AdminTimeout)
	}
	if len(c.Keycloak.Packages) == 0 {
		add("keycloak.packages: at least one package is needed")
	}
	for _, name := range c.PackageNames() {
		pk := c.Keycloak.Packages[name]
		if !packageNameOK(name) {
			add("keycloak.packages.%s: package names are lower-case letters, digits, '-' and '_'", name)
		}
		if pk.Realm == "" {
			add("keycloak.packages.%s.realm is empty", name)
		}
		if pk.ClientID == "" {
			add("keycloak.packages.%s.client_id is empty", name)
		}
	}
	r := c.Keycloak.Resilience
	between := func(name string, v, lo, hi int) {
		if v < lo || v > hi {
			add("keycloak.resilience.%s = %d, must be between %d and %d", name, v, lo, hi)
		}
	}
	between("failure_threshold", r.FailureThreshold, 1, 100)
	between("cooldown_seconds", r.CooldownSeconds, 1, 3600)
	between("token_grace_period_hours", r.TokenGracePeriodHours, 1, 168)
	between("health_check_cache_seconds", r.HealthCheckCacheSeconds, 1, 300)
	between("offline_credentials_expiration_days", r.OfflineCredentialsExpirationDays, 0, 3650)
	if r.HealthCheckCacheSeconds > r.CooldownSeconds && r.CooldownSeconds > 0 {
		add("keycloak.resilience.health_check_cache_seconds (%d) must not exceed cooldown_seconds (%d)",
			r.HealthCheckCacheSeconds, r.CooldownSeconds)
	}
	for name, v := range map[string]string{
		"tables.users": c.Tables.Users, "tables.sessions": c.Tables.Sessions, "tables.tokens": c.Tables.Tokens,
		"tables.breaker": c.Tables.Breaker, "tables.audit": c.Tables.Audit,
	} {
		if !tableNameOK(v) {
			add("%s %q is not a valid DynamoDB table name", name, v)
		}
	}
	for name, v := range map[string]string{"sync.queue": c.Sync.Queue, "sync.dlq": c.Sync.DLQ} {
		if !strings.HasSuffix(v, ".fifo") || len(v) > 80 {
			add("%s %q must be a FIFO queue name (ending in .fifo, at most 80 characters)", name, v)
		}
	}
	if c.Sync.Queue == c.Sync.DLQ {
		add("sync.dlq must differ from sync.queue")
	}
	if c.Sync.MaxReceiveCount < 1 || c.Sync.MaxReceiveCount > 1000 {
		add("sync.max_receive_count = %d, must be between 1 and 1000", c.Sync.MaxReceiveCount)
	}
	if c.Sync.VisibilityTimeoutSeconds < 1 || c.Sync.VisibilityTimeoutSeconds > 43200 {
		add("sync.visibility_timeout_seconds = %d, must be between 1 and 43200", c.Sync.VisibilityTimeoutSeconds)
	}
	if c.Tables.Journal != "" && !tableNameOK(c.Tables.Journal) {
		add("tables.journal %q is not a valid DynamoDB table name", c.Tables.Journal)
	}
	if c.Sync.JournalRetention < time.Hour || c.Sync.JournalRetention > 365*24*time.Hour {
		add("sync.journal_retention %s must be between 1h and 8760h (365 days)", c.Sync.JournalRetention)
	}
	if c.Sync.ConflictPolicy != "local_wins" && c.Sync.ConflictPolicy != "keycloak_wins" {
		add("sync.conflict_policy %q must be local_wins or keycloak_wins", c.Sync.ConflictPolicy)
	}
	if c.KMSKeyID == "" {
		add("kms_key_id is empty: cached Keycloak tokens must be encrypted")
	}
	if c.Lockout.MaxFailures < 1 {
		add("lockout.max_failures = %d, must be at least 1", c.Lockout.MaxFailures)
	}
	if c.Lockout.Delay <= 0 || c.Lockout.MaxDelay < c.Lockout.Delay {
		add("lockout.delay (%s) must be positive and not above lockout.max_delay (%s)", c.Lockout.Delay, c.Lockout.MaxDelay)
	}
	if c.Lockout.SourceMaxFailures == 0 || c.Lockout.SourceMaxFailures < -1 {
		add("lockout.source_max_failures = %d, must be at least 1 (or -1: off)", c.Lockout.SourceMaxFailures)
	}
	if c.Lockout.SourceMaxFailures > 0 && (c.Lockout.SourceDelay <= 0 || c.Lockout.SourceMaxDelay < c.Lockout.SourceDelay) {
		add("lockout.source_delay (%s) must be positive and not above lockout.source_max_delay (%s)", c.Lockout.SourceDelay, c.Lockout.SourceMaxDelay)
	}
	if c.Password.MinLength < 8 || c.Password.MinLength > 1024 {
		add("password.min_length = %d, must be between 8 and 1024", c.Password.MinLength)
	}
	if c.Password.Algorithm != "argon2" && c.Password.Algorithm != "pbkdf2-sha512" {
		add("password.algorithm %q must be argon2 or pbkdf2-sha512", c.Password.Algorithm)
	}
	if c.Sessions.MaxPerUser == 0 || c.Sessions.MaxPerUser < -1 || c.Sessions.MaxPerUser > 1000 {
		add("sessions.max_per_user = %d, must be between 1 and 1000 (or -1: no cap)", c.Sessions.MaxPerUser)
	}
	for _, p := range c.API.AdminPrincipals {
		if !strings.HasPrefix(p, "arn:") || strings.ContainsAny(p, " \t") || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			add("api.admin_principals: %q is not an IAM ARN (a trailing * is the only wildcard)", p)
		}
	}
	if c.Sessions.IdleTimeout <= 0 || c.Sessions.MaxLifetime < c.Sessions.IdleTimeout {
		add("sessions.idle_timeout (%s) must be positive and not above sessions.max_lifetime (%s)",
			c.Sessions.IdleTimeout, c.Sessions.MaxLifetime)
	}
	cl := c.Cleanup
	for _, b := range []struct {
		name      string
		v, lo, hi int
	}{
		{"schedule_minutes", cl.ScheduleMinutes, 1, 1440},
		{"refresh_limit", cl.RefreshLimit, 1, 100000},
		{"refresh_concurrency", cl.RefreshConcurrency, 1, 64},
		{"delete_limit", cl.DeleteLimit, 1, 1000000},
		{"reconcile_limit", cl.ReconcileLimit, 1, 1000000},
	} {
		if b.v < b.lo || b.v > b.hi {
			add("cleanup.%s = %d, must be between %d and %d", b.name, b.v, b.lo, b.hi)
		}
	}
	if cl.RefreshWindow <= 0 || cl.RefreshWindow > 24*time.Hour {
		add("cleanup.refresh_window %s must be in (0, 24h]", cl.RefreshWindow)
	}
	// The gauges get a reserve after the budget (cleanup.GaugeReserve, 15s);
	// the function's timeout must cover both, and Lambda stops at 15m.
	if cl.StepTimeout <= 0 || cl.TimeBudget < cl.StepTimeout || cl.TimeBudget > 14*time.Minute {
		add("cleanup.step_timeout (%s) must be positive and not above cleanup.time_budget (%s), which must not exceed 14m (Lambda stops at 15m)",
			cl.StepTimeout, cl.TimeBudget)
	}
	if c.Pull.ScheduleMinutes < 1 || c.Pull.ScheduleMinutes > 60 {
		add("pull.schedule_minutes = %d, must be between 1 and 60", c.Pull.ScheduleMinutes)
	}
	if c.Pull.MaxGap < 2*time.Duration(c.Pull.ScheduleMinutes)*time.Minute || c.Pull.MaxGap > 30*24*time.Hour {
		add("pull.max_gap %s must be at least twice pull.schedule_minutes and at most 720h", c.Pull.MaxGap)
	}
	if c.Pull.CompareEvery < c.Pull.MaxGap {
		add("pull.compare_every %s must not be below pull.max_gap %s", c.Pull.CompareEvery, c.Pull.MaxGap)
	}
	if c.Pull.PageSize < 1 || c.Pull.PageSize > 1000 {
		add("pull.page_size = %d, must be between 1 and 1000", c.Pull.PageSize)
	}
	for _, r := range c.Authorizer.DenyDegradedRoutes {
		if method, path, ok := strings.Cut(r, " "); !ok || method == "" || !strings.HasPrefix(path, "/") {
			add("authorizer.deny_degraded_routes: %q is not a route key like \"POST /payments\"", r)
		}
	}
	if c.API.MaxBodyBytes < 256 || c.API.MaxBodyBytes > 1<<20 {
		add("api.max_body_bytes = %d, must be between 256 and 1048576", c.API.MaxBodyBytes)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	if c.AWS.AttemptTimeout <= 0 || c.AWS.CallBudget < c.AWS.AttemptTimeout || c.AWS.CallBudget > 25*time.Second {
		add("aws.attempt_timeout (%s) must be positive and not above aws.call_budget (%s), which must not exceed 25s (API Gateway answers 504 at 30s)",
			c.AWS.AttemptTimeout, c.AWS.CallBudget)
	}
	if c.AWS.MaxAttempts < 1 || c.AWS.MaxAttempts > 10 {
		add("aws.max_attempts = %d, must be between 1 and 10", c.AWS.MaxAttempts)
	}
	if a := c.Alerts.TopicARN; a != "" && !strings.HasPrefix(a, "arn:") {
		add("alerts.topic_arn %q is not an ARN", a)
	}
	if h := c.Alerts.DailySummaryHour; h < -1 || h > 23 {
		add("alerts.daily_summary_hour = %d, must be a UTC hour 0..23 or -1 (off)", h)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format %q must be json or text", c.Log.Format)
	}
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Problems: p}
}

// Package and table names are checked by hand: a bounded repetition such
// as {3,255} compiles into hundreds of regexp states at package init, which
// every Lambda cold start paid (~4 ms).
func packageNameOK(name string) bool {
	return len(name) >= 1 && len(name) <= 63 && isLowerAlnum(name[0]) &&
		strings.IndexFunc(name, func(r rune) bool { return !(r < 128 && (isLowerAlnum(byte(r)) || r == '_' || r == '-')) }) < 0
}

func tableNameOK(name string) bool {
	return len(name) >= 3 && len(name) <= 255 && strings.IndexFunc(name, func(r rune) bool {
		return !(r < 128 && (isLowerAlnum(byte(r)) || r >= 'A' && r <= 'Z' || r == '_' || r == '.' || r == '-'))
	}) < 0
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// checkKeycloakURL requires https, except for a Keycloak on this machine
// (the local stack): passwords and tokens cross this link.
func checkKeycloakURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "is not an absolute URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return ""
		}
		return "must use https (plain http is allowed only for a loopback host such as 127.0.0.1)"
	}
	return "is not an https:// URL"
}

// ValidationError lists every problem Validate found.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid configuration (%d problems):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}
