package tokencache

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
)

// CountCached counts entries still within their grace period (what a login
// during an outage could use): one Select=COUNT Query per hour bucket of the
// by_grace index from now to now+grace period. Nothing is decrypted.
func (d *Dynamo) CountCached(ctx context.Context, now time.Time) (int, error) {
	n := 0
	end := now.Add(d.opts.grace + time.Hour)
	for _, b := range ddbitem.HourBuckets(end, d.opts.grace+time.Hour) {
		in := d.graceQuery(b, now)
		in.Select = types.SelectCount
		c, err := d.count(ctx, in)
		if err != nil {
			return n, err
		}
		n += c
	}
	return n, nil
}

// CountExpiring counts what ListExpiring(before) would list, without
// reading or decrypting the entries.
func (d *Dynamo) CountExpiring(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for _, b := range ddbitem.HourBuckets(before, d.opts.lookback) {
		c, err := d.count(ctx, &dynamodb.QueryInput{
			TableName: &d.table, IndexName: aws.String(IndexByAccessExpiry), Select: types.SelectCount,
			KeyConditionExpression:    aws.String("access_bucket = :b AND access_exp <= :end"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":b": ddbitem.S(b), ":end": ddbitem.N(before.Unix())},
		})
		if err != nil {
			return n, err
		}
		n += c
	}
	return n, nil
}

// graceQuery asks the by_grace index for hour bucket b's entries still
// within their grace period at now.
func (d *Dynamo) graceQuery(b string, now time.Time) *dynamodb.QueryInput {
	return &dynamodb.QueryInput{
		TableName: &d.table, IndexName: aws.String(IndexByGrace),
		KeyConditionExpression:    aws.String("grace_bucket = :b AND #t > :now"),
		ExpressionAttributeNames:  map[string]string{"#t": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{":b": ddbitem.S(b), ":now": ddbitem.N(now.Unix())},
	}
}

func (d *Dynamo) count(ctx context.Context, in *dynamodb.QueryInput) (int, error) {
	n := 0
	for {
		out, err := d.db.Query(ctx, in)
		if err != nil {
			return n, err
		}
		n += int(out.Count)
		if out.LastEvaluatedKey == nil {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Cached is a cache entry as operators list it: whose it is and until when
// a login may use it. Never a token.
type Cached struct {
	Package    string    `json:"package"`
	Username   string    `json:"username"`
	GraceUntil time.Time `json:"grace_until"`
}

// ListCached lists up to limit (<= 0: all) entries still within their
// grace period, the soonest to end first, from the keys-only by_grace
// index: nothing is decrypted.
func (d *Dynamo) ListCached(ctx context.Context, now time.Time, limit int) ([]Cached, error) {
	out := []Cached{}
	end := now.Add(d.opts.grace + time.Hour)
	for _, b := range ddbitem.HourBuckets(end, d.opts.grace+time.Hour) {
		in := d.graceQuery(b, now)
		for {
			page, err := d.db.Query(ctx, in)
			if err != nil {
				return out, err
			}
			for _, av := range page.Items {
				pk, _ := av["pk"].(*types.AttributeValueMemberS)
				ttl, _ := av[TTLAttribute].(*types.AttributeValueMemberN)
				if pk == nil || ttl == nil {
					continue
				}
				pkg, user, _ := strings.Cut(pk.Value, "#")
				secs, _ := strconv.ParseInt(ttl.Value, 10, 64)
				out = append(out, Cached{Package: pkg, Username: user, GraceUntil: time.Unix(secs, 0).UTC()})
				if limit > 0 && len(out) >= limit {
					return out, nil
				}
			}
			if page.LastEvaluatedKey == nil {
				break
			}
			in.ExclusiveStartKey = page.LastEvaluatedKey
		}
	}
	return out, nil
}
