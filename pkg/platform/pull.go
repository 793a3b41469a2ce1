package platform

import (
	"context"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/pull"
)

// PullSettings maps the pull section onto a run's bounds.
func PullSettings(cfg config.Config) pull.Settings {
	return pull.Settings{PageSize: cfg.Pull.PageSize, MaxGap: cfg.Pull.MaxGap, CompareEvery: cfg.Pull.CompareEvery}
}

// Puller applies Keycloak's admin and user events to the local store
// (functions/pull, `kcguard sync pull`). Its cursors live in the breaker
// table.
func (rt *Runtime) Puller() *pull.Puller {
	return &pull.Puller{
		Keycloak: rt.Keycloak, Users: rt.Users, Sessions: rt.Sessions, Breaker: rt.Breaker,
		Cursors:  &pull.DynamoCursors{DB: rt.DynamoDB, Table: rt.Config.Tables.Breaker},
		Packages: rt.Config.PackageNames(), Settings: PullSettings(rt.Config), Log: rt.Log,
	}
}

// PullHandler is the EventBridge-scheduled Lambda handler (every
// pull.schedule_minutes). A package that failed fails the invocation, so
// Lambda's Errors metric sees it; its cursor did not move, so the next run
// repeats it.
func (rt *Runtime) PullHandler() func(ctx context.Context, ev events.EventBridgeEvent) ([]pull.Result, error) {
	p := rt.Puller()
	return func(ctx context.Context, _ events.EventBridgeEvent) ([]pull.Result, error) {
		start := time.Now()
		res, err := p.Run(ctx, start)
		rt.RecordPull(ctx, start, res, err)
		return res, err
	}
}
