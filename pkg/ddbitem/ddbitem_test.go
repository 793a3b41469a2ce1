package ddbitem

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestTimesSortAsStrings(t *testing.T) {
	a := time.Date(2026, 11, 27, 9, 0, 0, 5, time.UTC)
	b := a.Add(time.Nanosecond * 995)
	c := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("x", 3600)) // same instant as 09:00 UTC
	if !(Time(a) < Time(b)) || Time(c) != Time(a.Add(-5)) {
		t.Fatalf("%s %s %s", Time(a), Time(b), Time(c))
	}
	for _, in := range []time.Time{{}, a, b} {
		out, err := ParseTime(Time(in))
		if err != nil || !out.Equal(in) {
			t.Fatalf("round trip %v -> %v %v", in, out, err)
		}
	}
}

func TestHourBuckets(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	got := HourBuckets(now, 2*time.Hour)
	if fmt.Sprint(got) != "[2026-11-27T07 2026-11-27T08 2026-11-27T09]" {
		t.Fatal(got)
	}
	if EpochCeil(now.Add(time.Millisecond)) != now.Unix()+1 || EpochCeil(now) != now.Unix() {
		t.Fatal("EpochCeil must round up")
	}
}

func TestConditionFailed(t *testing.T) {
	if !ConditionFailed(fmt.Errorf("put: %w", &types.ConditionalCheckFailedException{})) || ConditionFailed(errors.New("x")) {
		t.Fatal("ConditionFailed")
	}
}
