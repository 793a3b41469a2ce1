// Package grafana holds the Grafana dashboard (kcguard.json) over kcguard's
// EMF metrics through Grafana's CloudWatch data source; its test keeps the
// dashboard and the code's metric catalogue (pkg/metrics.Catalog) in step.
package grafana

import (
	"encoding/json"
	"maps"
	"os"
	"testing"

	"github.com/kcguard/kcguard/pkg/metrics"
)

type target struct {
	Namespace  string            `json:"namespace"`
	MetricName string            `json:"metricName"`
	Dimensions map[string]string `json:"dimensions"`
	Statistic  string            `json:"statistic"`
	Datasource struct {
		Type string `json:"type"`
	} `json:"datasource"`
}

// awsMetrics are the AWS services' own metrics the dashboard may name:
// CloudWatch publishes them for every function, kcguard's code does not.
var awsMetrics = map[string]map[string]bool{
	"AWS/Lambda": {"Errors": true, "Throttles": true, "Duration": true, "Invocations": true, "ConcurrentExecutions": true},
}

func TestDashboardNamesOnlyEmittedMetrics(t *testing.T) {
	raw, err := os.ReadFile("kcguard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string   `json:"title"`
			Targets []target `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("kcguard.json is not valid JSON: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	shown := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource.Type != "cloudwatch" || q.Statistic == "" {
				t.Errorf("panel %q: %s is not a CloudWatch metric query with a statistic", p.Title, q.MetricName)
			}
			switch q.Namespace {
			case metrics.Namespace:
				m, ok := metrics.Lookup(q.MetricName)
				if !ok {
					t.Errorf("panel %q names %s, which kcguard does not emit", p.Title, q.MetricName)
					continue
				}
				if !maps.Equal(q.Dimensions, m.Dimensions) {
					t.Errorf("panel %q: %s under dimensions %v; it is published under %v", p.Title, q.MetricName, q.Dimensions, m.Dimensions)
				}
				shown[q.MetricName] = true
			default:
				if !awsMetrics[q.Namespace][q.MetricName] {
					t.Errorf("panel %q names %s/%s, not a known AWS metric", p.Title, q.Namespace, q.MetricName)
				}
			}
		}
	}
	for _, m := range metrics.Catalog {
		if !shown[m.Name] {
			t.Errorf("%s is emitted but on no panel", m.Name)
		}
	}
}
