// Package metrics publishes metrics as CloudWatch Embedded Metric Format
// (EMF) log lines: one JSON object per Publish, written to the function's
// stdout, from which CloudWatch Logs extracts the metrics. Publishing costs
// no API call and cannot fail a Lambda run on a CloudWatch throttle, which
// is the Lambda idiom for metrics from scheduled functions.
package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

// The units kcguard uses.
const (
	Count        Unit = "Count"
	Seconds      Unit = "Seconds"
	Milliseconds Unit = "Milliseconds"
	None         Unit = "None"
)

// Value is one metric data point.
type Value struct {
	Name  string
	Value float64
	Unit  Unit // empty: None
}

// Publisher publishes data points under a namespace with one dimension set.
type Publisher interface {
	Publish(ctx context.Context, namespace string, dims map[string]string, values []Value) error
}

// maxMetrics is CloudWatch's limit of metrics per EMF directive.
const maxMetrics = 100

// EMF writes EMF lines to W (os.Stdout in Lambda). Safe for concurrent use:
// each line is written whole.
type EMF struct {
	W io.Writer
	// Now stamps each line (default time.Now).
	Now func() time.Time

	mu sync.Mutex
}

var _ Publisher = (*EMF)(nil)

type directive struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []metricDecl `json:"Metrics"`
}

type metricDecl struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// Publish writes one EMF object per 100 values (CloudWatch's limit per
// directive). Dimension values and metric values are top-level members of
// the object, as EMF requires, so a metric may not share a dimension's name.
func (p *EMF) Publish(_ context.Context, namespace string, dims map[string]string, values []Value) error {
	if namespace == "" {
		return fmt.Errorf("emf: empty namespace")
	}
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ts := now().UnixMilli()
	for start := 0; start < len(values) || start == 0; start += maxMetrics {
		chunk := values[start:min(len(values), start+maxMetrics)]
		if len(chunk) == 0 {
			return nil
		}
		obj := make(map[string]any, len(dims)+len(chunk)+1)
		for k, v := range dims {
			obj[k] = v
		}
		d := directive{Namespace: namespace, Dimensions: [][]string{keys}, Metrics: make([]metricDecl, 0, len(chunk))}
		for _, v := range chunk {
			if _, clash := dims[v.Name]; clash || v.Name == "_aws" || v.Name == "" {
				return fmt.Errorf("emf: metric name %q is empty or clashes with a dimension", v.Name)
			}
			u := v.Unit
			if u == "" {
				u = None
			}
			d.Metrics = append(d.Metrics, metricDecl{Name: v.Name, Unit: u})
			obj[v.Name] = v.Value
		}
		obj["_aws"] = map[string]any{"Timestamp": ts, "CloudWatchMetrics": []directive{d}}
		line, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("emf: %w", err)
		}
		p.mu.Lock()
		_, err = p.W.Write(append(line, '\n'))
		p.mu.Unlock()
		if err != nil {
			return fmt.Errorf("emf: write: %w", err)
		}
	}
	return nil
}

// Discard drops everything (tests, and commands that only print).
type Discard struct{}

// Publish implements Publisher.
func (Discard) Publish(context.Context, string, map[string]string, []Value) error { return nil }
