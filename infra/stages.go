package main

import (
	"fmt"

	"github.com/kcguard/kcguard/pkg/config"
)

// Stage is what differs between dev and prod (`cdk deploy -c stage=prod`).
type Stage struct {
	Name string
	// Retain keeps tables, the KMS key and the secret when the stack is
	// deleted, and turns on deletion protection for tables.
	Retain           bool
	LogRetentionDays float64
	// SyncBatchSize and SyncMaxConcurrency drive the worker's event source;
	// MaxConcurrency bounds the replay load on a Keycloak that just came back.
	SyncBatchSize      float64
	SyncMaxConcurrency float64
	// OldestSyncJobAlarmSeconds: a job older than this means sync is stuck.
	OldestSyncJobAlarmSeconds float64
	ApiRateLimit              float64
	ApiBurstLimit             float64
	// Resilience is keycloak.resilience; defaults from pkg/config.
	Resilience config.Resilience
	LogLevel   string
}

// Stages are the known stages.
var Stages = map[string]Stage{
	"dev": {
		Name: "dev", Retain: false, LogRetentionDays: 30,
		SyncBatchSize: 5, SyncMaxConcurrency: 2, OldestSyncJobAlarmSeconds: 900,
		ApiRateLimit: 100, ApiBurstLimit: 200,
		Resilience: config.Default().Keycloak.Resilience, LogLevel: "info",
	},
	"prod": {
		Name: "prod", Retain: true, LogRetentionDays: 365,
		SyncBatchSize: 5, SyncMaxConcurrency: 5, OldestSyncJobAlarmSeconds: 900,
		ApiRateLimit: 500, ApiBurstLimit: 1000,
		Resilience: config.Default().Keycloak.Resilience, LogLevel: "info",
	},
}

// StageNamed returns a known stage.
func StageNamed(name string) (Stage, error) {
	s, ok := Stages[name]
	if !ok {
		return Stage{}, fmt.Errorf("unknown stage %q (known: dev, prod)", name)
	}
	return s, nil
}
