package platform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/dashboard"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/report"
	"github.com/kcguard/kcguard/pkg/status"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// RunLog records and reads the last run of each scheduled job.
func (rt *Runtime) RunLog() *status.RunLog {
	return &status.RunLog{DB: rt.DynamoDB, Table: rt.Config.Tables.Breaker}
}

// StatusReader builds the operators' status Snapshot (GET /status,
// `kcguard status`, the dashboard and the reports).
func (rt *Runtime) StatusReader() *status.Reader {
	realms := map[string]string{}
	for name, p := range rt.Config.Keycloak.Packages {
		realms[name] = p.Realm
	}
	r := &status.Reader{
		Breaker: rt.Breaker, Probe: &status.RealmProbe{BaseURL: rt.Config.Keycloak.URL, Realms: realms, Timeout: rt.Config.Keycloak.Timeout},
		Queue: rt.Queue, DLQ: rt.DLQ, Users: rt.Users, Sessions: rt.SessionReporter(),
		Tokens: rt.Tokens, Runs: rt.RunLog(), Packages: rt.Config.PackageNames(),
		RefreshWindow: rt.Config.Cleanup.RefreshWindow,
	}
	if rt.Journal != nil { // a nil *journal.Dynamo must stay a nil interface
		r.Journal = rt.Journal
	}
	return r
}

// StatusHandlers serve /status, the dashboard and the reports.
func (rt *Runtime) StatusHandlers() *httpapi.StatusHandlers {
	return &httpapi.StatusHandlers{Reader: rt.StatusReader(), Pages: dashboard.Pages{},
		Reports: rt.Reporter(), ReportKinds: report.Kinds,
		Packages: rt.Config.PackageNames(), Guard: rt.AdminGuard(), Log: rt.Log}
}

// Reporter renders the HTML reports (GET /reports/{kind}, `kcguard report`).
func (rt *Runtime) Reporter() *report.Reporter {
	return &report.Reporter{Status: rt.StatusReader(), Audit: rt.Audit, Users: rt.Users}
}

// StatusRoutes are served by functions/status. In AWS every one is
// IAM-authorised; the dashboard routes also authenticate in the handler
// (admin key once, then a cookie) for `kcguard serve`.
func (rt *Runtime) StatusRoutes() []httpapi.Route { return StatusRoutes(rt.StatusHandlers()) }

// StatusFunction is functions/status' handler: its routes by the route
// key API Gateway matched.
func (rt *Runtime) StatusFunction() httpapi.Handler { return httpapi.ByRouteKey(rt.StatusRoutes()) }

// RecordRun notes a scheduled job's run for /status. Failing to note it is
// logged and never fails the job: the run's own work is what matters.
func (rt *Runtime) RecordRun(ctx context.Context, job string, started time.Time, summary string, runErr error) {
	r := status.Run{Job: job, StartedAt: started, FinishedAt: time.Now(), OK: runErr == nil, Summary: summary}
	if runErr != nil {
		r.Error = runErr.Error()
	}
	if err := rt.RunLog().RecordRun(context.WithoutCancel(ctx), r); err != nil {
		rt.Log.WarnContext(ctx, "last run not recorded", "job", job, "err", err)
	}
}

// RecordCleanup notes a cleanup run, and its reconciliation step as the
// last reconcile run.
func (rt *Runtime) RecordCleanup(ctx context.Context, started time.Time, r cleanup.Result, runErr error) {
	rt.RecordRun(ctx, status.JobCleanup, started, fmt.Sprintf("refreshed %d tokens, deleted %d tokens and %d sessions, %s",
		r.Refresh.Refreshed, r.Tokens.Deleted, r.Sessions.Deleted, ReconcileSummary(r.Reconcile)), runErr)
	var recErr error
	if slices.Contains(r.Errors, "reconcile") {
		recErr = errors.New("the reconciliation step failed (see the cleanup log)")
	}
	rt.RecordRun(ctx, status.JobReconcile, started, ReconcileSummary(r.Reconcile), recErr)
}

// RecordPull notes a pull of Keycloak's events (results may be nil when
// the caller printed them itself).
func (rt *Runtime) RecordPull(ctx context.Context, started time.Time, results []pull.Result, runErr error) {
	var admin, user, changed int
	for _, r := range results {
		admin, user = admin+r.AdminEvents, user+r.UserEvents
		changed += r.Disabled + r.Enabled + r.Deleted + r.Stale + r.ActionsSet
	}
	summary := fmt.Sprintf("%d packages: %d admin and %d user events, %d local users changed", len(results), admin, user, changed)
	if results == nil {
		summary = ""
	}
	rt.RecordRun(ctx, status.JobPull, started, summary, runErr)
}

// DailySummary publishes every package's summary of the last day to the
// alert topic, once a day, from alerts.daily_summary_hour (UTC): the first
// cleanup run past that hour claims the day and publishes; the others see
// the claim and do nothing. Off without alerts.topic_arn.
func (rt *Runtime) DailySummary(ctx context.Context, publisher alerts.SNSAPI, now time.Time) (published int, err error) {
	hour := rt.Config.Alerts.DailySummaryHour
	if rt.Config.Alerts.TopicARN == "" || hour < 0 {
		return 0, nil
	}
	now = now.UTC()
	due := now.Truncate(24 * time.Hour).Add(time.Duration(hour) * time.Hour)
	if now.Before(due) {
		return 0, nil
	}
	claimed, err := rt.RunLog().Claim(ctx, status.JobDailySummary, due, now)
	if err != nil || !claimed {
		return 0, err
	}
	var errs []error
	reporter := rt.Reporter()
	for _, pkg := range rt.Config.PackageNames() {
		var b strings.Builder
		if err := reporter.WriteText(ctx, &b, pkg, now.Add(-24*time.Hour), now); err != nil {
			errs = append(errs, err)
			continue
		}
		_, err := publisher.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(rt.Config.Alerts.TopicARN),
			Subject: aws.String(fmt.Sprintf("kcguard daily summary: %s %s", pkg, now.Format("2006-01-02"))),
			Message: aws.String(b.String()),
			MessageAttributes: map[string]snstypes.MessageAttributeValue{
				"event":    {DataType: aws.String("String"), StringValue: aws.String("daily_summary")},
				"severity": {DataType: aws.String("String"), StringValue: aws.String("info")},
			}})
		if err != nil {
			errs = append(errs, fmt.Errorf("publish daily summary %s: %w", pkg, err))
			continue
		}
		published++
	}
	err = errors.Join(errs...)
	rt.RecordRun(ctx, status.JobDailySummary, now, fmt.Sprintf("published %d package summaries", published), err)
	return published, err
}

// SNS is the SNS client for the daily summary.
func (rt *Runtime) SNS() *sns.Client { return sns.NewFromConfig(rt.AWS) }

// ReconcileSummary is the one-line account of a reconciliation.
func ReconcileSummary(r syncjob.Reconciled) string {
	return fmt.Sprintf("queued %d of %d unsynced users", r.Queued, r.Found)
}
