package schema

// The tables, described once. The stores read and write them (each store's
// Table(name) is its table under the configured name), the CDK app
// (infra/) builds them, `kcguard config fix` creates them and template.yaml
// is checked against them (infra's parity test).

// Index and attribute names the stores query by.
const (
	UsersByPackage       = "by_package"
	UsersUnsynced        = "unsynced"
	SessionsByUser       = "by_user"
	SessionsByExpiry     = "by_expiry"
	TokensByAccessExpiry = "by_access_expiry"
	TokensByGrace        = "by_grace"
	AuditByPackageHour   = "by_package_hour"
	JournalByStatus      = "by_status"

	// TTL is the epoch-seconds attribute DynamoDB expires items by, in
	// every table with a TTL but the users table.
	TTL = "ttl"
	// UsersTTL expires lockout and source items, never accounts.
	UsersTTL = "expires_at"
)

var (
	pk = Key{Name: "pk", Type: String}
	sk = &Key{Name: "sk", Type: String}

	// Users: partition "package#username" (sk "user" the account, sk
	// "lockout" its failure counters) or "source#<id>" (sk "source").
	Users = Table{PartitionKey: pk, SortKey: sk, TTLAttribute: UsersTTL, Indexes: []Index{
		{Name: UsersByPackage, PartitionKey: Key{"pkg", String}, SortKey: &Key{"username", String}},
		// Only users whose version Keycloak has not received carry unsynced_pkg.
		{Name: UsersUnsynced, PartitionKey: Key{"unsynced_pkg", String}, SortKey: &Key{"username", String}},
	}}

	// Sessions: one item per session, by its id.
	Sessions = Table{PartitionKey: Key{"id", String}, TTLAttribute: TTL, Indexes: []Index{
		{Name: SessionsByUser, PartitionKey: Key{"user_key", String}, SortKey: &Key{"created", String}},
		// Cleanup needs only the key to delete: keys only.
		{Name: SessionsByExpiry, PartitionKey: Key{"exp_bucket", String}, SortKey: &Key{TTL, Number}, KeysOnly: true},
	}}

	// Tokens: the cached Keycloak tokens, one item per user.
	Tokens = Table{PartitionKey: pk, TTLAttribute: TTL, Indexes: []Index{
		// Refresh-ahead needs the sealed tokens: project everything.
		{Name: TokensByAccessExpiry, PartitionKey: Key{"access_bucket", String}, SortKey: &Key{"access_exp", Number}},
		// Cleanup needs only keys.
		{Name: TokensByGrace, PartitionKey: Key{"grace_bucket", String}, SortKey: &Key{TTL, Number}, KeysOnly: true},
	}}

	// Breaker: one item per breaker (and the cursors and run records kept
	// beside it). No TTL: a breaker item must outlive any outage.
	Breaker = Table{PartitionKey: pk}

	// Audit: pk "package#username", sk "<time>#<id>" (fixed-width UTC
	// time, so a user's trail reads in time order); by_package_hour lists
	// a package's events hour by hour (pkg_hour "<package>#<UTC hour>").
	Audit = Table{PartitionKey: pk, SortKey: sk, TTLAttribute: TTL, Indexes: []Index{
		{Name: AuditByPackageHour, PartitionKey: Key{"pkg_hour", String}, SortKey: sk},
	}}

	// Journal: pk "package#username", sk "<job created_at>#<job id>" (a
	// user's jobs in order); by_status lists one status's entries by last
	// change (status, "<updated_at>#<job id>").
	Journal = Table{PartitionKey: pk, SortKey: sk, TTLAttribute: TTL, Indexes: []Index{
		{Name: JournalByStatus, PartitionKey: Key{"status", String}, SortKey: &Key{"status_at", String}},
	}}

	// Tables are every table, by the suffix of the KCGUARD_TABLE_* variable
	// that names it.
	Tables = map[string]Table{"USERS": Users, "SESSIONS": Sessions, "TOKENS": Tokens, "BREAKER": Breaker,
		"AUDIT": Audit, "JOURNAL": Journal}
)

// Named is t under a physical table name.
func (t Table) Named(name string) Table {
	t.Name = name
	return t
}
