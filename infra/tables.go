package main

import (
	"github.com/kcguard/kcguard/pkg/schema"
)

// The tables and the sync queue, keyed by their KCGUARD_TABLE_* suffix. The
// code that reads them (users.Table, sessions.Table, ... collected by
// pkg/platform.ResourcesOf) is the source of truth; the parity test fails
// when this, template.yaml and the code disagree. They are written out here,
// not imported, so the CDK app builds from pkg/schema alone.
var Tables = map[string]schema.Table{
	"USERS": {
		PartitionKey: key("pk", schema.String), SortKey: keyp("sk", schema.String),
		Indexes: []schema.Index{
			{Name: "by_package", PartitionKey: key("pkg", schema.String), SortKey: keyp("username", schema.String)},
			{Name: "unsynced", PartitionKey: key("unsynced_pkg", schema.String), SortKey: keyp("username", schema.String)},
		},
		TTLAttribute: "expires_at",
	},
	"SESSIONS": {
		PartitionKey: key("id", schema.String),
		Indexes: []schema.Index{
			{Name: "by_user", PartitionKey: key("user_key", schema.String), SortKey: keyp("created", schema.String)},
			{Name: "by_expiry", PartitionKey: key("exp_bucket", schema.String), SortKey: keyp("ttl", schema.Number), KeysOnly: true},
		},
		TTLAttribute: "ttl",
	},
	"TOKENS": {
		PartitionKey: key("pk", schema.String),
		Indexes: []schema.Index{
			{Name: "by_access_expiry", PartitionKey: key("access_bucket", schema.String), SortKey: keyp("access_exp", schema.Number)},
			{Name: "by_grace", PartitionKey: key("grace_bucket", schema.String), SortKey: keyp("ttl", schema.Number), KeysOnly: true},
		},
		TTLAttribute: "ttl",
	},
	"BREAKER": {PartitionKey: key("pk", schema.String)},
	"AUDIT": {
		PartitionKey: key("pk", schema.String), SortKey: keyp("sk", schema.String),
		Indexes: []schema.Index{
			{Name: "by_package_hour", PartitionKey: key("pkg_hour", schema.String), SortKey: keyp("sk", schema.String)},
		},
		TTLAttribute: "ttl",
	},
	"JOURNAL": {
		PartitionKey: key("pk", schema.String), SortKey: keyp("sk", schema.String),
		Indexes: []schema.Index{
			{Name: "by_status", PartitionKey: key("status", schema.String), SortKey: keyp("status_at", schema.String)},
		},
		TTLAttribute: "ttl",
	},
}

// SyncQueue is the FIFO sync queue with its FIFO dead-letter queue.
//
// Retention (finding 8): queued jobs carry password hashes, so they are
// kept no longer than they are useful. The users table, not the queue, is
// where a change lives until Keycloak has it (version >
// keycloak_synced_version), and reconciliation re-queues any such user, so
// a job that expires is re-created, not lost. 4 days covers an outage
// over a long weekend; the DLQ keeps its poison 7 days (a working week to
// look at it, `kcguard sync status` / `sync redrive`) and must outlive the
// queue's retention, which SQS counts from the first enqueue.
var SyncQueue = struct {
	schema.Queue
	RetentionSeconds, DLQRetentionSeconds int
}{
	Queue:            schema.Queue{MaxReceiveCount: 5, VisibilityTimeoutSeconds: 120},
	RetentionSeconds: 4 * 86400, DLQRetentionSeconds: 7 * 86400,
}

func key(name string, t schema.AttrType) schema.Key   { return schema.Key{Name: name, Type: t} }
func keyp(name string, t schema.AttrType) *schema.Key { return &schema.Key{Name: name, Type: t} }
