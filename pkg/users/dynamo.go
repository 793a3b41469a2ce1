package users

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
)

// Table layout. One partition per user key ("package#username") holding up
// to two items, told apart by the sort key:
//
//	sk=user     the account; carries pkg+username (by_package index) and,
//	            while Version > KeycloakSyncedVersion, unsynced_pkg (unsynced index)
//	sk=lockout  failure counters, for known and unknown usernames alike;
//	            expires_at (epoch seconds) is the table's TTL attribute and
//	            is only ever set on lockout items, never on accounts
const (
	IndexByPackage = "by_package"
	IndexUnsynced  = "unsynced"

	skUser    = "user"
	skLockout = "lockout"
)

// Table describes the users table.
func Table(name string) schema.Table {
	username := &schema.Key{Name: "username", Type: schema.String}
	return schema.Table{
		Name:         name,
		PartitionKey: schema.Key{Name: "pk", Type: schema.String},
		SortKey:      &schema.Key{Name: "sk", Type: schema.String},
		Indexes: []schema.Index{
			{Name: IndexByPackage, PartitionKey: schema.Key{Name: "pkg", Type: schema.String}, SortKey: username},
			{Name: IndexUnsynced, PartitionKey: schema.Key{Name: "unsynced_pkg", Type: schema.String}, SortKey: username},
		},
		TTLAttribute: "expires_at",
	}
}

// DynamoDB is the part of *dynamodb.Client the store uses.
type DynamoDB interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
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

type userItem struct {
	PK                string            `dynamodbav:"pk"`
	SK                string            `dynamodbav:"sk"`
	Pkg               string            `dynamodbav:"pkg"`
	Username          string            `dynamodbav:"username"`
	UnsyncedPkg       string            `dynamodbav:"unsynced_pkg,omitempty"`
	Email             string            `dynamodbav:"email,omitempty"`
	Attributes        map[string]string `dynamodbav:"attributes,omitempty"`
	Enabled           bool              `dynamodbav:"enabled"`
	HashAlgorithm     string            `dynamodbav:"hash_algorithm,omitempty"`
	SecretData        string            `dynamodbav:"secret_data,omitempty"`
	CredentialData    string            `dynamodbav:"credential_data,omitempty"`
	Version           int64             `dynamodbav:"version"`
	SyncedVersion     int64             `dynamodbav:"keycloak_synced_version"`
	KeycloakID        string            `dynamodbav:"keycloak_id,omitempty"`
	CreatedAt         string            `dynamodbav:"created_at,omitempty"`
	UpdatedAt         string            `dynamodbav:"updated_at,omitempty"`
	PasswordChangedAt string            `dynamodbav:"password_changed_at,omitempty"`
	HashStale         bool              `dynamodbav:"hash_stale,omitempty"`
	RequiredActions   []string          `dynamodbav:"required_actions,omitempty"`
	ConfirmedAt       string            `dynamodbav:"keycloak_confirmed_at,omitempty"`
}

type lockoutItem struct {
	FailedAttempts int    `dynamodbav:"failed_attempts"`
	LastFailureAt  string `dynamodbav:"last_failure_at,omitempty"`
	LockedUntil    string `dynamodbav:"locked_until,omitempty"`
	ExpiresAt      int64  `dynamodbav:"expires_at"`
}

func toItem(u User) userItem {
	it := userItem{
		PK: u.Key().String(), SK: skUser, Pkg: u.Package, Username: u.Username,
		Email: u.Email, Attributes: u.Attributes, Enabled: u.Enabled,
		HashAlgorithm: u.Hash.Algorithm, SecretData: u.Hash.SecretData, CredentialData: u.Hash.CredentialData,
		Version: u.Version, SyncedVersion: u.KeycloakSyncedVersion, KeycloakID: u.KeycloakID,
		CreatedAt: ddbitem.Time(u.CreatedAt), UpdatedAt: ddbitem.Time(u.UpdatedAt), PasswordChangedAt: ddbitem.Time(u.PasswordChangedAt),
		HashStale: u.HashStale, RequiredActions: u.RequiredActions, ConfirmedAt: ddbitem.Time(u.KeycloakConfirmedAt),
	}
	if u.Unsynced() {
		it.UnsyncedPkg = u.Package
	}
	return it
}

func fromItem(av map[string]types.AttributeValue) (User, error) {
	var it userItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return User{}, fmt.Errorf("decode user: %w", err)
	}
	u := User{
		Package: it.Pkg, Username: it.Username, Email: it.Email, Attributes: it.Attributes, Enabled: it.Enabled,
		Hash:    Hash{Algorithm: it.HashAlgorithm, SecretData: it.SecretData, CredentialData: it.CredentialData},
		Version: it.Version, KeycloakSyncedVersion: it.SyncedVersion, KeycloakID: it.KeycloakID,
		HashStale: it.HashStale, RequiredActions: it.RequiredActions,
	}
	if len(u.RequiredActions) == 0 {
		u.RequiredActions = nil
	}
	if len(u.Attributes) == 0 {
		u.Attributes = nil
	}
	var err error
	if u.CreatedAt, err = ddbitem.ParseTime(it.CreatedAt); err == nil {
		if u.UpdatedAt, err = ddbitem.ParseTime(it.UpdatedAt); err == nil {
			if u.PasswordChangedAt, err = ddbitem.ParseTime(it.PasswordChangedAt); err == nil {
				u.KeycloakConfirmedAt, err = ddbitem.ParseTime(it.ConfirmedAt)
			}
		}
	}
	return u, err
}

func fromLockoutItem(av map[string]types.AttributeValue, now time.Time) (Lockout, error) {
	var it lockoutItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Lockout{}, fmt.Errorf("decode lockout: %w", err)
	}
	// TTL deletes lazily (up to days late; moto never), so an expired
	// counter must read as zero here.
	if it.ExpiresAt <= now.Unix() {
		return Lockout{}, nil
	}
	l := Lockout{FailedAttempts: it.FailedAttempts}
	var err error
	if l.LastFailureAt, err = ddbitem.ParseTime(it.LastFailureAt); err == nil {
		l.LockedUntil, err = ddbitem.ParseTime(it.LockedUntil)
	}
	return l, err
}

func (d *Dynamo) itemKey(k Key, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: k.String()},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// Get costs one GetItem.
func (d *Dynamo) Get(ctx context.Context, key Key) (User, error) {
	key, err := key.normalize()
	if err != nil {
		return User{}, err
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &d.table, Key: d.itemKey(key, skUser), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", key, err)
	}
	if out.Item == nil {
		return User{}, fmt.Errorf("get user %s: %w", key, ErrNotFound)
	}
	return fromItem(out.Item)
}

// Lookup costs one Query: both items share the partition.
func (d *Dynamo) Lookup(ctx context.Context, key Key, now time.Time) (Entry, error) {
	key, err := key.normalize()
	if err != nil {
		return Entry{}, err
	}
	out, err := d.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &d.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s(key.String())},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return Entry{}, fmt.Errorf("lookup user %s: %w", key, err)
	}
	var e Entry
	for _, item := range out.Items {
		sk, _ := item["sk"].(*types.AttributeValueMemberS)
		if sk == nil {
			continue
		}
		switch sk.Value {
		case skUser:
			if e.User, err = fromItem(item); err != nil {
				return Entry{}, err
			}
			e.Found = true
		case skLockout:
			if e.Lockout, err = fromLockoutItem(item, now); err != nil {
				return Entry{}, err
			}
		}
	}
	return e, nil
}

// Create costs one conditional PutItem.
func (d *Dynamo) Create(ctx context.Context, u User, now time.Time) (User, error) {
	u, err := prepareNew(u, now)
	if err != nil {
		return User{}, err
	}
	av, err := attributevalue.MarshalMap(toItem(u))
	if err != nil {
		return User{}, fmt.Errorf("encode user: %w", err)
	}
	_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &d.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	switch {
	case ddbitem.ConditionFailed(err):
		// The SDK retries a write whose response was lost; if the item
		// there is exactly ours, the first attempt landed.
		if cur, gerr := d.Get(ctx, u.Key()); gerr == nil && sameWrite(cur, u) {
			return u, nil
		}
		return User{}, fmt.Errorf("create user %s: %w", u.Key(), ErrAlreadyExists)
	case err != nil:
		return User{}, fmt.Errorf("create user %s: %w", u.Key(), err)
	}
	return u, nil
}

// change runs one conditional UpdateItem that raises the version; only a
// failed condition costs a second call (GetItem), to tell a missing user
// from a lost race, and a lost race from an SDK retry of our own write that
// had landed (mine recognises it).
func (d *Dynamo) change(ctx context.Context, key Key, expected int64, set string, vals map[string]types.AttributeValue, remove string, mine func(User) bool) (User, error) {
	key, err := key.normalize()
	if err != nil {
		return User{}, err
	}
	vals[":ev"] = n(expected)
	vals[":nv"] = n(expected + 1)
	// Version only moves up from here and KeycloakSyncedVersion never
	// exceeds the old version, so the new version is always unsynced.
	vals[":pkg"] = s(key.Package)
	expr := "SET " + set + ", version = :nv, unsynced_pkg = :pkg"
	if remove != "" {
		expr += " REMOVE " + remove
	}
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &d.table,
		Key:                       d.itemKey(key, skUser),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(pk) AND version = :ev"),
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if ddbitem.ConditionFailed(err) {
		cur, gerr := d.Get(ctx, key)
		if gerr != nil {
			return User{}, gerr
		}
		if cur.Version == expected+1 && mine(cur) {
			return cur, nil
		}
		return User{}, fmt.Errorf("update user %s: expected version %d: %w", key, expected, ErrVersionConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("update user %s: %w", key, err)
	}
	return fromItem(out.Attributes)
}

// UpdatePassword costs one UpdateItem (plus a GetItem on conflict).
func (d *Dynamo) UpdatePassword(ctx context.Context, key Key, expected int64, h Hash, now time.Time) (User, error) {
	return d.change(ctx, key, expected,
		"hash_algorithm = :alg, secret_data = :sd, credential_data = :cd, updated_at = :now, password_changed_at = :now",
		map[string]types.AttributeValue{
			":alg": s(h.Algorithm), ":sd": s(h.SecretData), ":cd": s(h.CredentialData), ":now": s(ddbitem.Time(now)),
		}, "", samePassword(h, now))
}

// UpdateProfile costs one UpdateItem (plus a GetItem on conflict).
func (d *Dynamo) UpdateProfile(ctx context.Context, key Key, expected int64, p Profile, now time.Time) (User, error) {
	vals := map[string]types.AttributeValue{
		":email": s(p.Email), ":en": &types.AttributeValueMemberBOOL{Value: p.Enabled}, ":now": s(ddbitem.Time(now)),
	}
	set := "email = :email, enabled = :en, updated_at = :now"
	remove := "attributes"
	if len(p.Attributes) > 0 {
		av, err := attributevalue.Marshal(p.Attributes)
		if err != nil {
			return User{}, fmt.Errorf("encode attributes: %w", err)
		}
		vals[":attrs"] = av
		set += ", attributes = :attrs"
		remove = ""
	}
	return d.change(ctx, key, expected, set, vals, remove, sameProfile(p, now))
}

// MarkSynced costs one UpdateItem when version is the current one (the
// usual case), two when a newer change is already pending, and a GetItem
// more when nothing was raised, to say why.
func (d *Dynamo) MarkSynced(ctx context.Context, key Key, version int64) (bool, error) {
	key, err := key.normalize()
	if err != nil {
		return false, err
	}
	// An update expression cannot REMOVE conditionally, so the two cases
	// are two conditional writes: caught up (leave the unsynced index) or
	// still behind (stay in it).
	attempts := []struct{ expr, cond string }{
		{"SET keycloak_synced_version = :v REMOVE unsynced_pkg", "attribute_exists(pk) AND keycloak_synced_version < :v AND version = :v"},
		{"SET keycloak_synced_version = :v", "attribute_exists(pk) AND keycloak_synced_version < :v AND version > :v"},
	}
	for _, a := range attempts {
		_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &d.table,
			Key:                       d.itemKey(key, skUser),
			UpdateExpression:          aws.String(a.expr),
			ConditionExpression:       aws.String(a.cond),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": n(version)},
		})
		if err == nil {
			return true, nil
		}
		if !ddbitem.ConditionFailed(err) {
			return false, fmt.Errorf("mark synced %s: %w", key, err)
		}
	}
	u, err := d.Get(ctx, key)
	switch {
	case err != nil:
		return false, err
	case u.KeycloakSyncedVersion >= version:
		return false, nil
	default:
		return false, fmt.Errorf("mark synced %s: version %d above current %d: %w", key, version, u.Version, ErrVersionConflict)
	}
}

// SetKeycloakID costs one UpdateItem.
func (d *Dynamo) SetKeycloakID(ctx context.Context, key Key, id string) error {
	key, err := key.normalize()
	if err != nil {
		return err
	}
	_, err = d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &d.table,
		Key:                       d.itemKey(key, skUser),
		UpdateExpression:          aws.String("SET keycloak_id = :id"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": s(id)},
	})
	if ddbitem.ConditionFailed(err) {
		return fmt.Errorf("set keycloak id %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set keycloak id %s: %w", key, err)
	}
	return nil
}

// RecordKeycloakState costs one conditional UpdateItem (plus a GetItem on
// a failed condition, to say why).
func (d *Dynamo) RecordKeycloakState(ctx context.Context, key Key, expected int64, st KeycloakState) (User, error) {
	key, err := key.normalize()
	if err != nil {
		return User{}, err
	}
	vals := map[string]types.AttributeValue{
		":ev": n(expected), ":en": &types.AttributeValueMemberBOOL{Value: st.Enabled},
		":stale": &types.AttributeValueMemberBOOL{Value: st.HashStale}, ":at": s(ddbitem.Time(st.ConfirmedAt)),
	}
	set := "enabled = :en, hash_stale = :stale, keycloak_confirmed_at = :at"
	expr := "SET " + set + " REMOVE required_actions"
	if len(st.RequiredActions) > 0 {
		av, err := attributevalue.Marshal(st.RequiredActions)
		if err != nil {
			return User{}, fmt.Errorf("encode required actions: %w", err)
		}
		vals[":ra"] = av
		expr = "SET " + set + ", required_actions = :ra"
	}
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &d.table, Key: d.itemKey(key, skUser),
		UpdateExpression:          aws.String(expr),
		ConditionExpression:       aws.String("attribute_exists(pk) AND version = :ev"),
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllNew,
	})
	if ddbitem.ConditionFailed(err) {
		if _, gerr := d.Get(ctx, key); gerr != nil {
			return User{}, gerr
		}
		return User{}, fmt.Errorf("record keycloak state %s: expected version %d: %w", key, expected, ErrVersionConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("record keycloak state %s: %w", key, err)
	}
	return fromItem(out.Attributes)
}

// Delete costs one DeleteItem.
func (d *Dynamo) Delete(ctx context.Context, key Key) error {
	key, err := key.normalize()
	if err != nil {
		return err
	}
	_, err = d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &d.table, Key: d.itemKey(key, skUser), ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	if ddbitem.ConditionFailed(err) {
		return fmt.Errorf("delete user %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete user %s: %w", key, err)
	}
	return nil
}

// Lockout costs one GetItem.
func (d *Dynamo) Lockout(ctx context.Context, key Key, now time.Time) (Lockout, error) {
	key, err := key.normalize()
	if err != nil {
		return Lockout{}, err
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &d.table, Key: d.itemKey(key, skLockout), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lockout{}, fmt.Errorf("get lockout %s: %w", key, err)
	}
	if out.Item == nil {
		return Lockout{}, nil
	}
	return fromLockoutItem(out.Item, now)
}

// RecordFailure costs one UpdateItem; when the counter had outlived its
// window (TTL had not deleted it yet) a second write starts it afresh.
func (d *Dynamo) RecordFailure(ctx context.Context, key Key, now time.Time) (int, error) {
	key, err := key.normalize()
	if err != nil {
		return 0, err
	}
	vals := map[string]types.AttributeValue{
		":one": n(1), ":now": s(ddbitem.Time(now)), ":nowu": n(now.Unix()),
		":exp": n(now.Add(d.opts.failureWindow).Unix()),
	}
	// A few rounds, because a concurrent failure may restart a stale
	// counter between our two writes; the ADD then simply succeeds.
	for range 3 {
		out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &d.table,
			Key:                       d.itemKey(key, skLockout),
			UpdateExpression:          aws.String("ADD failed_attempts :one SET last_failure_at = :now, expires_at = :exp"),
			ConditionExpression:       aws.String("attribute_not_exists(expires_at) OR expires_at > :nowu"),
			ExpressionAttributeValues: vals,
			ReturnValues:              types.ReturnValueUpdatedNew,
		})
		if err == nil {
			var it lockoutItem
			if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
				return 0, fmt.Errorf("decode lockout: %w", err)
			}
			return it.FailedAttempts, nil
		}
		if !ddbitem.ConditionFailed(err) {
			return 0, fmt.Errorf("record failure %s: %w", key, err)
		}
		_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &d.table,
			Item: map[string]types.AttributeValue{
				"pk": s(key.String()), "sk": s(skLockout),
				"failed_attempts": n(1), "last_failure_at": s(ddbitem.Time(now)), "expires_at": vals[":exp"],
			},
			ConditionExpression:       aws.String("expires_at <= :nowu"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":nowu": vals[":nowu"]},
		})
		if err == nil {
			return 1, nil
		}
		if !ddbitem.ConditionFailed(err) {
			return 0, fmt.Errorf("record failure %s: %w", key, err)
		}
	}
	return 0, fmt.Errorf("record failure %s: counter kept changing", key)
}

// SetLockedUntil costs one UpdateItem (two when the counter had outlived
// its window: the lock then starts a fresh item, as the counter would).
func (d *Dynamo) SetLockedUntil(ctx context.Context, key Key, until, now time.Time) error {
	key, err := key.normalize()
	if err != nil {
		return err
	}
	vals := map[string]types.AttributeValue{
		":u": s(ddbitem.Time(until)), ":exp": n(lockExpiry(until, now, d.opts.failureWindow).Unix()), ":nowu": n(now.Unix()),
	}
	for range 3 {
		_, err = d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 &d.table,
			Key:                       d.itemKey(key, skLockout),
			UpdateExpression:          aws.String("SET locked_until = :u, expires_at = :exp"),
			ConditionExpression:       aws.String("attribute_not_exists(expires_at) OR expires_at > :nowu"),
			ExpressionAttributeValues: vals,
		})
		if err == nil {
			return nil
		}
		if !ddbitem.ConditionFailed(err) {
			return fmt.Errorf("set locked until %s: %w", key, err)
		}
		_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &d.table,
			Item: map[string]types.AttributeValue{
				"pk": s(key.String()), "sk": s(skLockout), "failed_attempts": n(0), "locked_until": vals[":u"], "expires_at": vals[":exp"],
			},
			ConditionExpression:       aws.String("expires_at <= :nowu"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":nowu": vals[":nowu"]},
		})
		if err == nil {
			return nil
		}
		if !ddbitem.ConditionFailed(err) {
			return fmt.Errorf("set locked until %s: %w", key, err)
		}
	}
	return fmt.Errorf("set locked until %s: lockout item kept changing", key)
}

// ResetFailures costs one DeleteItem.
func (d *Dynamo) ResetFailures(ctx context.Context, key Key) error {
	key, err := key.normalize()
	if err != nil {
		return err
	}
	if _, err := d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &d.table, Key: d.itemKey(key, skLockout)}); err != nil {
		return fmt.Errorf("reset failures %s: %w", key, err)
	}
	return nil
}

// ResetFailuresTx builds the delete ResetFailures would send, for a caller
// that writes a successful login's changes in one TransactWriteItems.
// The key is expected to be valid already (the caller has looked it up).
func (d *Dynamo) ResetFailuresTx(key Key) types.TransactWriteItem {
	if k, err := key.normalize(); err == nil {
		key = k
	}
	return types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(d.table), Key: d.itemKey(key, skLockout)}}
}

// RecordFailureTx builds the lockout update of a failed login for a caller
// that writes it together with the audit event in one TransactWriteItems
// (a transaction cannot return the new count, so the caller derives l
// from its Lookup: count + 1, the failure time and the lock deadline of
// its delay policy).
//
// The counter is still incremented atomically (ADD), so parallel guesses
// each count even though every caller computed the same l. Only a first
// failure (l.FailedAttempts <= 1, i.e. the caller saw no live counter)
// SETs the count to 1, which restarts a counter that outlived its window
// and that TTL has not removed yet.
func (d *Dynamo) RecordFailureTx(key Key, l Lockout) types.TransactWriteItem {
	if k, err := key.normalize(); err == nil {
		key = k
	}
	vals := map[string]types.AttributeValue{
		":one": n(1), ":last": s(ddbitem.Time(l.LastFailureAt)),
		":exp": n(lockExpiry(l.LockedUntil, l.LastFailureAt, d.opts.failureWindow).Unix()),
	}
	expr := "ADD failed_attempts :one SET last_failure_at = :last, expires_at = :exp"
	if l.FailedAttempts <= 1 {
		expr = "SET failed_attempts = :one, last_failure_at = :last, expires_at = :exp"
	}
	if l.LockedUntil.IsZero() {
		expr += " REMOVE locked_until"
	} else {
		expr += ", locked_until = :until"
		vals[":until"] = s(ddbitem.Time(l.LockedUntil))
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.itemKey(key, skLockout),
		UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
	}}
}

// ListUnsynced Queries the sparse unsynced index: one Query per page.
func (d *Dynamo) ListUnsynced(ctx context.Context, pkg string, limit int, cursor string) ([]User, string, error) {
	return d.list(ctx, IndexUnsynced, "unsynced_pkg", pkg, limit, cursor, func(User) bool { return true })
}

// List Queries the by_package index; filtering happens after the read, so
// a selective filter costs more Queries per page.
func (d *Dynamo) List(ctx context.Context, pkg string, f Filter, limit int, cursor string) ([]User, string, error) {
	return d.list(ctx, IndexByPackage, "pkg", pkg, limit, cursor, f.Match)
}

func (d *Dynamo) list(ctx context.Context, index, attr, pkg string, limit int, cursor string, keep func(User) bool) ([]User, string, error) {
	if err := checkPackage(pkg); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = limitOrDefault(limit)
	cond := "#p = :p"
	vals := map[string]types.AttributeValue{":p": s(pkg)}
	if after != "" {
		cond += " AND username > :after"
		vals[":after"] = s(after)
	}
	var (
		users []User
		start map[string]types.AttributeValue
	)
	for {
		out, err := d.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 &d.table,
			IndexName:                 aws.String(index),
			KeyConditionExpression:    aws.String(cond),
			ExpressionAttributeNames:  map[string]string{"#p": attr},
			ExpressionAttributeValues: vals,
			ExclusiveStartKey:         start,
			Limit:                     aws.Int32(int32(limit - len(users))),
		})
		if err != nil {
			return nil, "", fmt.Errorf("list users of %s: %w", pkg, err)
		}
		for _, item := range out.Items {
			u, err := fromItem(item)
			if err != nil {
				return nil, "", err
			}
			if keep(u) {
				users = append(users, u)
			}
		}
		switch {
		case out.LastEvaluatedKey == nil:
			return users, "", nil
		case len(users) >= limit:
			return users, encodeCursor(users[len(users)-1].Username), nil
		}
		start = out.LastEvaluatedKey
	}
}
