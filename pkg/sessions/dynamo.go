package sessions

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Index names and the TTL attribute of the sessions table.
//
//	id (S, key)        public session ID derived from the token
//	token_hash         hex SHA-256 of the token, checked on every lookup
//	user_key, created  by_user index: "package#username", "<created>#<id>"
//	exp_bucket, ttl    by_expiry index: UTC hour of ExpiresAt, ExpiresAt in
//	                   epoch seconds; ttl is also the table's TTL attribute
//
// Times are stored in a fixed-width UTC form so they compare as strings in
// condition expressions.
const (
	IndexByUser   = "by_user"
	IndexByExpiry = "by_expiry"
	TTLAttribute  = "ttl"
)

// Table describes the sessions table.
func Table(name string) schema.Table {
	return schema.Table{
		Name:         name,
		PartitionKey: schema.Key{Name: "id", Type: schema.String},
		Indexes: []schema.Index{
			{Name: IndexByUser, PartitionKey: schema.Key{Name: "user_key", Type: schema.String},
				SortKey: &schema.Key{Name: "created", Type: schema.String}},
			// Cleanup needs only the key to delete: keys only.
			{Name: IndexByExpiry, PartitionKey: schema.Key{Name: "exp_bucket", Type: schema.String},
				SortKey: &schema.Key{Name: TTLAttribute, Type: schema.Number}, KeysOnly: true},
		},
		TTLAttribute: TTLAttribute,
	}
}

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Dynamo is the DynamoDB Store.
type Dynamo struct {
	db    DynamoDB
	table string
	opts  options
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns a store over table (shaped by Table).
func NewDynamo(db DynamoDB, table string, opts ...Option) *Dynamo {
	return &Dynamo{db: db, table: table, opts: buildOptions(opts)}
}

type item struct {
	ID            string `dynamodbav:"id"`
	TokenHash     string `dynamodbav:"token_hash"`
	Package       string `dynamodbav:"pkg"`
	Username      string `dynamodbav:"username"`
	UserKey       string `dynamodbav:"user_key"`
	Created       string `dynamodbav:"created"`
	AuthMode      string `dynamodbav:"auth_mode"`
	CreatedAt     string `dynamodbav:"created_at"`
	LastSeenAt    string `dynamodbav:"last_seen_at"`
	ExpiresAt     string `dynamodbav:"expires_at"`
	IdleExpiresAt string `dynamodbav:"idle_expires_at,omitempty"`
	SourceIP      string `dynamodbav:"source_ip,omitempty"`
	UserAgent     string `dynamodbav:"user_agent,omitempty"`
	Revoked       bool   `dynamodbav:"revoked"`
	RevokedAt     string `dynamodbav:"revoked_at,omitempty"`
	ExpBucket     string `dynamodbav:"exp_bucket"`
	TTL           int64  `dynamodbav:"ttl"`
}

func toItem(r Record, hash string) item {
	return item{
		ID: r.ID, TokenHash: hash, Package: r.Package, Username: r.Username,
		UserKey: userKey(r.Package, r.Username), Created: createdKey(r), AuthMode: string(r.AuthMode),
		CreatedAt: ddbitem.Time(r.CreatedAt), LastSeenAt: ddbitem.Time(r.LastSeenAt), ExpiresAt: ddbitem.Time(r.ExpiresAt),
		IdleExpiresAt: ddbitem.Time(r.IdleExpiresAt), SourceIP: r.SourceIP, UserAgent: r.UserAgent,
		Revoked: r.Revoked, RevokedAt: ddbitem.Time(r.RevokedAt),
		ExpBucket: ddbitem.HourBucket(r.ExpiresAt), TTL: ddbitem.EpochCeil(r.ExpiresAt),
	}
}

func fromItem(av map[string]types.AttributeValue) (Record, string, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Record{}, "", fmt.Errorf("decode session: %w", err)
	}
	r := Record{
		ID: it.ID, Package: it.Package, Username: it.Username, AuthMode: AuthMode(it.AuthMode),
		SourceIP: it.SourceIP, UserAgent: it.UserAgent, Revoked: it.Revoked,
	}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&r.CreatedAt, it.CreatedAt}, {&r.LastSeenAt, it.LastSeenAt}, {&r.ExpiresAt, it.ExpiresAt}, {&r.IdleExpiresAt, it.IdleExpiresAt}, {&r.RevokedAt, it.RevokedAt}} {
		t, err := ddbitem.ParseTime(f.src)
		if err != nil {
			return Record{}, "", fmt.Errorf("decode session %s: %w", it.ID, err)
		}
		*f.dst = t
	}
	return normalize(r), it.TokenHash, nil
}

func idKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"id": ddbitem.S(id)}
}

// newItem builds a session's item with a fresh token.
func (d *Dynamo) newItem(rec Record) (token string, created Record, av map[string]types.AttributeValue, err error) {
	token, id, hash, err := newToken()
	if err != nil {
		return "", Record{}, nil, err
	}
	rec, err = prepare(rec, id, d.opts)
	if err != nil {
		return "", Record{}, nil, err
	}
	av, err = attributevalue.MarshalMap(toItem(rec, hash))
	if err != nil {
		return "", Record{}, nil, fmt.Errorf("encode session: %w", err)
	}
	return token, rec, av, nil
}

// CreateTx builds the conditional put Create would send, for a caller that
// writes all of a login's changes in one TransactWriteItems (one round
// trip, all or nothing). The session exists only once that succeeds.
func (d *Dynamo) CreateTx(rec Record) (token string, created Record, item types.TransactWriteItem, err error) {
	token, created, av, err := d.newItem(rec)
	if err != nil {
		return "", Record{}, types.TransactWriteItem{}, err
	}
	return token, created, types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(d.table), Item: av, ConditionExpression: aws.String("attribute_not_exists(id)"),
	}}, nil
}

// Create costs one conditional PutItem.
func (d *Dynamo) Create(ctx context.Context, rec Record) (string, Record, error) {
	token, rec, av, err := d.newItem(rec)
	if err != nil {
		return "", Record{}, err
	}
	_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &d.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(id)"),
	})
	if ddbitem.ConditionFailed(err) {
		if d.Landed(ctx, token, rec) {
			return token, rec, nil
		}
		return "", Record{}, fmt.Errorf("create session: %w", ErrAlreadyExists)
	}
	if err != nil {
		return "", Record{}, fmt.Errorf("create session: %w", err)
	}
	return token, rec, nil
}

// Landed reports whether the session a write created for token is stored:
// an SDK retry of a write that had landed fails the write's
// attribute_not_exists(id) (the session ids are random, so nothing else
// can) and finds the token's hash. DynamoDB would honour a transaction's
// idempotency token instead; moto does not.
func (d *Dynamo) Landed(ctx context.Context, token string, rec Record) bool {
	_, hash, _ := derive(token)
	_, got, err := d.get(ctx, rec.ID)
	return err == nil && hashMatches(got, hash)
}

// get reads strongly consistently: a revocation must hold at once.
func (d *Dynamo) get(ctx context.Context, id string) (Record, string, error) {
	if !validID(id) {
		return Record{}, "", fmt.Errorf("get session %.32q: %w", id, ErrNotFound)
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.table, Key: idKey(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Record{}, "", fmt.Errorf("get session %s: %w", id, err)
	}
	if out.Item == nil {
		return Record{}, "", fmt.Errorf("get session %s: %w", id, ErrNotFound)
	}
	return fromItem(out.Item)
}

// GetByToken costs one GetItem (none for a malformed token).
func (d *Dynamo) GetByToken(ctx context.Context, token string, now time.Time) (Record, error) {
	id, hash, ok := derive(token)
	if !ok {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	r, stored, err := d.get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	if !hashMatches(stored, hash) {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	if err := r.Status(now); err != nil {
		return Record{}, fmt.Errorf("session %s: %w", id, err)
	}
	return r, nil
}

// GetByID costs one GetItem.
func (d *Dynamo) GetByID(ctx context.Context, id string) (Record, error) {
	r, _, err := d.get(ctx, id)
	return r, err
}

// ListByUser costs one Query per page of the by_user index.
func (d *Dynamo) ListByUser(ctx context.Context, pkg, username string) ([]Record, error) {
	var (
		out   []Record
		start map[string]types.AttributeValue
	)
	for {
		page, err := d.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 &d.table,
			IndexName:                 aws.String(IndexByUser),
			KeyConditionExpression:    aws.String("user_key = :u"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":u": ddbitem.S(userKey(pkg, username))},
			ScanIndexForward:          aws.Bool(false),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("list sessions of %s: %w", userKey(pkg, username), err)
		}
		for _, av := range page.Items {
			r, _, err := fromItem(av)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if page.LastEvaluatedKey == nil {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// Revoke costs one UpdateItem (plus a GetItem when it was already revoked
// or is missing, to tell which).
func (d *Dynamo) Revoke(ctx context.Context, id string, now time.Time) error {
	if !validID(id) {
		return fmt.Errorf("revoke session %.32q: %w", id, ErrNotFound)
	}
	_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &d.table,
		Key:              idKey(id),
		UpdateExpression: aws.String("SET revoked = :t, revoked_at = :now"),
		// Keep the first revocation time.
		ConditionExpression:       aws.String("attribute_exists(id) AND revoked = :f"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}, ":f": &types.AttributeValueMemberBOOL{Value: false}, ":now": ddbitem.S(ddbitem.Time(now))},
	})
	if ddbitem.ConditionFailed(err) {
		_, _, gerr := d.get(ctx, id)
		return gerr // nil: already revoked
	}
	if err != nil {
		return fmt.Errorf("revoke session %s: %w", id, err)
	}
	return nil
}

// RevokeAllForUser costs one Query plus one UpdateItem per live session.
func (d *Dynamo) RevokeAllForUser(ctx context.Context, pkg, username, exceptID string, now time.Time) (int, error) {
	list, err := d.ListByUser(ctx, pkg, username)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range list {
		if r.ID == exceptID || !r.Active(now) {
			continue
		}
		if err := d.Revoke(ctx, r.ID, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Touch costs one conditional UpdateItem; the condition does the throttling,
// so a throttled touch is a failed condition, not a read.
func (d *Dynamo) Touch(ctx context.Context, id string, now time.Time) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	vals := map[string]types.AttributeValue{
		":now":   ddbitem.S(ddbitem.Time(now)),
		":stale": ddbitem.S(ddbitem.Time(now.Add(-d.opts.touchInterval))),
		":f":     &types.AttributeValueMemberBOOL{Value: false},
	}
	set := "SET last_seen_at = :now"
	if d.opts.idleTimeout > 0 {
		set += ", idle_expires_at = :idle"
		vals[":idle"] = ddbitem.S(ddbitem.Time(now.Add(d.opts.idleTimeout)))
	}
	_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &d.table,
		Key:              idKey(id),
		UpdateExpression: aws.String(set),
		ConditionExpression: aws.String("attribute_exists(id) AND revoked = :f AND last_seen_at <= :stale AND expires_at > :now" +
			" AND (attribute_not_exists(idle_expires_at) OR idle_expires_at > :now)"),
		ExpressionAttributeValues: vals,
	})
	switch {
	case ddbitem.ConditionFailed(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("touch session %s: %w", id, err)
	}
	return true, nil
}

// DeleteExpired costs one Query per hour bucket in the lookback window
// (more for a bucket holding over limit) and one BatchWriteItem per 25
// deletions: reads grow with the expired sessions, never with the table.
func (d *Dynamo) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	deleted := 0
	for _, b := range ddbitem.HourBuckets(now, d.opts.expiryLookback) {
		if limit > 0 && deleted >= limit {
			break
		}
		var (
			ids   []string
			start map[string]types.AttributeValue
		)
		for limit <= 0 || deleted+len(ids) < limit {
			in := &dynamodb.QueryInput{
				TableName:                 &d.table,
				IndexName:                 aws.String(IndexByExpiry),
				KeyConditionExpression:    aws.String("exp_bucket = :b AND #ttl <= :now"),
				ExpressionAttributeNames:  map[string]string{"#ttl": TTLAttribute},
				ExpressionAttributeValues: map[string]types.AttributeValue{":b": ddbitem.S(b), ":now": ddbitem.N(now.Unix())},
				ExclusiveStartKey:         start,
			}
			if limit > 0 {
				in.Limit = aws.Int32(int32(limit - deleted - len(ids)))
			}
			page, err := d.db.Query(ctx, in)
			if err != nil {
				return deleted, fmt.Errorf("query expired sessions %s: %w", b, err)
			}
			for _, av := range page.Items {
				if v, ok := av["id"].(*types.AttributeValueMemberS); ok {
					ids = append(ids, v.Value)
				}
			}
			if page.LastEvaluatedKey == nil {
				break
			}
			start = page.LastEvaluatedKey
		}
		// Delete bucket by bucket: a run stopped by its time budget keeps
		// what it did, and the next run starts where this one stopped.
		n, err := d.deleteIDs(ctx, ids)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

func (d *Dynamo) deleteIDs(ctx context.Context, ids []string) (int, error) {
	deleted := 0
	for len(ids) > 0 {
		chunk := ids[:min(25, len(ids))]
		ids = ids[len(chunk):]
		reqs := make([]types.WriteRequest, len(chunk))
		for i, id := range chunk {
			reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: idKey(id)}}
		}
		pending := map[string][]types.WriteRequest{d.table: reqs}
		for attempt := 0; len(pending[d.table]) > 0; attempt++ {
			if attempt == 5 {
				return deleted, fmt.Errorf("delete expired sessions: %d deletes still throttled", len(pending[d.table]))
			}
			if attempt > 0 {
				select {
				case <-ctx.Done():
					return deleted, ctx.Err()
				case <-time.After(time.Duration(attempt*50) * time.Millisecond):
				}
			}
			out, err := d.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return deleted, fmt.Errorf("delete expired sessions: %w", err)
			}
			deleted += len(pending[d.table]) - len(out.UnprocessedItems[d.table])
			pending = out.UnprocessedItems
		}
	}
	return deleted, nil
}
