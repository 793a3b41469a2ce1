package main

import (
	"fmt"
	"math/bits"

	"github.com/kcguard/kcguard/pkg/config"
)

// The functions of kcguard: one entry per folder under functions/ (their
// routes are pkg/schema's). Adding a function is one entry here and its
// resource in template.yaml; the parity test fails until both agree, and
// the grants test until its expected actions are written down
// (TestEachFunctionMayDoExactly).

// Access is the set of DynamoDB actions a function may use on one table.
// Only actions the code calls exist here: no Scan, no BatchGetItem, no
// streams, no DescribeTable (that is the CLI's `config validate`).
// TransactWriteItems needs no action of its own: IAM checks each item's
// Put/Update/Delete.
type Access int

const (
	GetItem Access = 1 << iota
	Query
	PutItem
	UpdateItem
	DeleteItem
	BatchWriteItem
	BatchGetItem
	// ConditionCheckItem: a ConditionCheck inside a login's transaction
	// (the user's version, the user's sessions not revoked since).
	ConditionCheckItem

	Read  = GetItem | Query
	Write = PutItem | UpdateItem | DeleteItem
	// BreakerItem is what running the fleet-wide breaker takes: read the
	// shared state, create it, move it by conditional update.
	BreakerItem = GetItem | PutItem | UpdateItem
)

var accessActions = []string{"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
	"BatchGetItem", "ConditionCheckItem"}

// loginRead is the one BatchGetItem a login and a password change start
// with: the user, the source's failure counter (users table) and the
// cached token (tokens table).
const loginRead = BatchGetItem

// Actions are the IAM actions of a, in a stable order.
func (a Access) Actions() []string {
	out := make([]string, 0, bits.OnesCount(uint(a)))
	for i, name := range accessActions {
		if a&(1<<i) != 0 {
			out = append(out, "dynamodb:"+name)
		}
	}
	return out
}

// Function describes one Lambda function and exactly what it may touch.
type Function struct {
	// Name is the folder under functions/; the logical id is <Title>Function.
	Name        string
	LogicalID   string
	Description string
	MemoryMB    float64
	TimeoutSec  float64
	// Tables maps a table (by its KCGUARD_TABLE_* suffix: USERS, SESSIONS,
	// ...) to the actions the function needs on it and its indexes.
	Tables map[string]Access
	// Keycloak: talks to Keycloak, so it reads the client secrets.
	Keycloak bool
	// SendSync: may queue sync jobs; SendDLQ: may park poison jobs. Both
	// use the queue key (the queues are encrypted with it).
	SendSync, SendDLQ bool
	// QueueDepth: may read both queues' attributes (depth metrics).
	QueueDepth bool
	// TokenKey: may use the token KMS key (cached Keycloak tokens).
	TokenKey bool
	// Breaker: runs the fleet-wide breaker, so it may win a transition:
	// publish the alert and pause or resume the worker's event source. The
	// winner of a close also runs a bounded reconciliation pass, so every
	// breaker function may list unsynced users (USERS Query), journal and
	// queue their jobs (JOURNAL Put, SendSync) and keep the pass's cursor
	// (BREAKER item). The grants test checks this holds.
	Breaker bool
	// EnsuresMapping: the scheduled safety net that reads the worker's
	// mapping and re-enables one left paused under a closed breaker.
	EnsuresMapping bool
	// Admin: serves admin or operator routes, so it learns which IAM
	// callers are administrators (api.admin_principals).
	Admin bool
	// ConsumesSyncQueue: the SQS FIFO event source with partial batch failures.
	ConsumesSyncQueue bool
	// Schedule is an EventBridge schedule expression ("rate(5 minutes)").
	Schedule string
}

// The schedules, from their config defaults (cleanup.schedule_minutes,
// pull.schedule_minutes).
var (
	cleanupSchedule = rate(config.Default().Cleanup.ScheduleMinutes)
	pullSchedule    = rate(config.Default().Pull.ScheduleMinutes)
)

// rate is an EventBridge rate expression (singular for 1: "rate(1 minute)").
func rate(minutes int) string {
	if minutes == 1 {
		return "rate(1 minute)"
	}
	return fmt.Sprintf("rate(%d minutes)", minutes)
}

// workerName is the sync worker's function name. It is fixed (not
// generated) so every breaker-running function, the worker included, can
// name it in its environment and its IAM condition without a
// CloudFormation cycle (a function cannot Ref itself).
const workerName = "${AWS::StackName}-syncworker"

// Functions is the whole fleet, in template order.
var Functions = []Function{
	{
		Name: "login", LogicalID: "LoginFunction", MemoryMB: 1024, TimeoutSec: 10,
		Description: "POST /login: local check first, Keycloak second, then a session",
		// USERS: lockout counter and lock, rehash on login, sync markers,
		// the transaction's check that the user is still at the version the
		// login read. SESSIONS: reserve a place under the per-user cap, then
		// the transaction's Put and its check that the user's sessions were
		// not revoked since, and a read of the new session when an SDK retry
		// of a landed transaction is refused. TOKENS/AUDIT: the
		// transaction's Puts.
		Tables: map[string]Access{"USERS": Read | Write | loginRead | ConditionCheckItem,
			"SESSIONS": GetItem | BatchGetItem | PutItem | UpdateItem | ConditionCheckItem, "TOKENS": GetItem | PutItem | loginRead,
			"BREAKER": BreakerItem, "AUDIT": PutItem, "JOURNAL": PutItem},
		Keycloak: true, SendSync: true, TokenKey: true, Breaker: true,
	},
	{
		Name: "password", LogicalID: "PasswordFunction", MemoryMB: 1024, TimeoutSec: 15,
		Description: "POST /password: change the local password, sync it now or through the queue",
		// SESSIONS: revoke the user's sessions; TOKENS: read with the user,
		// then drop the cached Keycloak token (it carries the old grant).
		Tables: map[string]Access{"USERS": Read | Write | loginRead, "SESSIONS": Read | UpdateItem,
			"TOKENS":  loginRead | DeleteItem,
			"BREAKER": BreakerItem, "AUDIT": PutItem, "JOURNAL": PutItem},
		Keycloak: true, SendSync: true, Breaker: true,
	},
	{
		Name: "sessions", LogicalID: "SessionsFunction", MemoryMB: 256, TimeoutSec: 10,
		Description: "Session routes (bearer session token) and their /admin counterparts (IAM)",
		// USERS: the Keycloak logout looks the user up and may learn its
		// Keycloak id. AUDIT read: session metrics per package.
		Tables: map[string]Access{"USERS": Read | UpdateItem, "SESSIONS": Read | BatchGetItem | UpdateItem,
			"BREAKER": BreakerItem, "AUDIT": Query, "JOURNAL": PutItem},
		Keycloak: true, SendSync: true, Breaker: true, Admin: true,
	},
	{
		// Read only, nothing else: it runs in front of other APIs, so what
		// it can do is what anyone who breaks it can do (issue 11).
		Name: "authorizer", LogicalID: "AuthorizerFunction", MemoryMB: 256, TimeoutSec: 10,
		Description: "HTTP API Lambda authorizer accepting kcguard sessions (for downstream APIs)",
		// A session and its user's revocation state in one BatchGetItem.
		Tables: map[string]Access{"SESSIONS": GetItem | BatchGetItem},
	},
	{
		Name: "syncworker", LogicalID: "SyncWorkerFunction", MemoryMB: 256, TimeoutSec: 20,
		Description: "Replays queued changes into Keycloak (SQS FIFO, partial batch failures)",
		Tables: map[string]Access{"USERS": Read | UpdateItem, "BREAKER": BreakerItem,
			"JOURNAL": Read | PutItem},
		Keycloak: true, SendSync: true, SendDLQ: true, ConsumesSyncQueue: true, Breaker: true,
	},
	{
		// Writes only what it cleans or refreshes; users are only read
		// (reconciliation re-queues them, it never changes them).
		// The run's time budget (cleanup.time_budget, 4m) stays below this.
		Name: "cleanup", LogicalID: "CleanupFunction", MemoryMB: 512, TimeoutSec: 300,
		Description: "Scheduled maintenance: refresh expiring tokens, purge expired items, re-queue unsynced users, metrics",
		// AUDIT read and BREAKER BatchGetItem: the daily summary it
		// publishes to the alerts topic (the status report of the day).
		Tables: map[string]Access{"USERS": Read, "SESSIONS": Query | BatchWriteItem,
			"TOKENS": Query | PutItem | DeleteItem, "BREAKER": BreakerItem | BatchGetItem, "AUDIT": Query,
			"JOURNAL": Query | PutItem | DeleteItem},
		Keycloak: true, SendSync: true, QueueDepth: true, TokenKey: true, Breaker: true, EnsuresMapping: true,
		Schedule: cleanupSchedule,
	}, {
		// Keycloak's decisions (disable, delete, reset, required actions)
		// reach the local store; its cursors are items of the breaker table.
		// Scheduled every minute; a page-by-page compare of a large realm
		// (the first run, a gap, every compare_every) takes longer than
		// that (the RIE test's first run took over 30 s on the loaded test
		// machine), and a run that times out never moves its cursor.
		Name: "pull", LogicalID: "PullFunction", MemoryMB: 256, TimeoutSec: 300,
		Description: "Scheduled pull of Keycloak's admin and user events into the local store",
		// BREAKER: its cursors and its last-run record.
		Tables: map[string]Access{"USERS": Read | UpdateItem | DeleteItem, "SESSIONS": Query | UpdateItem,
			"BREAKER": GetItem | PutItem | UpdateItem},
		Keycloak: true,
		Schedule: pullSchedule,
	}, {
		// Operators' read model: reads nearly every table and both queues'
		// attributes, writes nothing, no secrets (its Keycloak probe needs
		// none). Every route is IAM-authorised: never public.
		Name: "status", LogicalID: "StatusFunction", MemoryMB: 512, TimeoutSec: 15,
		Description: "Operators' status, dashboard and reports (IAM)",
		Tables: map[string]Access{"USERS": Read, "SESSIONS": Read | BatchGetItem, "TOKENS": Query,
			"BREAKER": GetItem | BatchGetItem, "AUDIT": Query, "JOURNAL": Read},
		QueueDepth: true, Admin: true,
	},
}
