package benchstat

import "testing"

func TestStatistics(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if Median(v) != 3 || Median([]float64{4, 1, 3, 2}) != 2.5 || Median(nil) != 0 {
		t.Fatal("median")
	}
	if Percentile(v, 0.99) != 5 || Percentile(v, 0) != 1 || Percentile(v, 0.5) != 3 {
		t.Fatal("percentile")
	}
	if Mean(v) != 3 || v[0] != 5 {
		t.Fatal("mean, or the input was sorted in place")
	}
}
