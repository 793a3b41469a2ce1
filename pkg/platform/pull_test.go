package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kcguard/kcguard/pkg/metrics"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/pull"
)

// One EMF line per package: an operator alarms on PullFailed, and watches
// PullCompare (events off or missed windows) and PullMalformed.
func TestPublishPull(t *testing.T) {
	var buf bytes.Buffer
	platform.PublishPull(context.Background(), &metrics.EMF{W: &buf}, []pull.Result{
		{Package: "homechoice", Mode: pull.ModeCompare, Reason: "first run", Disabled: 2, DurationMS: 812, Malformed: []string{"x"}},
		{Package: "janee", Error: "keycloak unavailable"},
	})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per package:\n%s", buf.String())
	}
	var hc, jn map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &hc)
	_ = json.Unmarshal([]byte(lines[1]), &jn)
	if hc["Package"] != "homechoice" || hc["PullCompare"] != 1.0 || hc["PullDisabled"] != 2.0 || hc["PullDuration"] != 812.0 ||
		hc["PullMalformed"] != 1.0 || hc["PullFailed"] != 0.0 {
		t.Errorf("homechoice: %v", hc)
	}
	if jn["Package"] != "janee" || jn["PullFailed"] != 1.0 || jn["PullSkipped"] != 0.0 {
		t.Errorf("janee: %v", jn)
	}
}

// What a pull publishes is exactly what metrics.Catalog lists under the
// Package dimension (names, units): the dashboards are built from it.
func TestPublishPullEmitsTheCatalogue(t *testing.T) {
	var buf bytes.Buffer
	platform.PublishPull(context.Background(), &metrics.EMF{W: &buf}, []pull.Result{{Package: "homechoice"}})
	var line struct {
		AWS struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || len(line.AWS.CloudWatchMetrics) != 1 {
		t.Fatalf("not one EMF directive: %v %s", err, buf.String())
	}
	d := line.AWS.CloudWatchMetrics[0]
	got := map[string]string{}
	for _, m := range d.Metrics {
		got[m.Name] = m.Unit
	}
	want := map[string]string{}
	for _, m := range metrics.Catalog {
		if m.Dimensions["Package"] == metrics.AnyValue {
			want[m.Name] = string(m.Unit)
		}
	}
	if d.Namespace != metrics.Namespace || len(d.Dimensions) != 1 || strings.Join(d.Dimensions[0], ",") != "Package" ||
		!reflect.DeepEqual(got, want) {
		t.Errorf("pull emits %s %v %v,\ncatalogue lists %v", d.Namespace, d.Dimensions, got, want)
	}
}
