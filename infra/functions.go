package main

import (
	"fmt"

	"github.com/kcguard/kcguard/pkg/config"
)

// The functions of kcguard: one entry per folder under functions/. Adding a
// function is one entry here and its resource in template.yaml; the parity
// test fails until both agree.

// Access is what a function may do to one table.
type Access int

const (
	Read Access = 1 << iota
	Write
	ReadWrite = Read | Write
)

// Route is one HTTP API route. IAM routes are for operators (SigV4).
type Route struct {
	Method string
	Path   string
	IAM    bool
}

// Function describes one Lambda function and exactly what it may touch.
type Function struct {
	// Name is the folder under functions/; the logical id is <Title>Function.
	Name        string
	LogicalID   string
	Description string
	MemoryMB    float64
	TimeoutSec  float64
	Routes      []Route
	// Tables maps a table (by its KCGUARD_TABLE_* suffix: USERS, SESSIONS,
	// ...) to the access the function needs.
	Tables map[string]Access
	// SendSync: may queue sync jobs; SendDLQ: may park poison jobs.
	SendSync, SendDLQ bool
	// QueueDepth: may read both queues' attributes (depth metrics).
	QueueDepth bool
	// TokenKey: may use the token KMS key (cached Keycloak tokens).
	TokenKey bool
	// ConsumesSyncQueue: the SQS FIFO event source with partial batch failures.
	ConsumesSyncQueue bool
	// Schedule is an EventBridge schedule expression ("rate(5 minutes)").
	Schedule string
}

// cleanupSchedule is cleanup.schedule_minutes as EventBridge wants it.
var cleanupSchedule = fmt.Sprintf("rate(%d minutes)", config.Default().Cleanup.ScheduleMinutes)

// Functions is the whole fleet, in template order.
var Functions = []Function{
	{
		Name: "login", LogicalID: "LoginFunction", MemoryMB: 1024, TimeoutSec: 10,
		Description: "POST /login: local check first, Keycloak second, then a session",
		Routes:      []Route{{Method: "POST", Path: "/login"}},
		Tables: map[string]Access{"USERS": ReadWrite, "SESSIONS": Write, "TOKENS": ReadWrite,
			"BREAKER": ReadWrite, "AUDIT": Write, "JOURNAL": Write},
		SendSync: true, TokenKey: true,
	},
	{
		Name: "password", LogicalID: "PasswordFunction", MemoryMB: 1024, TimeoutSec: 15,
		Description: "POST /password: change the local password, sync it now or through the queue",
		Routes:      []Route{{Method: "POST", Path: "/password"}},
		Tables: map[string]Access{"USERS": ReadWrite, "SESSIONS": ReadWrite, "TOKENS": ReadWrite,
			"BREAKER": ReadWrite, "AUDIT": Write, "JOURNAL": Write},
		SendSync: true, TokenKey: true,
	},
	{
		Name: "sessions", LogicalID: "SessionsFunction", MemoryMB: 256, TimeoutSec: 10,
		Description: "Session routes (bearer session token) and their /admin counterparts (IAM)",
		Routes: []Route{
			{Method: "GET", Path: "/sessions"},
			{Method: "DELETE", Path: "/sessions/{id}"},
			{Method: "POST", Path: "/logout"},
			{Method: "POST", Path: "/logout-all"},
			{Method: "GET", Path: "/admin/sessions", IAM: true},
			{Method: "DELETE", Path: "/admin/sessions/{id}", IAM: true},
			{Method: "POST", Path: "/admin/users/{package}/{username}/logout", IAM: true},
			{Method: "GET", Path: "/admin/metrics", IAM: true},
		},
		// AUDIT read: session metrics per package come from the audit trail.
		Tables: map[string]Access{"USERS": Read, "SESSIONS": ReadWrite, "TOKENS": ReadWrite,
			"BREAKER": ReadWrite, "AUDIT": ReadWrite, "JOURNAL": Write},
		SendSync: true,
	},
	{
		Name: "authorizer", LogicalID: "AuthorizerFunction", MemoryMB: 256, TimeoutSec: 10,
		Description: "HTTP API Lambda authorizer accepting kcguard sessions (for downstream APIs)",
		Tables:      map[string]Access{"SESSIONS": ReadWrite},
	},
	{
		Name: "syncworker", LogicalID: "SyncWorkerFunction", MemoryMB: 256, TimeoutSec: 20,
		Description: "Replays queued changes into Keycloak (SQS FIFO, partial batch failures)",
		Tables: map[string]Access{"USERS": ReadWrite, "BREAKER": ReadWrite, "AUDIT": Write,
			"JOURNAL": ReadWrite},
		SendDLQ: true, ConsumesSyncQueue: true,
	},
	{
		// The run's time budget (cleanup.time_budget, 4m) stays below this.
		Name: "cleanup", LogicalID: "CleanupFunction", MemoryMB: 512, TimeoutSec: 300,
		Description: "Scheduled maintenance: refresh expiring tokens, purge expired items, re-queue unsynced users, metrics",
		Tables: map[string]Access{"USERS": ReadWrite, "SESSIONS": ReadWrite, "TOKENS": ReadWrite,
			"BREAKER": ReadWrite, "AUDIT": Write, "JOURNAL": ReadWrite},
		SendSync: true, QueueDepth: true, TokenKey: true,
		Schedule: cleanupSchedule,
	},
}
