package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/kcguard/kcguard/pkg/metrics"
)

// The operators' CloudWatch dashboard (issue 12). kcguard's own metrics come
// from metrics.Catalog by name, so the dashboard can only show what the code
// emits; the rest are the AWS metrics of the queues and functions.

// dashboardRows are the EMF panels: a title and the catalogued metrics it
// plots. A name missing from the catalogue fails the synth (and its test).
var dashboardRows = []struct {
	Title   string
	Metrics []string
	Stat    string
}{
	{"Keycloak breaker (0 closed, 1 half-open, 2 open)", []string{"BreakerState"}, "Maximum"},
	{"Changes waiting for Keycloak", []string{"SyncQueueDepth", "SyncDLQDepth", "UnsyncedUsersFound", "UnsyncedUsersQueued"}, "Maximum"},
	{"Oldest change Keycloak has not received (s)", []string{"OldestPendingChangeAge"}, "Maximum"},
	{"Cached Keycloak tokens", []string{"TokensRefreshed", "TokensDropped", "TokenRefreshFailures", "ExpiredTokensDeleted"}, "Sum"},
	{"Cleanup", []string{"ExpiredSessionsDeleted", "JournalEntriesPurged", "CleanupStepErrors"}, "Sum"},
	{"Cleanup run time (ms)", []string{"CleanupDuration"}, "Maximum"},
	{"Logins by auth mode", []string{"LoginsKeycloak", "LoginsCached", "LoginsLocal"}, "Sum"},
	{"Failed and locked-out logins", []string{"LoginFailures", "LoginsLockedOut", "LoginsRefused", "LoginErrors"}, "Sum"},
	{"Keycloak's decisions pulled (per package)", []string{"PullFailed", "PullSkipped", "PullCompare", "PullEvents",
		"PullDisabled", "PullDeleted", "PullStale", "PullMalformed"}, "Sum"},
	{"Pull duration (per package, ms)", []string{"PullDuration"}, "Maximum"},
}

func catalogued(name, stat string) awscloudwatch.IMetric {
	m, ok := metrics.Lookup(name)
	if !ok {
		panic("dashboard: metric " + name + " is not in metrics.Catalog (the code does not emit it)")
	}
	for dim, v := range m.Dimensions {
		if v == metrics.AnyValue { // one series per value: a search
			return awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
				Expression: jsii.String(fmt.Sprintf(`SEARCH('{%s,%s} MetricName="%s"', '%s', 300)`,
					metrics.Namespace, dim, m.Name, stat)),
				Label: jsii.String(m.Name), Period: awscdk.Duration_Minutes(jsii.Number(5)),
				UsingMetrics: &map[string]awscloudwatch.IMetric{},
			})
		}
	}
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace: jsii.String(metrics.Namespace), MetricName: jsii.String(m.Name), DimensionsMap: toStrMap(m.Dimensions),
		Statistic: jsii.String(stat), Period: awscdk.Duration_Minutes(jsii.Number(5)), Label: jsii.String(m.Name),
	})
}

func toStrMap(m map[string]string) *map[string]*string {
	out := map[string]*string{}
	for k, v := range m {
		out[k] = jsii.String(v)
	}
	return &out
}

func graph(title string, left ...awscloudwatch.IMetric) awscloudwatch.GraphWidget {
	return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
		Title: jsii.String(title), Left: &left, Width: jsii.Number(12), Height: jsii.Number(6),
	})
}

func newDashboard(st awscdk.Stack, stage Stage, s *Stack) awscloudwatch.Dashboard {
	d := awscloudwatch.NewDashboard(st, jsii.String("OperatorsDashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String("kcguard-" + stage.Name),
	})
	overrideID(d, "OperatorsDashboard")
	var widgets []awscloudwatch.IWidget
	for _, row := range dashboardRows {
		var ms []awscloudwatch.IMetric
		for _, name := range row.Metrics {
			ms = append(ms, catalogued(name, row.Stat))
		}
		widgets = append(widgets, graph(row.Title, ms...))
	}
	max5 := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}
	widgets = append(widgets,
		graph("Sync queue (SQS)", s.SyncQueue.MetricApproximateNumberOfMessagesVisible(max5),
			s.SyncQueue.MetricApproximateNumberOfMessagesNotVisible(max5), s.DLQ.MetricApproximateNumberOfMessagesVisible(max5)),
		graph("Oldest queued sync job (s, SQS)", s.SyncQueue.MetricApproximateAgeOfOldestMessage(max5)))
	var errs, durations []awscloudwatch.IMetric
	for _, f := range Functions {
		fn := s.Functions[f.Name]
		errs = append(errs, fn.MetricErrors(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum"), Label: jsii.String(f.Name)}))
		durations = append(durations, fn.MetricDuration(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("p99"), Label: jsii.String(f.Name)}))
	}
	widgets = append(widgets, graph("Lambda errors", errs...), graph("Lambda duration p99 (ms)", durations...))
	for i := 0; i < len(widgets); i += 2 {
		d.AddWidgets(widgets[i:min(i+2, len(widgets))]...)
	}
	return d
}
