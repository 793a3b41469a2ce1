// Package ledger writes the outcome of an authentication attempt to the
// local tables. The DynamoDB ledger puts everything one outcome changes
// (session, audit record, cached token, lockout counter) into a single
// TransactWriteItems call: one round trip, and all or nothing, so a login
// never leaves a session without its audit record or a reset counter
// without the session it was reset for.
package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// TransactWriter is the part of the DynamoDB client the ledger uses.
type TransactWriter interface {
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Dynamo is the DynamoDB ledger. The stores build the items (they own their
// table layouts); the ledger only bundles them.
type Dynamo struct {
	db       TransactWriter
	users    *users.Dynamo
	sessions *sessions.Dynamo
	tokens   *tokencache.Dynamo
	audit    *audit.Dynamo
}

var _ auth.Ledger = (*Dynamo)(nil)

// NewDynamo bundles the stores' writes into transactions on db.
func NewDynamo(db TransactWriter, u *users.Dynamo, s *sessions.Dynamo, t *tokencache.Dynamo, a *audit.Dynamo) *Dynamo {
	return &Dynamo{db: db, users: u, sessions: s, tokens: t, audit: a}
}

// LoginSucceeded implements auth.Ledger.
//
// It costs one UpdateItem (the session's place among the user's sessions,
// refused when they were revoked since the login began) and the one
// transaction, which carries two ConditionChecks: the user's sessions not
// revoked since, and the user still at the version the password was
// checked against.
func (l *Dynamo) LoginSucceeded(ctx context.Context, s auth.Success) (string, sessions.Record, error) {
	reserved, err := l.sessions.Reserve(ctx, s.Session)
	if errors.Is(err, sessions.ErrSuperseded) {
		return "", sessions.Record{}, fmt.Errorf("%w: %v", auth.ErrLoginSuperseded, err)
	}
	if err != nil {
		return "", sessions.Record{}, err
	}
	token, rec, item, err := l.sessions.CreateTx(reserved)
	if err != nil {
		return "", sessions.Record{}, err
	}
	// Guards first: their indexes name a cancellation's cause.
	items := []types.TransactWriteItem{item, l.sessions.GuardTx(rec)}
	if s.UserVersion > 0 {
		items = append(items, l.users.VersionCheckTx(keyOf(s.Event), s.UserVersion))
	}
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
	if s.ResetLockout {
		items = append(items, l.users.ResetFailuresTx(keyOf(s.Event)))
	}
	if err := l.write(ctx, rec.ID, items); err != nil {
		if failed := sessions.CancelReasons(err); failed != nil && (failed[1] || s.UserVersion > 0 && failed[2]) {
			return "", sessions.Record{}, fmt.Errorf("%w: %v", auth.ErrLoginSuperseded, err)
		}
		return "", sessions.Record{}, fmt.Errorf("record login: %w", err)
	}
	return token, rec, nil
}

// LoginFailed implements auth.Ledger.
func (l *Dynamo) LoginFailed(ctx context.Context, f auth.Failure) error {
	a, err := l.audit.RecordTx(f.Event)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{l.users.RecordFailureTx(f.Key, f.Lockout), a}
	if err := l.write(ctx, "", items); err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	return nil
}

// Audit implements auth.Ledger.
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

func keyOf(e audit.Event) users.Key { return users.Key{Package: e.Package, Username: e.Username} }

func tokenRecord(s auth.Success) tokencache.Record {
	t := s.Token
	return tokencache.Record{
		Package: s.Event.Package, Username: s.Event.Username,
		AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType,
		AccessExpiresAt: t.ExpiresAt, RefreshExpiresAt: t.RefreshExpiresAt,
		CachedAt: s.Event.At, GraceUntil: s.GraceUntil,
	}
}
