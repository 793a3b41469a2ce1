package loginrecord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// TransactWriter is the part of the DynamoDB client the login record uses.
type TransactWriter interface {
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Dynamo is the DynamoDB login record. It puts everything one outcome
// changes (session, audit record, cached token, lockout counter) into a
// single TransactWriteItems call: one round trip, and all or nothing, so a
// login never leaves a session without its audit record or a reset
// counter without the session it was reset for. The stores build the
// items (they own their table layouts); Dynamo only bundles them.
type Dynamo struct {
	db       TransactWriter
	users    *users.Dynamo
	sessions *sessions.Dynamo
	tokens   *tokencache.Dynamo
	audit    *audit.Dynamo
}

// NewDynamo bundles the stores' writes into transactions on db.
func NewDynamo(db TransactWriter, u *users.Dynamo, s *sessions.Dynamo, t *tokencache.Dynamo, a *audit.Dynamo) *Dynamo {
	return &Dynamo{db: db, users: u, sessions: s, tokens: t, audit: a}
}

// LoginSucceeded stores the session, the audit event, the fresh
// Keycloak token, the verdict and the attempt's release together.
//
// It costs the one transaction when the login's read brought the user's
// session count (ReadLogin), else one UpdateItem more (Reserve). The
// transaction checks that the user's sessions were not revoked since the
// login began and that the user is still at the version the password was
// checked against.
func (l *Dynamo) LoginSucceeded(ctx context.Context, s Success) (string, sessions.Record, error) {
	// ReadLogin read the user's session count (Session.Seq is the next):
	// the transaction counts the session. Without that read, Reserve asks.
	reserved, admit := s.Session, l.sessions.AdmitTx
	if reserved.Seq == 0 {
		var err error
		if reserved, err = l.sessions.Reserve(ctx, s.Session); errors.Is(err, sessions.ErrSuperseded) {
			return "", sessions.Record{}, fmt.Errorf("%w: %v", ErrSuperseded, err)
		} else if err != nil {
			return "", sessions.Record{}, err
		}
		admit = l.sessions.GuardTx
	}
	token, rec, item, err := l.sessions.CreateTx(reserved)
	if err != nil {
		return "", sessions.Record{}, err
	}
	// Guards first: their indexes name a cancellation's cause. The user
	// item is touched once: the verdict, when there is one, carries the
	// version check.
	items := []types.TransactWriteItem{item, admit(rec)}
	switch {
	case s.Verdict != nil:
		expected := users.AnyVersion
		if s.UserVersion > 0 {
			expected = s.UserVersion
		}
		v, err := l.users.VerdictTx(keyOf(s.Event), expected, *s.Verdict)
		if err != nil {
			return "", sessions.Record{}, err
		}
		items = append(items, v)
	case s.UserVersion > 0:
		items = append(items, l.users.VersionCheckTx(keyOf(s.Event), s.UserVersion))
	}
	userChecked := s.Verdict != nil || s.UserVersion > 0
	a, err := l.audit.RecordTx(s.Event)
	if err != nil {
		return "", sessions.Record{}, err
	}
	items = append(items, a)
	if s.Token != nil {
		t, err := l.tokens.PutTx(ctx, tokenRecord(s))
		if err != nil {
			return "", sessions.Record{}, err
		}
		items = append(items, t)
	}
	// The release stays the last item: releaseRefused finds it by position.
	if s.ResetLockout {
		items = append(items, l.users.ReleaseTx(keyOf(s.Event), s.Now))
	}
	err = l.write(ctx, rec.ID, items)
	if s.ResetLockout && releaseRefused(err, len(items)-1) {
		// A parallel failure locked the key while this login's correct
		// password was being checked: the lock stands, the session is
		// written without the release (a fresh token: other items).
		err = l.write(ctx, rec.ID+"-kept-lock", items[:len(items)-1])
	}
	if failed := sessions.CancelReasons(err); failed != nil && failed[0] && l.sessions.Landed(ctx, token, rec) {
		// The SDK retried a transaction that had landed (the first
		// answer was lost) and the store ignored its idempotency token:
		// the retry failed every condition the first attempt had met.
		err = nil
	}
	if err != nil {
		if failed := sessions.CancelReasons(err); failed != nil && (failed[1] || userChecked && failed[2]) {
			return "", sessions.Record{}, fmt.Errorf("%w: %v", ErrSuperseded, err)
		}
		return "", sessions.Record{}, fmt.Errorf("record login: %w", err)
	}
	return token, rec, nil
}

// releaseRefused reports whether a transaction was cancelled only because
// its item i (the release) found the key locked.
func releaseRefused(err error, i int) bool { return refusedOnly(err, i) }

// refusedAt reports whether a transaction was cancelled with the condition
// of its item i failing (whatever the other items' reasons).
func refusedAt(err error, i int) bool {
	var tc *types.TransactionCanceledException
	return errors.As(err, &tc) && len(tc.CancellationReasons) > i &&
		aws.ToString(tc.CancellationReasons[i].Code) == "ConditionalCheckFailed"
}

// conflicted reports whether a transaction was cancelled because another
// one was working on one of its items.
func conflicted(err error) bool {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return false
	}
	for _, r := range tc.CancellationReasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return true
		}
	}
	return false
}

// refusedOnly reports whether a transaction was cancelled only because the
// condition of its item i failed.
func refusedOnly(err error, i int) bool {
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) || len(tc.CancellationReasons) <= i {
		return false
	}
	for j, r := range tc.CancellationReasons {
		code := aws.ToString(r.Code)
		switch {
		case j == i && code != "ConditionalCheckFailed":
			return false
		case j != i && code != "" && code != "None":
			return false
		}
	}
	return true
}

// ReserveFirst reserves the key's first-attempt
// reservation and the source's throttle check in one TransactWriteItems.
func (l *Dynamo) ReserveFirst(ctx context.Context, key userkey.Key, source string, now time.Time) (FirstAttempt, error) {
	first, err := l.users.FirstAttemptTx(key, now)
	if err != nil {
		return FirstNotTried, err
	}
	items := []types.TransactWriteItem{first}
	if source != "" {
		items = append(items, l.users.SourceUnlockedTx(source, now))
	}
	// An SDK retry of a reservation that landed is then answered as a
	// success by DynamoDB (moto refuses it: the caller reserves again,
	// one count too many until the next good login).
	err = l.write(ctx, randomToken(), items)
	switch {
	case err == nil:
		return FirstReserved, nil
	case source != "" && refusedAt(err, 1):
		return FirstSourceLocked, nil
	case refusedOnly(err, 0):
		return FirstNotFirst, nil
	case conflicted(err):
		// Another transaction held the source's item (logins from one
		// address at once): the usual reservation decides, one round
		// trip later, as before this transaction existed.
		return FirstNotTried, nil
	}
	return FirstNotTried, fmt.Errorf("reserve first attempt %s: %w", key, err)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LoginFailed stores the failed attempt, the source's failure and the
// audit event together.
func (l *Dynamo) LoginFailed(ctx context.Context, f Failure) error {
	a, err := l.audit.RecordTx(f.Event)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{l.users.FailAttemptTx(f.Key, f.Attempt, f.LockedUntil, f.Event.At), a}
	if f.Source != "" {
		items = append(items, l.users.RecordSourceFailureTx(f.Source, f.SourceLockout, f.Event.At))
	}
	// The counters ADD: an SDK retry of a transaction that did land must
	// not count the failure twice (DynamoDB honours the token for 10 min).
	if err := l.write(ctx, randomToken(), items); err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	return nil
}

// ReadLogin implements Reader: the user item, the source's
// counter and the cached token in one BatchGetItem (strongly consistent).
// The token is read for every login, used only when Keycloak cannot
// answer, and decrypted only then: the price of keeping every login path
// within three DynamoDB round trips with the reservation added.
func (l *Dynamo) ReadLogin(ctx context.Context, key userkey.Key, source string, now time.Time) (Read, error) {
	userKey, err := l.users.UserKey(key)
	if err != nil {
		return Read{}, err
	}
	tokenKey, err := l.tokens.ItemKey(key.Package, key.Username)
	if err != nil {
		return Read{}, err
	}
	usersTable, tokensTable := l.users.TableName(), l.tokens.TableName()
	keys := []map[string]types.AttributeValue{userKey}
	var sourceKey map[string]types.AttributeValue
	if source != "" {
		sourceKey = l.users.SourceKey(source)
		keys = append(keys, sourceKey)
	}
	req := map[string]types.KeysAndAttributes{usersTable: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	if tokensTable == usersTable {
		return Read{}, fmt.Errorf("read login: the token cache needs its own table")
	}
	req[tokensTable] = types.KeysAndAttributes{Keys: []map[string]types.AttributeValue{tokenKey}, ConsistentRead: aws.Bool(true)}
	// The user's session state rides along: the login's session takes the
	// next Seq without a round trip of its own (sessions.Dynamo.AdmitTx).
	sessionsTable := l.sessions.TableName()
	if sessionsTable == usersTable || sessionsTable == tokensTable {
		return Read{}, fmt.Errorf("read login: the sessions need their own table")
	}
	req[sessionsTable] = types.KeysAndAttributes{Keys: []map[string]types.AttributeValue{l.sessions.StateKey(key.Package, key.Username)}, ConsistentRead: aws.Bool(true)}
	found := map[string][]map[string]types.AttributeValue{}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt == 3 {
			return Read{}, fmt.Errorf("read login %s: keys left unprocessed", key)
		}
		out, err := l.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return Read{}, fmt.Errorf("read login %s: %w", key, err)
		}
		for t, items := range out.Responses {
			found[t] = append(found[t], items...)
		}
		req = out.UnprocessedKeys
	}
	var read Read
	for _, item := range found[usersTable] {
		switch {
		case sameKey(item, userKey):
			if read.Entry, err = users.EntryFromItem(item); err != nil {
				return Read{}, err
			}
		case sourceKey != nil && sameKey(item, sourceKey):
			if read.Source, err = users.DecodeSource(item, now); err != nil {
				return Read{}, err
			}
		}
	}
	var stateItem map[string]types.AttributeValue
	if items := found[sessionsTable]; len(items) > 0 {
		stateItem = items[0]
	}
	seq, err := sessions.SeqFromItem(stateItem)
	if err != nil {
		return Read{}, err
	}
	read.NextSessionSeq = seq + 1
	var tokenItem map[string]types.AttributeValue
	if items := found[tokensTable]; len(items) > 0 {
		tokenItem = items[0]
	}
	read.CachedToken = func(ctx context.Context) (keycloak.Token, bool, error) {
		rec, err := l.tokens.FromItem(ctx, tokenItem, now)
		if errors.Is(err, tokencache.ErrNotFound) {
			return keycloak.Token{}, false, nil
		}
		if err != nil {
			return keycloak.Token{}, false, err
		}
		return KeycloakToken(rec, now), true, nil
	}
	return read, nil
}

func sameKey(item, key map[string]types.AttributeValue) bool {
	for name, v := range key {
		a, ok1 := item[name].(*types.AttributeValueMemberS)
		b, ok2 := v.(*types.AttributeValueMemberS)
		if !ok1 || !ok2 || a.Value != b.Value {
			return false
		}
	}
	return true
}

// Audit stores an audit event on its own.
func (l *Dynamo) Audit(ctx context.Context, e audit.Event) error { return l.audit.Record(ctx, e) }

// write sends one transaction. With an idempotency token an SDK retry of a
// transaction that did land is answered as a success instead of failing the
// session's attribute_not_exists condition.
func (l *Dynamo) write(ctx context.Context, idempotency string, items []types.TransactWriteItem) error {
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	if idempotency != "" {
		in.ClientRequestToken = aws.String(idempotency)
	}
	_, err := l.db.TransactWriteItems(ctx, in)
	return err
}

func keyOf(e audit.Event) userkey.Key { return userkey.Key{Package: e.Package, Username: e.Username} }

func tokenRecord(s Success) tokencache.Record {
	t := s.Token
	return tokencache.Record{
		Package: s.Event.Package, Username: s.Event.Username,
		AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType,
		AccessExpiresAt: t.ExpiresAt, RefreshExpiresAt: t.RefreshExpiresAt,
		CachedAt: s.Event.At, GraceUntil: s.GraceUntil,
	}
}

// KeycloakToken is a cached entry as the login answers it (the inverse of
// tokenRecord).
func KeycloakToken(rec tokencache.Record, now time.Time) keycloak.Token {
	return keycloak.Token{
		AccessToken: rec.AccessToken, RefreshToken: rec.RefreshToken, TokenType: rec.TokenType,
		ExpiresAt: rec.AccessExpiresAt, RefreshExpiresAt: rec.RefreshExpiresAt,
		ExpiresIn: max(0, int(rec.AccessExpiresAt.Sub(now).Seconds())),
	}
}
