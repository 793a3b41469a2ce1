package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/ledger"
	"github.com/kcguard/kcguard/pkg/sessions"
)

// lostAnswer lands every transaction and then sends it again, as the SDK
// does when the first answer times out; the caller sees the second answer.
type lostAnswer struct{ *dynamodb.Client }

func (l lostAnswer) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if _, err := l.Client.TransactWriteItems(ctx, in, opts...); err != nil {
		return nil, err
	}
	return l.Client.TransactWriteItems(ctx, in, opts...)
}

// A login whose transaction landed but whose answer was lost is a login
// recorded, not a 503 (moto ignores the ClientRequestToken that makes
// DynamoDB answer the retry with success; the chaos run met it under load).
func TestLoginRecordedWhenTheRetryOfALandedTransactionIsRefused(t *testing.T) {
	env := stacktest.New(t)
	rt := env.RT
	l := ledger.NewDynamo(lostAnswer{rt.DynamoDB}, rt.Users, rt.Sessions, rt.Tokens, rt.Audit)
	now := time.Now()
	s := auth.Success{
		Session: sessions.Record{Package: "homechoice", Username: "retried", AuthMode: sessions.AuthMode("local"),
			CreatedAt: now, ExpiresAt: now.Add(time.Hour), IdleExpiresAt: now.Add(30 * time.Minute)},
		Event: audit.Event{Package: "homechoice", Username: "retried", Action: audit.ActionLogin,
			Outcome: audit.OutcomeSuccess, At: now},
	}
	token, rec, err := l.LoginSucceeded(context.Background(), s)
	if err != nil {
		t.Fatalf("login whose retried transaction met its own session: %v", err)
	}
	got, err := rt.Sessions.GetByToken(context.Background(), token, now)
	if err != nil || got.ID != rec.ID {
		t.Fatalf("the session answered is not the one stored: %v", err)
	}
}
