package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/ddbitem"
	"github.com/kcguard/kcguard/pkg/schema"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Table layout. One partition per user key ("package#username") holding up
// to two items, told apart by the sort key:
//
//	sk=user     the account; carries pkg+username (by_package index) and,
//	            while Version > KeycloakSyncedVersion, unsynced_pkg (unsynced index)
//	sk=lockout  failure counters, for known and unknown usernames alike;
//	            expires_at (epoch seconds) is the table's TTL attribute and
//	            is only ever set on lockout and source items, never on accounts
//
// and one partition per request source ("source#<id>", sk=source) holding
// that source's failure counter, TTL'd like a lockout item.
const (
	IndexByPackage = schema.UsersByPackage
	IndexUnsynced  = schema.UsersUnsynced

	skUser    = "user"
	skLockout = "lockout"
	skSource  = "source"
)

// Table describes the users table.
func Table(name string) schema.Table { return schema.Users.Named(name) }

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
	HashStale         bool              `dynamodbav:"hash_stale,omitempty"`
	RequiredActions   []string          `dynamodbav:"required_actions,omitempty"`
	ConfirmedAt       string            `dynamodbav:"keycloak_confirmed_at,omitempty"`
	CreatedAt         string            `dynamodbav:"created_at,omitempty"`
	UpdatedAt         string            `dynamodbav:"updated_at,omitempty"`
	PasswordChangedAt string            `dynamodbav:"password_changed_at,omitempty"`
}

type lockoutItem struct {
	FailedAttempts int    `dynamodbav:"failed_attempts"`
	LastFailureAt  string `dynamodbav:"last_failure_at,omitempty"`
	LockedUntil    string `dynamodbav:"locked_until,omitempty"`
	Gate           int    `dynamodbav:"gate,omitempty"`
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
	if len(u.Attributes) == 0 {
		u.Attributes = nil
	}
	if len(u.RequiredActions) == 0 {
		u.RequiredActions = nil
	}
	var err error
	for _, f := range []struct {
		dst *time.Time
		src string
	}{{&u.CreatedAt, it.CreatedAt}, {&u.UpdatedAt, it.UpdatedAt}, {&u.PasswordChangedAt, it.PasswordChangedAt}, {&u.KeycloakConfirmedAt, it.ConfirmedAt}} {
		if *f.dst, err = ddbitem.ParseTime(f.src); err != nil {
			return u, err
		}
	}
	return u, nil
}

func fromLockoutItem(av map[string]types.AttributeValue, now time.Time) (Lockout, error) {
	var it lockoutItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return Lockout{}, fmt.Errorf("decode lockout: %w", err)
	}
	// TTL deletes lazily (up to days late; moto never), so an expired
	// counter must read as zero here.
	if stale(it, now) {
		return Lockout{}, nil
	}
	l := Lockout{FailedAttempts: it.FailedAttempts}
	var err error
	if l.LastFailureAt, err = ddbitem.ParseTime(it.LastFailureAt); err == nil {
		l.LockedUntil, err = ddbitem.ParseTime(it.LockedUntil)
	}
	return l, err
}

func stale(it lockoutItem, now time.Time) bool { return it.ExpiresAt <= now.Unix() }

func (d *Dynamo) itemKey(k userkey.Key, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: k.String()},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

// Get costs one GetItem.
func (d *Dynamo) Get(ctx context.Context, key userkey.Key) (User, error) {
	key, err := key.Normalize()
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
func (d *Dynamo) Lookup(ctx context.Context, key userkey.Key, now time.Time) (Entry, error) {
	key, err := key.Normalize()
	if err != nil {
		return Entry{}, err
	}
	out, err := d.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &d.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": ddbitem.S(key.String())},
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
func (d *Dynamo) change(ctx context.Context, key userkey.Key, expected int64, set string, vals map[string]types.AttributeValue, remove string, mine func(User) bool) (User, error) {
	key, err := key.Normalize()
	if err != nil {
		return User{}, err
	}
	vals[":ev"] = ddbitem.N(expected)
	vals[":nv"] = ddbitem.N(expected + 1)
	// Version only moves up from here and KeycloakSyncedVersion never
	// exceeds the old version, so the new version is always unsynced.
	vals[":pkg"] = ddbitem.S(key.Package)
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
func (d *Dynamo) UpdatePassword(ctx context.Context, key userkey.Key, expected int64, h Hash, now time.Time) (User, error) {
	return d.change(ctx, key, expected,
		"hash_algorithm = :alg, secret_data = :sd, credential_data = :cd, updated_at = :now, password_changed_at = :now",
		map[string]types.AttributeValue{
			":alg": ddbitem.S(h.Algorithm), ":sd": ddbitem.S(h.SecretData), ":cd": ddbitem.S(h.CredentialData), ":now": ddbitem.S(ddbitem.Time(now)),
		}, "hash_stale", samePassword(h, now))
}

// UpdateProfile costs one UpdateItem (plus a GetItem on conflict).
func (d *Dynamo) UpdateProfile(ctx context.Context, key userkey.Key, expected int64, p Profile, now time.Time) (User, error) {
	vals := map[string]types.AttributeValue{
		":email": ddbitem.S(p.Email), ":en": &types.AttributeValueMemberBOOL{Value: p.Enabled}, ":now": ddbitem.S(ddbitem.Time(now)),
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
func (d *Dynamo) MarkSynced(ctx context.Context, key userkey.Key, version int64) (bool, error) {
	key, err := key.Normalize()
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
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": ddbitem.N(version)},
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
func (d *Dynamo) SetKeycloakID(ctx context.Context, key userkey.Key, id string) error {
	key, err := key.Normalize()
	if err != nil {
		return err
	}
	_, err = d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &d.table,
		Key:                       d.itemKey(key, skUser),
		UpdateExpression:          aws.String("SET keycloak_id = :id"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": ddbitem.S(id)},
	})
	if ddbitem.ConditionFailed(err) {
		return fmt.Errorf("set keycloak id %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set keycloak id %s: %w", key, err)
	}
	return nil
}

// ApplyVerdict costs one UpdateItem (plus a GetItem when the condition
// fails, to tell a missing user from a version conflict).
func (d *Dynamo) ApplyVerdict(ctx context.Context, key userkey.Key, expected int64, v Verdict) (User, error) {
	key, err := key.Normalize()
	if err != nil {
		return User{}, err
	}
	if err := v.check(key); err != nil {
		return User{}, err
	}
	upd, vals, err := verdictUpdate(v)
	if err != nil {
		return User{}, err
	}
	cond := "attribute_exists(pk)"
	if expected != AnyVersion {
		cond += " AND version = :ev"
		vals[":ev"] = ddbitem.N(expected)
	}
	if v.Hash != nil {
		cond += " AND version = keycloak_synced_version"
	}
	if upd == "" {
		return d.Get(ctx, key)
	}
	if len(vals) == 0 {
		vals = nil // DynamoDB refuses an empty map
	}
	out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &d.table, Key: d.itemKey(key, skUser),
		UpdateExpression: aws.String(upd), ConditionExpression: aws.String(cond),
		ExpressionAttributeValues: vals, ReturnValues: types.ReturnValueAllNew,
	})
	if ddbitem.ConditionFailed(err) {
		if _, gerr := d.Get(ctx, key); gerr != nil {
			return User{}, gerr
		}
		return User{}, fmt.Errorf("apply verdict %s: expected version %d, no unsynced change: %w", key, expected, ErrVersionConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("apply verdict %s: %w", key, err)
	}
	return fromItem(out.Attributes)
}

// VerdictTx builds ApplyVerdict(key, AnyVersion, v) for a caller that
// writes it inside a successful login's transaction (Keycloak has just
// confirmed the user: the stamp rides on a write the login makes anyway).
// v must not carry a Hash.
func (d *Dynamo) VerdictTx(key userkey.Key, expectedVersion int64, v Verdict) (types.TransactWriteItem, error) {
	if k, err := key.Normalize(); err == nil {
		key = k
	}
	if v.Hash != nil {
		return types.TransactWriteItem{}, fmt.Errorf("users: verdict for %s: a learnt hash cannot ride on a login transaction", key)
	}
	upd, vals, err := verdictUpdate(v)
	if err != nil || upd == "" {
		return types.TransactWriteItem{}, fmt.Errorf("users: empty verdict for %s: %v", key, err)
	}
	cond := "attribute_exists(pk)"
	if expectedVersion != AnyVersion {
		// The login's version check rides here: a transaction may touch
		// the user item only once.
		cond, vals[":expected"] = cond+" AND version = :expected", ddbitem.N(expectedVersion)
	}
	if len(vals) == 0 {
		vals = nil // DynamoDB refuses an empty map
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.itemKey(key, skUser),
		UpdateExpression: aws.String(upd), ConditionExpression: aws.String(cond),
		ExpressionAttributeValues: vals,
	}}, nil
}

// verdictUpdate is the update expression recording v ("" when v is empty).
func verdictUpdate(v Verdict) (string, map[string]types.AttributeValue, error) {
	var set, remove []string
	vals := map[string]types.AttributeValue{}
	if v.Enabled != nil {
		set, vals[":en"] = append(set, "enabled = :en"), &types.AttributeValueMemberBOOL{Value: *v.Enabled}
	}
	if v.HashStale != nil {
		if *v.HashStale {
			set, vals[":stale"] = append(set, "hash_stale = :stale"), &types.AttributeValueMemberBOOL{Value: true}
		} else {
			remove = append(remove, "hash_stale")
		}
	}
	if v.RequiredActions != nil {
		if len(v.RequiredActions) == 0 {
			remove = append(remove, "required_actions")
		} else {
			av, err := attributevalue.Marshal(v.RequiredActions)
			if err != nil {
				return "", nil, fmt.Errorf("encode required actions: %w", err)
			}
			set, vals[":ra"] = append(set, "required_actions = :ra"), av
		}
	}
	if !v.ConfirmedAt.IsZero() {
		set, vals[":conf"] = append(set, "keycloak_confirmed_at = :conf"), ddbitem.S(ddbitem.Time(v.ConfirmedAt))
	}
	if v.KeycloakID != "" {
		set, vals[":kid"] = append(set, "keycloak_id = :kid"), ddbitem.S(v.KeycloakID)
	}
	if v.Hash != nil {
		set = append(set, "hash_algorithm = :alg", "secret_data = :sd", "credential_data = :cd",
			"updated_at = :conf", "password_changed_at = :conf")
		vals[":alg"], vals[":sd"], vals[":cd"] = ddbitem.S(v.Hash.Algorithm), ddbitem.S(v.Hash.SecretData), ddbitem.S(v.Hash.CredentialData)
	}
	var expr string
	if len(set) > 0 {
		expr = "SET " + strings.Join(set, ", ")
	}
	if len(remove) > 0 {
		expr = strings.TrimSpace(expr + " REMOVE " + strings.Join(remove, ", "))
	}
	return expr, vals, nil
}

// Delete costs one DeleteItem.
func (d *Dynamo) Delete(ctx context.Context, key userkey.Key) error {
	key, err := key.Normalize()
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
func (d *Dynamo) Lockout(ctx context.Context, key userkey.Key, now time.Time) (Lockout, error) {
	key, err := key.Normalize()
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
	if err := userkey.CheckPackage(pkg); err != nil {
		return nil, "", err
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = limitOrDefault(limit)
	cond := "#p = :p"
	vals := map[string]types.AttributeValue{":p": ddbitem.S(pkg)}
	if after != "" {
		cond += " AND username > :after"
		vals[":after"] = ddbitem.S(after)
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

// Reserve costs one conditional UpdateItem: ADD counts the attempt, and the
// condition refuses it while the key is locked or its gate is reached, so
// parallel requests cannot outrun the count (each gets its own N from
// UPDATED_NEW). Only a counter that outlived its window (TTL had not
// deleted it yet) costs a second write that starts it afresh.
func (d *Dynamo) Reserve(ctx context.Context, key userkey.Key, maxFailures int, now time.Time) (Attempt, error) {
	key, err := key.Normalize()
	if err != nil {
		return Attempt{}, err
	}
	vals := map[string]types.AttributeValue{
		":one": ddbitem.N(1), ":now": ddbitem.S(ddbitem.Time(now)), ":nowu": ddbitem.N(now.Unix()), ":max": ddbitem.N(int64(maxFailures)),
		":exp": ddbitem.N(now.Add(d.opts.failureWindow).Unix()), ":lost": ddbitem.S(ddbitem.Time(now.Add(-LostReservation))),
	}
	for range 3 {
		out, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        &d.table,
			Key:              d.itemKey(key, skLockout),
			UpdateExpression: aws.String("ADD failed_attempts :one SET expires_at = :exp, reserved_at = :now"),
			// Times are fixed-width UTC strings, so they compare as strings.
			ConditionExpression: aws.String("attribute_not_exists(expires_at) OR (expires_at > :nowu" +
				" AND (attribute_not_exists(locked_until) OR locked_until <= :now)" +
				" AND (attribute_not_exists(failed_attempts) OR failed_attempts < :max OR failed_attempts < gate" +
				" OR attribute_not_exists(reserved_at) OR reserved_at <= :lost))"),
			ExpressionAttributeValues:           vals,
			ReturnValues:                        types.ReturnValueUpdatedNew,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		if err == nil {
			var it lockoutItem
			if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
				return Attempt{}, fmt.Errorf("decode lockout: %w", err)
			}
			return Attempt{Admitted: true, N: it.FailedAttempts}, nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return Attempt{}, fmt.Errorf("reserve attempt %s: %w", key, err)
		}
		var old lockoutItem
		if err := attributevalue.UnmarshalMap(ccf.Item, &old); err != nil {
			return Attempt{}, fmt.Errorf("decode lockout: %w", err)
		}
		if !stale(old, now) {
			until, err := ddbitem.ParseTime(old.LockedUntil)
			return Attempt{LockedUntil: until}, err
		}
		// The counter outlived its window: start afresh, unless a
		// concurrent attempt already did (then go round again).
		_, err = d.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &d.table,
			Item: map[string]types.AttributeValue{
				"pk": ddbitem.S(key.String()), "sk": ddbitem.S(skLockout), "failed_attempts": ddbitem.N(1), "expires_at": vals[":exp"],
				"reserved_at": vals[":now"],
			},
			ConditionExpression:       aws.String("expires_at <= :nowu"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":nowu": vals[":nowu"]},
		})
		if err == nil {
			return Attempt{Admitted: true, N: 1}, nil
		}
		if !ddbitem.ConditionFailed(err) {
			return Attempt{}, fmt.Errorf("reserve attempt %s: %w", key, err)
		}
	}
	return Attempt{}, fmt.Errorf("reserve attempt %s: counter kept changing", key)
}

// FirstAttemptTx reserves a key's first attempt, for a transaction that also
// checks the request source (SourceUnlockedTx), so a login can run it
// alongside its read instead of after it. It succeeds only when the key has
// no live counter (no attempt reserved, failed or locked in the window; a
// counter that outlived its window is started afresh, as Reserve would),
// and the attempt is then N = 1. A live counter cancels the transaction
// and nothing is counted: the caller reserves with Reserve, which counts
// past it.
func (d *Dynamo) FirstAttemptTx(key userkey.Key, now time.Time) (types.TransactWriteItem, error) {
	key, err := key.Normalize()
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.itemKey(key, skLockout),
		UpdateExpression:    aws.String("SET failed_attempts = :one, expires_at = :exp REMOVE locked_until, gate, last_failure_at"),
		ConditionExpression: aws.String("attribute_not_exists(expires_at) OR expires_at <= :nowu"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": ddbitem.N(1), ":nowu": ddbitem.N(now.Unix()), ":exp": ddbitem.N(now.Add(d.opts.failureWindow).Unix()),
		},
	}}, nil
}

// SourceUnlockedTx is a transaction's check that the request source is not
// throttled now (a source lock that outlived its window does not count).
func (d *Dynamo) SourceUnlockedTx(source string, now time.Time) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: aws.String(d.table), Key: d.sourceKey(source),
		// Times are fixed-width UTC strings, so they compare as strings.
		ConditionExpression: aws.String("attribute_not_exists(locked_until) OR locked_until <= :now OR expires_at <= :nowu"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": ddbitem.S(ddbitem.Time(now)), ":nowu": ddbitem.N(now.Unix()),
		},
	}}
}

// FailAttempt costs one UpdateItem (FailAttemptTx in a transaction).
func (d *Dynamo) FailAttempt(ctx context.Context, key userkey.Key, a Attempt, lockedUntil, now time.Time) error {
	tx := d.FailAttemptTx(key, a, lockedUntil, now)
	u := tx.Update
	_, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: u.TableName, Key: u.Key,
		UpdateExpression: u.UpdateExpression, ConditionExpression: u.ConditionExpression,
		ExpressionAttributeValues: u.ExpressionAttributeValues})
	if ddbitem.ConditionFailed(err) {
		return nil // a longer lock is already in place
	}
	if err != nil {
		return fmt.Errorf("fail attempt %s: %w", key, err)
	}
	return nil
}

// FailAttemptTx builds FailAttempt's update for a transaction. The attempt
// was counted when it was reserved, so this only stamps the failure and, at
// the threshold, sets the lock and opens the gate one attempt wider (the one
// that may run once the lock is over). Attempts at the threshold are admitted
// one at a time, so their locks arrive in order and never shorten each other;
// the update has no condition and cannot cancel the transaction it is in.
func (d *Dynamo) FailAttemptTx(key userkey.Key, a Attempt, lockedUntil, now time.Time) types.TransactWriteItem {
	if k, err := key.Normalize(); err == nil {
		key = k
	}
	vals := map[string]types.AttributeValue{
		":last": ddbitem.S(ddbitem.Time(now)), ":exp": ddbitem.N(lockExpiry(lockedUntil, now, d.opts.failureWindow).Unix()),
	}
	expr := "SET last_failure_at = :last, expires_at = :exp"
	if !lockedUntil.IsZero() {
		expr += ", locked_until = :until, gate = :gate"
		vals[":until"], vals[":gate"] = ddbitem.S(ddbitem.Time(lockedUntil)), ddbitem.N(int64(a.N+1))
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.itemKey(key, skLockout),
		UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
	}}
}

// Release costs one conditional DeleteItem (ReleaseTx in a transaction).
func (d *Dynamo) Release(ctx context.Context, key userkey.Key, now time.Time) (bool, error) {
	key, err := key.Normalize()
	if err != nil {
		return false, err
	}
	del := d.ReleaseTx(key, now).Delete
	_, err = d.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: del.TableName, Key: del.Key,
		ConditionExpression: del.ConditionExpression, ExpressionAttributeValues: del.ExpressionAttributeValues})
	switch {
	case ddbitem.ConditionFailed(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("release attempts %s: %w", key, err)
	}
	return true, nil
}

// ReleaseTx builds Release's delete for a transaction. Its condition keeps a
// lock set meanwhile by a parallel failure: the transaction is then
// cancelled with ReleaseCancelled true for this item, and the caller writes
// again without it.
func (d *Dynamo) ReleaseTx(key userkey.Key, now time.Time) types.TransactWriteItem {
	if k, err := key.Normalize(); err == nil {
		key = k
	}
	return types.TransactWriteItem{Delete: &types.Delete{
		TableName: aws.String(d.table), Key: d.itemKey(key, skLockout),
		ConditionExpression:       aws.String("attribute_not_exists(locked_until) OR locked_until <= :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": ddbitem.S(ddbitem.Time(now))},
	}}
}

func (d *Dynamo) sourceKey(source string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": ddbitem.S("source#" + source), "sk": ddbitem.S(skSource)}
}

// SourceFailures costs one GetItem.
func (d *Dynamo) SourceFailures(ctx context.Context, source string, now time.Time) (Lockout, error) {
	if err := checkSource(source); err != nil {
		return Lockout{}, err
	}
	out, err := d.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &d.table, Key: d.sourceKey(source), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Lockout{}, fmt.Errorf("get source failures: %w", err)
	}
	if out.Item == nil {
		return Lockout{}, nil
	}
	return fromLockoutItem(out.Item, now)
}

// SourceKey is the item key of a source's counter, for a caller that reads
// it together with other items (BatchGetItem); DecodeSource reads the item.
func (d *Dynamo) SourceKey(source string) map[string]types.AttributeValue { return d.sourceKey(source) }

// DecodeSource reads a source item from a batch read (nil: no failures).
func DecodeSource(av map[string]types.AttributeValue, now time.Time) (Lockout, error) {
	if av == nil {
		return Lockout{}, nil
	}
	return fromLockoutItem(av, now)
}

// RecordSourceFailure costs one UpdateItem.
func (d *Dynamo) RecordSourceFailure(ctx context.Context, source string, l Lockout, now time.Time) error {
	if err := checkSource(source); err != nil {
		return err
	}
	u := d.RecordSourceFailureTx(source, l, now).Update
	if _, err := d.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: u.TableName, Key: u.Key,
		UpdateExpression: u.UpdateExpression, ExpressionAttributeValues: u.ExpressionAttributeValues}); err != nil {
		return fmt.Errorf("record source failure: %w", err)
	}
	return nil
}

// RecordSourceFailureTx builds the source counter update for the failed
// login's transaction. The source throttle is a rate limit, not a lock
// anyone relies on for a bound: l comes from the read before the check
// (count + 1 and the lock derived from it). The count is ADDed, so parallel
// failures all count; only when the read saw no live counter is it SET to 1,
// which restarts one that outlived its window.
func (d *Dynamo) RecordSourceFailureTx(source string, l Lockout, now time.Time) types.TransactWriteItem {
	vals := map[string]types.AttributeValue{
		":one": ddbitem.N(1), ":last": ddbitem.S(ddbitem.Time(now)),
		":exp": ddbitem.N(lockExpiry(l.LockedUntil, now, d.opts.sourceWindow).Unix()),
	}
	expr := "ADD failed_attempts :one SET last_failure_at = :last, expires_at = :exp"
	if l.FailedAttempts <= 1 {
		expr = "SET failed_attempts = :one, last_failure_at = :last, expires_at = :exp"
	}
	if !l.LockedUntil.IsZero() {
		expr += ", locked_until = :until"
		vals[":until"] = ddbitem.S(ddbitem.Time(l.LockedUntil))
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: aws.String(d.table), Key: d.sourceKey(source),
		UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
	}}
}

// TableName is the table the store works on.
func (d *Dynamo) TableName() string { return d.table }

// UserKey is the item key of the user's account, for a caller that reads it
// together with other items (BatchGetItem) and hands it to EntryFromItem.
func (d *Dynamo) UserKey(key userkey.Key) (map[string]types.AttributeValue, error) {
	key, err := key.Normalize()
	if err != nil {
		return nil, err
	}
	return d.itemKey(key, skUser), nil
}

// EntryFromItem is the Entry of a user item read elsewhere (nil: not found);
// its Lockout is left zero.
func EntryFromItem(av map[string]types.AttributeValue) (Entry, error) {
	if av == nil {
		return Entry{}, nil
	}
	u, err := fromItem(av)
	if err != nil {
		return Entry{}, err
	}
	return Entry{User: u, Found: true}, nil
}
