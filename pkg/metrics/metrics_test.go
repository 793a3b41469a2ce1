package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEMFShape(t *testing.T) {
	var buf bytes.Buffer
	p := &EMF{W: &buf, Now: func() time.Time { return time.UnixMilli(1700000000123) }}
	err := p.Publish(context.Background(), "kcguard", map[string]string{"Function": "cleanup", "Stage": "local"},
		[]Value{{Name: "SessionsDeleted", Value: 1000, Unit: Count}, {Name: "BreakerState", Value: 2}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d: %q", len(lines), buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"BreakerState":2,"Function":"cleanup","SessionsDeleted":1000,"Stage":"local","_aws":{"CloudWatchMetrics":[{"Dimensions":[["Function","Stage"]],"Metrics":[{"Name":"SessionsDeleted","Unit":"Count"},{"Name":"BreakerState","Unit":"None"}],"Namespace":"kcguard"}],"Timestamp":1700000000123}}`
	norm, _ := json.Marshal(got)
	if string(norm) != want {
		t.Fatalf("EMF object:\n got %s\nwant %s", norm, want)
	}
}

func TestEMFSplitsAtHundredMetrics(t *testing.T) {
	var buf bytes.Buffer
	p := &EMF{W: &buf}
	var vals []Value
	for i := range 150 {
		vals = append(vals, Value{Name: fmt.Sprintf("m%03d", i), Value: float64(i), Unit: Count})
	}
	if err := p.Publish(context.Background(), "kcguard", nil, vals); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d", len(lines))
	}
	for i, l := range lines {
		var obj struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Dimensions [][]string
					Metrics    []struct{ Name string }
				}
			} `json:"_aws"`
		}
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatal(err)
		}
		n := len(obj.AWS.CloudWatchMetrics[0].Metrics)
		if (i == 0 && n != 100) || (i == 1 && n != 50) {
			t.Fatalf("line %d has %d metrics", i, n)
		}
		if d := obj.AWS.CloudWatchMetrics[0].Dimensions; len(d) != 1 || len(d[0]) != 0 {
			t.Fatalf("no dimensions must be one empty dimension set, got %v", d)
		}
	}
}

func TestEMFRejects(t *testing.T) {
	p := &EMF{W: &bytes.Buffer{}}
	for name, tc := range map[string]struct {
		ns   string
		dims map[string]string
		vals []Value
	}{
		"empty namespace":       {"", nil, []Value{{Name: "a"}}},
		"metric named like dim": {"kcguard", map[string]string{"Function": "x"}, []Value{{Name: "Function"}}},
		"empty metric name":     {"kcguard", nil, []Value{{Name: ""}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := p.Publish(context.Background(), tc.ns, tc.dims, tc.vals); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
