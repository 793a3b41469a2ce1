package main

import (
	"github.com/kcguard/kcguard/pkg/schema"
)

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
