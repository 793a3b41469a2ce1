package status

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "2026-11-30T12:00:00Z", want: now.Add(-24 * time.Hour)},
		{in: "yesterday", bad: true},
		{in: "-3h", bad: true},
		{in: "91d", bad: true},
		{in: "2027-01-01T00:00:00Z", bad: true},
		{in: "xd", bad: true},
	}
	for _, c := range cases {
		got, err := ParseSince(c.in, now)
		if (err != nil) != c.bad || (!c.bad && !got.Equal(c.want)) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
}
