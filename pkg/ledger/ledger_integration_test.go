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

// retried lands every transaction and then answers what the SDK's retry of
// it gets from a store that ignores the idempotency token (moto): the
// first answer was lost, the second is a cancellation.
type retried struct{ *dynamodb.Client }

func (r retried) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput,
	opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if out, err := r.Client.TransactWriteItems(ctx, in, opts...); err != nil {
		return out, err
	}
	return r.Client.TransactWriteItems(ctx, in, opts...)
}

func TestLoginSucceededSurvivesARetryOfALandedWrite(t *testing.T) {
	e := stacktest.New(t)
	rt := e.RT
	l := ledger.NewDynamo(retried{rt.DynamoDB}, rt.Users, rt.Sessions, rt.Tokens, rt.Audit)
	now := time.Now()
	token, rec, err := l.LoginSucceeded(context.Background(), ledger.Success{
		Session: sessions.Record{Package: "homechoice", Username: "perf-retried", AuthMode: sessions.AuthMode(auth.ModeLocal),
			CreatedAt: now, IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)},
		Event: audit.Event{Package: "homechoice", Username: "perf-retried", Action: audit.ActionLogin,
			Outcome: audit.OutcomeSuccess, At: now},
		ResetLockout: true, Now: now,
	})
	if err != nil {
		t.Fatalf("a retried write that had landed must count as written: %v", err)
	}
	got, err := rt.Sessions.GetByToken(context.Background(), token, time.Now())
	if err != nil || got.ID != rec.ID {
		t.Fatalf("the session is not there: %+v %v", got, err)
	}
	if rt.Sessions.Landed(context.Background(), "not-"+token, rec) {
		t.Fatal("another token's session counted as landed")
	}
}
