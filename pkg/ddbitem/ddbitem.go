// Package ddbitem holds the small encodings every DynamoDB store of kcguard
// shares, so the tables agree on them: one time layout, hour buckets for
// the expiry indexes, attribute constructors and the failed-condition test.
package ddbitem

import (
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// SortableTime is the fixed-width UTC layout times are stored in, so they
// compare correctly as strings in sort keys and condition expressions.
const SortableTime = "2006-01-02T15:04:05.000000000Z"

// Time formats t in SortableTime; the zero time is "".
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(SortableTime)
}

// ParseTime reads what Time wrote; "" is the zero time.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(SortableTime, s)
}

// EpochCeil is t in epoch seconds rounded up: a TTL attribute never ends an
// item before t.
func EpochCeil(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// HourBucket is the expiry-index partition of t: its UTC hour. Hour buckets
// spread writes and let cleanup Query only the hours that can hold expired
// items.
func HourBucket(t time.Time) string { return t.UTC().Format("2006-01-02T15") }

// HourBuckets lists the hour buckets from now-lookback to now, oldest first.
func HourBuckets(now time.Time, lookback time.Duration) []string {
	var out []string
	for t := now.Add(-lookback).UTC().Truncate(time.Hour); !t.After(now); t = t.Add(time.Hour) {
		out = append(out, HourBucket(t))
	}
	return out
}

// S is a string attribute.
func S(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// N is a number attribute.
func N(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// ConditionFailed reports whether err is a failed ConditionExpression.
func ConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
