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
func (l *Dynamo) LoginSucceeded(ctx context.Context, s auth.Success) (string, sessions.Record, error) {
	token, rec, item, err := l.sessions.CreateTx(s.Session)
	if err != nil {
		return "", sessions.Record{}, err
	}
	items := []types.TransactWriteItem{item}
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
		if !sessionExisted(err) || !l.landed(ctx, token, s) {
			return "", sessions.Record{}, fmt.Errorf("record login: %w", err)
		}
	}
	return token, rec, nil
}

// sessionExisted says the transaction was cancelled because the new
// session's item (always the first) already existed: what an SDK retry of
// our own transaction that had landed meets where the store ignores the
// ClientRequestToken (moto does; DynamoDB answers such a retry with
// success for ten minutes).
func sessionExisted(err error) bool {
	var tce *types.TransactionCanceledException
	return errors.As(err, &tce) && len(tce.CancellationReasons) > 0 &&
		aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed"
}

// landed says the session of token exists: a transaction is all or
// nothing, so the whole login was recorded. Session ids are random, so an
// existing one with this token's hash can only be ours.
func (l *Dynamo) landed(ctx context.Context, token string, s auth.Success) bool {
	_, err := l.sessions.GetByToken(ctx, token, s.Event.At)
	return err == nil
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
