package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Index names and the TTL attribute of the sessions table.
//
//	id (S, key)        public session ID derived from the token
//	token_hash         hex SHA-256 of the token, checked on every lookup
//	user_key, created  by_user index: "package#username", "<created>#<id>"
//	exp_bucket, ttl    by_expiry index: UTC hour of ExpiresAt, ExpiresAt in
//	                   epoch seconds; ttl is also the table's TTL attribute
//	seq                the session's place among its user's logins
//
// Each user's state item, id "user#<hint>" (see the package comment), holds
// pkg, username, valid_after, seq and ttl (the newest session's expiry:
// once it passes, every session the state judges is gone, so the item may
// go too). It has neither user_key nor exp_bucket, so neither index holds it.
//
// Times are stored in a fixed-width UTC form so they compare as strings in
// condition expressions.
const (
	IndexByUser   = schema.SessionsByUser
	IndexByExpiry = schema.SessionsByExpiry
	TTLAttribute  = schema.TTL
)

// Table describes the sessions table.
func Table(name string) schema.Table { return schema.Sessions.Named(name) }

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
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
	Seq           int64  `dynamodbav:"seq,omitempty"`
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
		Seq: r.Seq, Revoked: r.Revoked, RevokedAt: ddbitem.Time(r.RevokedAt),
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
		SourceIP: it.SourceIP, UserAgent: it.UserAgent, Seq: it.Seq, Revoked: it.Revoked,
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

func stateKey(pkg, username string) map[string]types.AttributeValue {
	return idKey(stateID(userHint(pkg, username)))
}

func stateID(hint string) string { return "user#" + hint }

type stateItem struct {
	ValidAfter string `dynamodbav:"valid_after"`
	Seq        int64  `dynamodbav:"seq"`
}

func fromStateItem(av map[string]types.AttributeValue) (userState, error) {
	if av == nil {
		return userState{}, nil
	}
	var it stateItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return userState{}, fmt.Errorf("decode session user state: %w", err)
	}
	t, err := ddbitem.ParseTime(it.ValidAfter)
	if err != nil {
		return userState{}, fmt.Errorf("decode session user state: %w", err)
	}
	return userState{ValidAfter: t, Seq: it.Seq}, nil
}

// admitCondition holds while the user's sessions were not revoked at or
// after :created (the login's start).
const admitCondition = "attribute_not_exists(valid_after) OR valid_after < :created"

// newItem builds a session's item with a fresh token.
func (d *Dynamo) newItem(rec Record) (token string, created Record, av map[string]types.AttributeValue, err error) {
	rec, token, hash, err := prepare(rec, d.opts)
	if err != nil {
		return "", Record{}, nil, err
	}
	av, err = attributevalue.MarshalMap(toItem(rec, hash))
	if err != nil {
		return "", Record{}, nil, fmt.Errorf("encode session: %w", err)
	}
	return token, rec, av, nil
}

// Reserve gives a session its place among the user's sessions (rec.Seq)
// for a caller that did not read the user's state (a login that did uses
// AdmitTx instead):
// one UpdateItem on the user's state, refused with ErrSuperseded when the
// user's sessions were revoked at or after rec.CreatedAt. Call it once the
// password is verified (a wrong password must not evict a session), then
// write CreateTx and GuardTx in one transaction. Without a cap
// (WithMaxPerUser(-1)) it costs nothing: Seq stays 0 and GuardTx alone
// holds revocations.
func (d *Dynamo) Reserve(ctx context.Context, rec Record) (Record, error) {
	rec.Username = userkey.NormalizeUsername(rec.Username)
	if _, err := userkey.New(rec.Package, rec.Username); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if d.opts.maxPerUser <= 0 {
		return rec, nil
	}
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(d.table),
		Key:                      stateKey(rec.Package, rec.Username),
		UpdateExpression:         aws.String("SET pkg = :p, username = :u, #ttl = :ttl ADD seq :one"),
		ConditionExpression:      aws.String(admitCondition),
		ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": ddbitem.S(rec.Package), ":u": ddbitem.S(rec.Username), ":one": ddbitem.N(1),
			":ttl": ddbitem.N(ddbitem.EpochCeil(rec.ExpiresAt)), ":created": ddbitem.S(ddbitem.Time(rec.CreatedAt)),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	if ddbitem.ConditionFailed(err) {
		return Record{}, fmt.Errorf("reserve session: %w", ErrSuperseded)
	}
	if err != nil {
		return Record{}, fmt.Errorf("reserve session: %w", err)
	}
	st, err := fromStateItem(out.Attributes)
	if err != nil {
		return Record{}, err
	}
	rec.Seq = st.Seq
	return rec, nil
}

// TableName is the sessions table, for a caller that reads a user's state
// together with other tables' items (BatchGetItem).
func (d *Dynamo) TableName() string { return d.table }

// StateKey is the key of the user's state item, for such a read.
func (d *Dynamo) StateKey(pkg, username string) map[string]types.AttributeValue {
	return stateKey(pkg, userkey.NormalizeUsername(username))
}

// SeqFromItem reads how many sessions the user was given from the state
// item StateKey found (nil: none yet).
func SeqFromItem(av map[string]types.AttributeValue) (int64, error) {
	st, err := fromStateItem(av)
	return st.Seq, err
}

// AdmitTx is the login transaction's update of the user's state when the
// caller read the user's Seq beforehand (StateKey with its other reads):
// rec.Seq is that Seq plus one, and the update counts the session, under
// the same condition as GuardTx, so no Reserve round trip is needed. Two
// concurrent logins of one user can take the same Seq; the cap then ends
// the older of them one login early, never late.
func (d *Dynamo) AdmitTx(rec Record) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.StateKey(rec.Package, rec.Username),
		UpdateExpression:         aws.String("SET pkg = :p, username = :u, #ttl = :ttl ADD seq :one"),
		ConditionExpression:      aws.String(admitCondition),
		ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": ddbitem.S(rec.Package), ":u": ddbitem.S(userkey.NormalizeUsername(rec.Username)), ":one": ddbitem.N(1),
			":ttl": ddbitem.N(ddbitem.EpochCeil(rec.ExpiresAt)), ":created": ddbitem.S(ddbitem.Time(rec.CreatedAt)),
		},
	}}
}

// GuardTx is the ConditionCheck that keeps a session out of the table when
// the user's sessions were revoked after its login began (between Reserve
// and the transaction): the transaction then fails and nothing is stored.
func (d *Dynamo) GuardTx(rec Record) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: aws.String(d.table), Key: stateKey(rec.Package, rec.Username),
		ConditionExpression:       aws.String(admitCondition),
		ExpressionAttributeValues: map[string]types.AttributeValue{":created": ddbitem.S(ddbitem.Time(rec.CreatedAt))},
	}}
}

// CreateTx builds the conditional put Create would send, for a caller that
// writes all of a login's changes in one TransactWriteItems (one round
// trip, all or nothing) together with GuardTx, after Reserve. The session
// exists only once that succeeds.
func (d *Dynamo) CreateTx(rec Record) (token string, created Record, item types.TransactWriteItem, err error) {
	token, created, av, err := d.newItem(rec)
	if err != nil {
		return "", Record{}, types.TransactWriteItem{}, err
	}
	return token, created, types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(d.table), Item: av, ConditionExpression: aws.String("attribute_not_exists(id)"),
	}}, nil
}

// Create costs one UpdateItem (Reserve) and one TransactWriteItems (the
// session and its guard).
func (d *Dynamo) Create(ctx context.Context, rec Record) (string, Record, error) {
	if _, _, _, err := prepare(rec, d.opts); err != nil {
		return "", Record{}, err // invalid: no Seq is spent on it
	}
	rec, err := d.Reserve(ctx, rec)
	if err != nil {
		return "", Record{}, err
	}
	token, rec, put, err := d.CreateTx(rec)
	if err != nil {
		return "", Record{}, err
	}
	// The idempotency token answers an SDK retry of a transaction that
	// landed with success instead of a failed attribute_not_exists.
	_, err = d.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{put, d.GuardTx(rec)}, ClientRequestToken: aws.String(rec.ID),
	})
	if reasons := CancelReasons(err); reasons != nil {
		// A retry of our own transaction that had landed fails every
		// condition it had met; it finds our hash.
		if reasons[0] && d.Landed(ctx, token, rec) {
			return token, rec, nil
		}
		if len(reasons) > 1 && reasons[1] {
			return "", Record{}, fmt.Errorf("create session: %w", ErrSuperseded)
		}
		return "", Record{}, fmt.Errorf("create session: %w", ErrAlreadyExists)
	}
	if err != nil {
		return "", Record{}, fmt.Errorf("create session: %w", err)
	}
	return token, rec, nil
}

// Landed reports whether the session a write created for token is stored:
// an SDK retry of a transaction that had landed fails the session's
// attribute_not_exists(id) (the ids are random, so nothing else can) and
// finds the token's hash. DynamoDB would honour the idempotency token
// instead; moto does not.
func (d *Dynamo) Landed(ctx context.Context, token string, rec Record) bool {
	_, hash, _, _ := derive(token)
	_, got, err := d.get(ctx, rec.ID)
	return err == nil && hashMatches(got, hash)
}

// CancelReasons reports, for a transaction cancelled by failed
// conditions, which of its items failed theirs (nil for any other error).
func CancelReasons(err error) []bool {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil
	}
	failed := make([]bool, len(tce.CancellationReasons))
	any := false
	for i, r := range tce.CancellationReasons {
		failed[i] = aws.ToString(r.Code) == "ConditionalCheckFailed"
		any = any || failed[i]
	}
	if !any {
		return nil
	}
	return failed
}

// get reads the session and its user's state strongly consistently (a
// revocation must hold at once): one GetItem each.
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
	r, hash, err := fromItem(out.Item)
	if err != nil {
		return Record{}, "", err
	}
	st, err := d.state(ctx, r.Package, r.Username)
	if err != nil {
		return Record{}, "", err
	}
	return normalize(st.judge(r, d.opts)), hash, nil
}

// state reads a user's state item strongly consistently.
func (d *Dynamo) state(ctx context.Context, pkg, username string) (userState, error) {
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.table, Key: stateKey(pkg, username), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return userState{}, fmt.Errorf("get session user state: %w", err)
	}
	return fromStateItem(out.Item)
}

// GetByToken costs one BatchGetItem reading the session and its user's
// state together (none for a malformed token).
func (d *Dynamo) GetByToken(ctx context.Context, token string, now time.Time) (Record, error) {
	id, hash, hint, ok := derive(token)
	if !ok {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	sess, stateAV, err := d.getPair(ctx, id, stateID(hint))
	if err != nil {
		return Record{}, err
	}
	if sess == nil {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	r, stored, err := fromItem(sess)
	if err != nil {
		return Record{}, err
	}
	if !hashMatches(stored, hash) || userHint(r.Package, r.Username) != hint {
		return Record{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	st, err := fromStateItem(stateAV)
	if err != nil {
		return Record{}, err
	}
	r = normalize(st.judge(r, d.opts))
	if err := r.Status(now); err != nil {
		return Record{}, fmt.Errorf("session %s: %w", id, err)
	}
	return r, nil
}

// getPair reads two items of the table in one consistent BatchGetItem
// (again for keys DynamoDB leaves unprocessed under throttling).
func (d *Dynamo) getPair(ctx context.Context, a, b string) (map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
	found := map[string]map[string]types.AttributeValue{}
	pending := map[string]types.KeysAndAttributes{d.table: {Keys: []map[string]types.AttributeValue{idKey(a), idKey(b)}, ConsistentRead: aws.Bool(true)}}
	for attempt := 0; len(pending[d.table].Keys) > 0; attempt++ {
		if attempt == 5 {
			return nil, nil, fmt.Errorf("get session: reads still throttled")
		}
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(time.Duration(attempt*20) * time.Millisecond):
			}
		}
		out, err := d.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: pending})
		if err != nil {
			return nil, nil, fmt.Errorf("get session: %w", err)
		}
		for _, av := range out.Responses[d.table] {
			if v, ok := av["id"].(*types.AttributeValueMemberS); ok {
				found[v.Value] = av
			}
		}
		pending = out.UnprocessedKeys
	}
	return found[a], found[b], nil
}

// GetByID costs two GetItems (the session, then its user's state).
func (d *Dynamo) GetByID(ctx context.Context, id string) (Record, error) {
	r, _, err := d.get(ctx, id)
	return r, err
}

// ListByUser costs one GetItem (the user's state) and one Query per page
// of the by_user index.
func (d *Dynamo) ListByUser(ctx context.Context, pkg, username string) ([]Record, error) {
	var (
		out   []Record
		start map[string]types.AttributeValue
	)
	// State first: a session the index shows is then judged by a state at
	// least as new as the session.
	st, err := d.state(ctx, pkg, username)
	if err != nil {
		return nil, err
	}
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
			out = append(out, normalize(st.judge(r, d.opts)))
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

// RevokeAllForUser costs ONE write, an UpdateItem raising the user's
// valid_after, whatever the number of sessions, plus the ListByUser reads
// of the informational count.
func (d *Dynamo) RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error) {
	username = userkey.NormalizeUsername(username)
	if _, err := userkey.New(pkg, username); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	list, err := d.ListByUser(ctx, pkg, username)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range list {
		if r.Active(now) {
			n++
		}
	}
	_, err = d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(d.table),
		Key:              stateKey(pkg, username),
		UpdateExpression: aws.String("SET pkg = :p, username = :u, valid_after = :now"),
		// Only ever raised: a later revocation already covers this one.
		ConditionExpression: aws.String("attribute_not_exists(valid_after) OR valid_after < :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":p": ddbitem.S(pkg), ":u": ddbitem.S(username), ":now": ddbitem.S(ddbitem.Time(now)),
		},
	})
	if err != nil && !ddbitem.ConditionFailed(err) {
		return 0, fmt.Errorf("revoke sessions of %s: %w", userKey(pkg, username), err)
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
