package metrics

// Namespace is the CloudWatch namespace of every metric kcguard emits.
const Namespace = "kcguard"

// Metric is one metric kcguard emits as EMF, with the one dimension set it
// is published under.
type Metric struct {
	Name string
	Unit Unit
	// Dimensions are fixed values, or AnyValue for one series per value
	// (a package).
	Dimensions map[string]string
	// Help says what it counts, for dashboards and their readers.
	Help string
}

// cleanupDims are the dimensions of the scheduled cleanup run's metrics.
var cleanupDims = map[string]string{"Function": "cleanup"}

// AnyValue marks a dimension with one series per value (Package).
const AnyValue = "*"

// pullDims: the scheduled pull publishes one line per package.
var pullDims = map[string]string{"Package": AnyValue}

// LoginDimensions are the dimensions of the login outcome metrics.
var LoginDimensions = map[string]string{"Function": "login"}

// The login outcomes: each login answer counts one of them.
const (
	LoginsKeycloak  = "LoginsKeycloak"
	LoginsCached    = "LoginsCached"
	LoginsLocal     = "LoginsLocal"
	LoginFailures   = "LoginFailures"
	LoginsLockedOut = "LoginsLockedOut"
	LoginsRefused   = "LoginsRefused"
	LoginErrors     = "LoginErrors"
)

// Catalog is every metric kcguard emits: the one list the CloudWatch
// dashboard (infra/), the Grafana dashboard and their tests read, and that
// the emitters' tests hold the code to, so no dashboard names a metric
// that does not exist and no emitted metric goes unlisted.
var Catalog = []Metric{
	{"TokensRefreshed", Count, cleanupDims, "cached Keycloak tokens refreshed before they expired"},
	{"TokensDropped", Count, cleanupDims, "cached tokens dropped (refresh token expired or refused)"},
	{"TokenRefreshFailures", Count, cleanupDims, "token refreshes that failed (Keycloak down or erroring)"},
	{"ExpiredTokensDeleted", Count, cleanupDims, "cached tokens deleted past their grace period"},
	{"ExpiredSessionsDeleted", Count, cleanupDims, "expired sessions deleted"},
	{"UnsyncedUsersFound", Count, cleanupDims, "users whose local version is ahead of Keycloak's"},
	{"UnsyncedUsersQueued", Count, cleanupDims, "of those, re-queued by reconciliation"},
	{"SyncQueueDepth", Count, cleanupDims, "sync jobs waiting or in flight"},
	{"SyncDLQDepth", Count, cleanupDims, "dead-lettered (poison) sync jobs"},
	{"OldestPendingChangeAge", Seconds, cleanupDims, "age of the oldest change Keycloak has not received"},
	{"BreakerState", None, cleanupDims, "Keycloak breaker: 0 closed, 1 half-open, 2 open, -1 disabled"},
	{"CleanupStepErrors", Count, cleanupDims, "cleanup steps that failed this run"},
	{"CleanupDuration", Milliseconds, cleanupDims, "cleanup run time"},
	{"JournalEntriesPurged", Count, cleanupDims, "sync journal entries past retention deleted"},
	{LoginsKeycloak, Count, LoginDimensions, "logins Keycloak confirmed (auth_mode keycloak)"},
	{LoginsCached, Count, LoginDimensions, "logins on a cached Keycloak token (Keycloak down)"},
	{LoginsLocal, Count, LoginDimensions, "logins on the local store alone (Keycloak down)"},
	{LoginFailures, Count, LoginDimensions, "wrong username or password"},
	{LoginsLockedOut, Count, LoginDimensions, "refused by the lockout (user locked, or source throttled)"},
	{LoginsRefused, Count, LoginDimensions, "other refusals (bad request, disabled account, action required, ...)"},
	{LoginErrors, Count, LoginDimensions, "answered 5xx (a store or Keycloak unavailable)"},
	{"PullDuration", Milliseconds, pullDims, "one package's pull of Keycloak's decisions"},
	{"PullFailed", Count, pullDims, "1 when the package's pull failed (its cursor did not move)"},
	{"PullSkipped", Count, pullDims, "1 when the package's pull was skipped"},
	{"PullCompare", Count, pullDims, "1 when it compared every user instead of reading events"},
	{"PullEvents", Count, pullDims, "Keycloak admin and user events read"},
	{"PullDisabled", Count, pullDims, "users Keycloak disabled, applied locally"},
	{"PullDeleted", Count, pullDims, "users Keycloak deleted, removed locally"},
	{"PullStale", Count, pullDims, "local hashes made stale by a Keycloak-side reset"},
	{"PullMalformed", Count, pullDims, "events that could not be read (skipped)"},
}

// Lookup finds a catalogued metric by name.
func Lookup(name string) (Metric, bool) {
	for _, m := range Catalog {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}
