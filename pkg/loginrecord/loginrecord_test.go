package loginrecord_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/loginrecord/loginrecordtest"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

func TestMemory(t *testing.T) {
	loginrecordtest.Run(t, func(*testing.T) loginrecordtest.Backend { return memoryRecorder() })
}

// memoryRecorder is the memory login record over empty in-memory stores.
func memoryRecorder() loginrecordtest.Backend {
	u, s, tok, a := users.NewMemory(), sessions.NewMemory(), tokencache.NewMemory(), audit.NewMemory()
	return loginrecordtest.Backend{Recorder: loginrecord.Stores{Users: u, Sessions: s, Tokens: tok, Trail: a},
		Users: u, Sessions: s, Tokens: tok, Audit: a}
}

func TestDynamo(t *testing.T) {
	// A moto of its own: under the load of other packages' tests the shared
	// one now and then loses an answer (the client's read of the body fails)
	// and the SDK retries a write that landed; moto ignores the idempotency
	// token, so a counter moves twice and the suite's exact counts fail.
	t.Setenv("AWS_ENDPOINT_URL", testenv.PrivateMoto(t))
	loginrecordtest.Run(t, func(t *testing.T) loginrecordtest.Backend {
		b := dynamoStores(t)
		return loginrecordtest.Backend{Recorder: b.recorder(b.db), Retried: b.recorder(lostAnswer{b.db}),
			Users: b.users, Sessions: b.sessions, Tokens: b.tokens, Audit: b.audit}
	})
}

// stores are DynamoDB stores on tables of their own (moto).
type stores struct {
	db       *dynamodb.Client
	users    *users.Dynamo
	sessions *sessions.Dynamo
	tokens   *tokencache.Dynamo
	audit    *audit.Dynamo
}

func dynamoStores(t *testing.T) stores {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	cipher, err := tokencache.NewLocalCipher(master)
	if err != nil {
		t.Fatal(err)
	}
	return stores{db: db,
		users:    users.NewDynamo(db, testenv.Table(t, cfg, users.Table("users"))),
		sessions: sessions.NewDynamo(db, testenv.Table(t, cfg, sessions.Table("sessions"))),
		tokens:   tokencache.NewDynamo(db, testenv.Table(t, cfg, tokencache.Table("tokens")), cipher),
		audit:    audit.NewDynamo(db, testenv.Table(t, cfg, audit.Table("audit")))}
}

func (s stores) recorder(db loginrecord.TransactWriter) *loginrecord.Dynamo {
	return loginrecord.NewDynamo(db, s.users, s.sessions, s.tokens, s.audit)
}

// lostAnswer lands every transaction and then sends it again, as the SDK
// does when the first answer times out; the caller sees the second answer
// (a refusal from a store that ignores the ClientRequestToken, as moto
// does; the chaos run met it under load).
type lostAnswer struct{ *dynamodb.Client }

func (l lostAnswer) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput,
	opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if out, err := l.Client.TransactWriteItems(ctx, in, opts...); err != nil {
		return out, err
	}
	return l.Client.TransactWriteItems(ctx, in, opts...)
}

// The retried login's check that its session landed knows the session by
// its token: another token's session is not this login's.
func TestLandedIsTheTokensOwnSession(t *testing.T) {
	s := dynamoStores(t)
	now := time.Now()
	token, rec, err := s.recorder(lostAnswer{s.db}).LoginSucceeded(context.Background(), loginrecord.Success{
		Session: sessions.Record{Package: "homechoice", Username: "landed", AuthMode: sessions.AuthLocal,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		Event: audit.Event{Package: "homechoice", Username: "landed", Action: audit.ActionLogin,
			Outcome: audit.OutcomeSuccess, At: now},
		ResetLockout: true, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !s.sessions.Landed(context.Background(), token, rec) {
		t.Fatal("the login's own session is not landed")
	}
	if s.sessions.Landed(context.Background(), "not-"+token, rec) {
		t.Fatal("another token's session counted as landed")
	}
}
