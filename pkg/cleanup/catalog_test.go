package cleanup_test

import (
	"bufio"
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/metrics"
)

// What a cleanup run publishes is exactly what metrics.Catalog lists for
// it (name, unit, namespace, dimensions): the dashboards are built from the
// catalog, so a renamed or new metric must be catalogued to be seen.
func TestRunEmitsExactlyTheCatalogue(t *testing.T) {
	f := newFixture(cleanup.Settings{})
	f.c.Journal = journal.NewMemory() // with the journal: every metric is published
	if _, err := f.c.Run(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	type emitted struct {
		Unit metrics.Unit
		Dims map[string]string
	}
	got := map[string]emitted{}
	sc := bufio.NewScanner(f.emf)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		var aws struct {
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		b, _ := json.Marshal(line["_aws"])
		if err := json.Unmarshal(b, &aws); err != nil {
			t.Fatal(err)
		}
		for _, d := range aws.CloudWatchMetrics {
			if d.Namespace != metrics.Namespace {
				t.Errorf("namespace %q, want metrics.Namespace %q", d.Namespace, metrics.Namespace)
			}
			dims := map[string]string{}
			for _, set := range d.Dimensions {
				for _, k := range set {
					dims[k], _ = line[k].(string)
				}
			}
			for _, m := range d.Metrics {
				got[m.Name] = emitted{metrics.Unit(m.Unit), dims}
			}
		}
	}
	want := map[string]emitted{}
	for _, m := range metrics.Catalog {
		if m.Dimensions["Function"] == "cleanup" {
			want[m.Name] = emitted{m.Unit, m.Dimensions}
		}
	}
	if len(got) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("cleanup emits %v\ncatalogue lists %v", names(got), names(want))
		for n, g := range got {
			if w, ok := want[n]; !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("%s: emitted %+v, catalogued %+v", n, g, w)
			}
		}
	}
}

func names[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
