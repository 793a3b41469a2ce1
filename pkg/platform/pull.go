package platform

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/metrics"
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
// repeats it. Each package's run is also published as EMF metrics on stdout.
func (rt *Runtime) PullHandler() func(ctx context.Context, ev events.EventBridgeEvent) ([]pull.Result, error) {
	p := rt.Puller()
	return func(ctx context.Context, _ events.EventBridgeEvent) ([]pull.Result, error) {
		start := time.Now()
		rs, err := p.Run(ctx, start)
		PublishPull(ctx, &metrics.EMF{W: os.Stdout}, rs)
		rt.RecordPull(ctx, start, rs, err)
		return rs, err
	}
}

// PublishPull publishes one package's pull per EMF line in namespace
// kcguard, dimension Package: how long it took, whether it had to compare
// every user, what it changed and what it skipped.
func PublishPull(ctx context.Context, pub metrics.Publisher, rs []pull.Result) {
	for _, r := range rs {
		flag := func(b bool) float64 {
			if b {
				return 1
			}
			return 0
		}
		_ = pub.Publish(ctx, metrics.Namespace, map[string]string{"Package": r.Package}, []metrics.Value{
			{Name: "PullDuration", Value: float64(r.DurationMS), Unit: metrics.Milliseconds},
			{Name: "PullFailed", Value: flag(r.Error != ""), Unit: metrics.Count},
			{Name: "PullSkipped", Value: flag(r.Error == "" && r.Mode == ""), Unit: metrics.Count},
			{Name: "PullCompare", Value: flag(r.Mode == pull.ModeCompare), Unit: metrics.Count},
			{Name: "PullEvents", Value: float64(r.AdminEvents + r.UserEvents), Unit: metrics.Count},
			{Name: "PullDisabled", Value: float64(r.Disabled), Unit: metrics.Count},
			{Name: "PullDeleted", Value: float64(r.Deleted), Unit: metrics.Count},
			{Name: "PullStale", Value: float64(r.Stale), Unit: metrics.Count},
			{Name: "PullMalformed", Value: float64(len(r.Malformed)), Unit: metrics.Count},
		})
	}
}
