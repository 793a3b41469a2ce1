package tokencache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Table layout:
//
//	pk (S, key)                 "package#username"
//	key_id, edk, ct             KMS key, encrypted data key, sealed tokens
//	access_bucket, access_exp   by_access_expiry index: UTC hour and epoch
//	                            seconds of the access token's expiry
//	grace_bucket, ttl           by_grace index: UTC hour and epoch seconds
//	                            of GraceUntil; ttl is the table's TTL
const (
	IndexByAccessExpiry = schema.TokensByAccessExpiry
	IndexByGrace        = schema.TokensByGrace
	TTLAttribute        = schema.TTL
)

// Table describes the token cache table.
func Table(name string) schema.Table { return schema.Tokens.Named(name) }

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Dynamo is the DynamoDB Store; tokens are sealed with its Cipher.
type Dynamo struct {
	db     DynamoDB
	table  string
	cipher Cipher
	opts   options
}

var _ Store = (*Dynamo)(nil)

// NewDynamo returns a store over table (shaped by Table) sealing tokens
// with c (NewKMSCipher in production).
func NewDynamo(db DynamoDB, table string, c Cipher, opts ...Option) *Dynamo {
	return &Dynamo{db: db, table: table, cipher: c, opts: buildOptions(opts)}
}

type item struct {
	PK               string `dynamodbav:"pk"`
	Package          string `dynamodbav:"pkg"`
	Username         string `dynamodbav:"username"`
	KeyID            string `dynamodbav:"key_id"`
	EncryptedKey     []byte `dynamodbav:"edk"`
	Ciphertext       []byte `dynamodbav:"ct"`
	AccessExpiresAt  string `dynamodbav:"access_expires_at,omitempty"`
	RefreshExpiresAt string `dynamodbav:"refresh_expires_at,omitempty"`
	CachedAt         string `dynamodbav:"cached_at"`
	GraceUntil       string `dynamodbav:"grace_until"`
	AccessBucket     string `dynamodbav:"access_bucket,omitempty"`
	AccessExp        int64  `dynamodbav:"access_exp,omitempty"`
	GraceBucket      string `dynamodbav:"grace_bucket"`
	TTL              int64  `dynamodbav:"ttl"`
}

// secrets is what gets sealed: everything a token holder could use.
type secrets struct {
	AccessToken  string `json:"a"`
	RefreshToken string `json:"r,omitempty"`
	TokenType    string `json:"t,omitempty"`
}

// aad binds the sealed tokens to their entry and grace time.
func aad(pk, graceUntil string) []byte {
	return []byte("kcguard-tokencache\x00" + pk + "\x00" + graceUntil)
}

func pkKey(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": ddbitem.S(pk)}
}

// Put costs one PutItem (and, once per data key lifetime, a KMS call).
func (d *Dynamo) Put(ctx context.Context, rec Record) error {
	av, err := d.item(ctx, rec)
	if err != nil {
		return err
	}
	if _, err := d.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &d.table, Item: av}); err != nil {
		return fmt.Errorf("put cached token: %w", err)
	}
	return nil
}

// PutTx seals rec and builds the put Put would send, for a caller that
// writes all of a login's changes in one TransactWriteItems.
func (d *Dynamo) PutTx(ctx context.Context, rec Record) (types.TransactWriteItem, error) {
	av, err := d.item(ctx, rec)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{TableName: aws.String(d.table), Item: av}}, nil
}

func (d *Dynamo) item(ctx context.Context, rec Record) (map[string]types.AttributeValue, error) {
	rec, err := prepare(rec, d.opts)
	if err != nil {
		return nil, err
	}
	pk, _ := entryKey(rec.Package, rec.Username)
	plain, err := json.Marshal(secrets{AccessToken: rec.AccessToken, RefreshToken: rec.RefreshToken, TokenType: rec.TokenType})
	if err != nil {
		return nil, err
	}
	it := item{
		PK: pk, Package: rec.Package, Username: rec.Username,
		AccessExpiresAt: ddbitem.Time(rec.AccessExpiresAt), RefreshExpiresAt: ddbitem.Time(rec.RefreshExpiresAt),
		CachedAt: ddbitem.Time(rec.CachedAt), GraceUntil: ddbitem.Time(rec.GraceUntil),
		GraceBucket: ddbitem.HourBucket(rec.GraceUntil), TTL: ddbitem.EpochCeil(rec.GraceUntil),
	}
	sealed, err := d.cipher.Seal(ctx, plain, aad(pk, it.GraceUntil))
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal cached token %s: %w", pk, err)
	}
	it.KeyID, it.EncryptedKey, it.Ciphertext = sealed.KeyID, sealed.EncryptedKey, sealed.Ciphertext
	if !rec.AccessExpiresAt.IsZero() {
		it.AccessBucket, it.AccessExp = ddbitem.HourBucket(rec.AccessExpiresAt), ddbitem.EpochCeil(rec.AccessExpiresAt)
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode cached token: %w", err)
	}
	return av, nil
}

func (d *Dynamo) decode(ctx context.Context, av map[string]types.AttributeValue) (Record, error) {
	var it item
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Record{}, fmt.Errorf("decode cached token: %w", err)
	}
	r := Record{Package: it.Package, Username: it.Username}
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&r.AccessExpiresAt, it.AccessExpiresAt}, {&r.RefreshExpiresAt, it.RefreshExpiresAt}, {&r.CachedAt, it.CachedAt}, {&r.GraceUntil, it.GraceUntil}} {
		t, err := ddbitem.ParseTime(f.src)
		if err != nil {
			return Record{}, fmt.Errorf("decode cached token %s: %w", it.PK, err)
		}
		*f.dst = t
	}
	plain, err := d.cipher.Open(ctx, Sealed{KeyID: it.KeyID, EncryptedKey: it.EncryptedKey, Ciphertext: it.Ciphertext}, aad(it.PK, it.GraceUntil))
	if err != nil {
		return Record{}, fmt.Errorf("open cached token %s: %w", it.PK, err)
	}
	var sec secrets
	err = json.Unmarshal(plain, &sec)
	clear(plain)
	if err != nil {
		return Record{}, fmt.Errorf("decode cached token %s: %w", it.PK, err)
	}
	r.AccessToken, r.RefreshToken, r.TokenType = sec.AccessToken, sec.RefreshToken, sec.TokenType
	return normalize(r), nil
}

// Get costs one GetItem (no KMS call while the data key is cached).
func (d *Dynamo) Get(ctx context.Context, pkg, username string, now time.Time) (Record, error) {
	key, err := d.ItemKey(pkg, username)
	if err != nil {
		return Record{}, err
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Record{}, fmt.Errorf("get cached token %s#%s: %w", pkg, username, err)
	}
	return d.FromItem(ctx, out.Item, now)
}

// TableName is the table the store works on.
func (d *Dynamo) TableName() string { return d.table }

// ItemKey is the key of the user's entry, for a caller that reads it
// together with other items (BatchGetItem) and hands it to FromItem.
func (d *Dynamo) ItemKey(pkg, username string) (map[string]types.AttributeValue, error) {
	pk, err := entryKey(pkg, username)
	if err != nil {
		return nil, err
	}
	return pkKey(pk), nil
}

// FromItem is Get's answer for an item read elsewhere (nil: no entry).
func (d *Dynamo) FromItem(ctx context.Context, av map[string]types.AttributeValue, now time.Time) (Record, error) {
	if av == nil {
		return Record{}, fmt.Errorf("cached token: %w", ErrNotFound)
	}
	// Check the grace period before decrypting: a stale entry costs no KMS call.
	if g, ok := av["grace_until"].(*types.AttributeValueMemberS); ok {
		if t, err := ddbitem.ParseTime(g.Value); err == nil && !now.Before(t) {
			return Record{}, fmt.Errorf("cached token: %w", ErrNotFound)
		}
	}
	r, err := d.decode(ctx, av)
	if err != nil {
		return Record{}, err
	}
	if !usable(r, now) {
		return Record{}, fmt.Errorf("cached token: %w", ErrNotFound)
	}
	return r, nil
}

// Delete costs one DeleteItem.
func (d *Dynamo) Delete(ctx context.Context, pkg, username string) error {
	pk, err := entryKey(pkg, username)
	if err != nil {
		return err
	}
	if _, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &d.table, Key: pkKey(pk)}); err != nil {
		return fmt.Errorf("delete cached token %s: %w", pk, err)
	}
	return nil
}

// queryWindow Queries index over the hour buckets of the lookback window
// ending at end, oldest first, for items whose sort key is <= end: one
// Query per bucket (more for a bucket holding more than limit).
func (d *Dynamo) queryWindow(ctx context.Context, index, bucketAttr, sortAttr string, end time.Time, limit int,
	each func(map[string]types.AttributeValue) error) error {
	n := 0
	for _, b := range ddbitem.HourBuckets(end, d.opts.lookback) {
		var start map[string]types.AttributeValue
		for limit <= 0 || n < limit {
			in := &dynamodb.QueryInput{
				TableName:                 &d.table,
				IndexName:                 aws.String(index),
				KeyConditionExpression:    aws.String("#b = :b AND #s <= :end"),
				ExpressionAttributeNames:  map[string]string{"#b": bucketAttr, "#s": sortAttr},
				ExpressionAttributeValues: map[string]types.AttributeValue{":b": ddbitem.S(b), ":end": ddbitem.N(end.Unix())},
				ExclusiveStartKey:         start,
			}
			if limit > 0 {
				in.Limit = aws.Int32(int32(limit - n))
			}
			page, err := d.db.Query(ctx, in)
			if err != nil {
				return fmt.Errorf("query %s %s: %w", index, b, err)
			}
			for _, av := range page.Items {
				if err := each(av); err != nil {
					return err
				}
				n++
			}
			if page.LastEvaluatedKey == nil {
				break
			}
			start = page.LastEvaluatedKey
		}
	}
	return nil
}

// ListExpiring costs one Query per hour bucket of the lookback window.
func (d *Dynamo) ListExpiring(ctx context.Context, before time.Time, limit int) ([]Record, error) {
	var out []Record
	err := d.queryWindow(ctx, IndexByAccessExpiry, "access_bucket", "access_exp", before, limit, func(av map[string]types.AttributeValue) error {
		r, err := d.decode(ctx, av)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// DeleteExpired costs one Query per hour bucket of the lookback window and
// one conditional DeleteItem per expired entry. The condition keeps an
// entry that a login refreshed between the Query and the delete.
func (d *Dynamo) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	var pks []string
	err := d.queryWindow(ctx, IndexByGrace, "grace_bucket", TTLAttribute, now, limit, func(av map[string]types.AttributeValue) error {
		if v, ok := av["pk"].(*types.AttributeValueMemberS); ok {
			pks = append(pks, v.Value)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, pk := range pks {
		_, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName:                 &d.table,
			Key:                       pkKey(pk),
			ConditionExpression:       aws.String("#ttl <= :now"),
			ExpressionAttributeNames:  map[string]string{"#ttl": TTLAttribute},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": ddbitem.N(now.Unix())},
		})
		var ccf *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &ccf):
		case err != nil:
			return deleted, fmt.Errorf("delete cached token %s: %w", pk, err)
		default:
			deleted++
		}
	}
	return deleted, nil
}
