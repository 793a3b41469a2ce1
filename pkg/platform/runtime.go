package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Runtime is one process's set of clients and services, built once (at
// Lambda init, or when a command starts) and shared by every request.
type Runtime struct {
	Config   config.Config
	AWS      aws.Config
	Log      *slog.Logger
	DynamoDB *dynamodb.Client
	SQS      *sqs.Client

	Keycloak *keycloak.Client
	Breaker  *breaker.Breaker
	Users    *users.Dynamo
	Sessions *sessions.Dynamo
	Tokens   *tokencache.Dynamo
	// TokenCipher encrypts cached tokens (one KMS data key per hour).
	TokenCipher *tokencache.Envelope
	Audit       *audit.Dynamo
	Journal     *journal.Dynamo // nil when tables.journal is empty
	Queue       *syncjob.SQSQueue
	DLQ         *syncjob.SQSQueue
	// JobJournal writes the sync journal (nil when tables.journal is empty).
	JobJournal *syncjob.JobJournal
	// JournaledQueue is the sync queue with a pending journal entry per job
	// (reconciliation, the CLI).
	JournaledQueue syncjob.JournaledQueue
	Applier        *syncjob.Applier
	// Dispatcher is the login and password flows' sync (auth.Sync) and the
	// session API's Keycloak logout.
	Dispatcher *syncjob.Dispatcher
	Auth       *auth.Service
	// Replay reacts to the breaker transitions this instance wins: pauses
	// the sync worker on open, resumes it, wakes the local poller and
	// reconciles on close. Alerts publishes them to alerts.topic_arn.
	Replay *syncjob.Replay
	Alerts *alerts.Publisher
	// SyncMapping is the worker's event source mapping; nil without
	// sync.worker_function (local).
	SyncMapping *syncjob.EventSourceMapping

	poller *syncjob.Poller // this process's poller (`kcguard sync run`), woken on close
}

// New builds the Runtime for a validated configuration, with the SDK
// configured the standard way.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Runtime, error) {
	awsCfg, err := AWS(ctx)
	if err != nil {
		return nil, err
	}
	return Build(ctx, cfg, awsCfg, log)
}

// Build is New with a given SDK configuration; ddbOpts apply to the
// DynamoDB client of the request path (tests count its calls). The breaker
// has a client of its own: its cached reads are outside the login budget.
func Build(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, ddbOpts ...func(*dynamodb.Options)) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var err error
	rt := &Runtime{Config: cfg, AWS: awsCfg, Log: log}
	if cfg.Keycloak.SecretsID != "" {
		if err := resolveSecrets(ctx, secretsmanager.NewFromConfig(awsCfg), &rt.Config); err != nil {
			return nil, err
		}
		cfg = rt.Config
	}
	rt.AWS = Bounded(awsCfg, cfg.AWS)
	awsCfg = rt.AWS
	rt.DynamoDB = dynamodb.NewFromConfig(awsCfg, ddbOpts...)
	rt.SQS = sqs.NewFromConfig(awsCfg)
	rt.Queue = syncjob.NewSQSQueue(rt.SQS, cfg.Sync.Queue)
	rt.DLQ = syncjob.NewSQSQueue(rt.SQS, cfg.Sync.DLQ)
	rt.wireReplay(cfg, awsCfg, log)

	if rt.Keycloak, err = KeycloakClient(cfg, log); err != nil {
		return nil, err
	}
	bs := BreakerSettings(cfg, log)
	// Pausing the worker first: it is what keeps queued changes from
	// burning receives; the alert can wait for it.
	bs.Notifier = breaker.Notifiers{rt.Replay, rt.Alerts}
	rt.Breaker = breaker.New(breaker.NewDynamoStore(dynamodb.NewFromConfig(awsCfg), cfg.Tables.Breaker), bs)
	rt.Users = UserStore(cfg, rt.DynamoDB)
	rt.Sessions = sessions.NewDynamo(rt.DynamoDB, cfg.Tables.Sessions, sessions.WithIdleTimeout(cfg.Sessions.IdleTimeout),
		sessions.WithMaxPerUser(cfg.Sessions.MaxPerUser))
	rt.TokenCipher = tokencache.NewKMSCipher(kms.NewFromConfig(awsCfg), cfg.KMSKeyID)
	rt.Tokens = tokencache.NewDynamo(rt.DynamoDB, cfg.Tables.Tokens, rt.TokenCipher,
		tokencache.WithGracePeriod(cfg.Keycloak.Resilience.GracePeriod()))
	rt.Audit = audit.NewDynamo(rt.DynamoDB, cfg.Tables.Audit)
	rt.Applier = &syncjob.Applier{Keycloak: rt.Keycloak, Users: rt.Users, Log: log,
		Conflicts: syncjob.ConflictPolicy(cfg.Sync.ConflictPolicy)}
	if cfg.Tables.Journal != "" {
		rt.Journal = journal.NewDynamo(rt.DynamoDB, cfg.Tables.Journal, journal.WithRetention(cfg.Sync.JournalRetention))
		rt.JobJournal = &syncjob.JobJournal{Journal: rt.Journal, Log: log}
	}
	rt.JournaledQueue = syncjob.JournaledQueue{Queue: rt.Queue, Journal: rt.JobJournal}
	rt.Dispatcher = &syncjob.Dispatcher{Applier: rt.Applier, Queue: rt.Queue, Journal: rt.JobJournal, Breaker: rt.Breaker, Log: log}

	hasher, err := Hasher(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Audit.UsernameHMACKey == "" {
		log.Warn("audit.username_hmac_key is not set: unknown usernames are audited under a per-process random key")
	}
	if rt.Auth, err = rt.NewAuth(hasher); err != nil {
		return nil, err
	}
	return rt, nil
}

// warmTimeout bounds WarmLogin's background calls.
const warmTimeout = 5 * time.Second

// WarmLogin starts, without waiting for them, the two calls the first login
// after a cold start would otherwise make on its own critical path: the
// breaker's first read of its shared state (which also opens the first
// DynamoDB connection) and the token cache's first KMS data key. Init does
// not get longer: Lambda runs them alongside the first invocation (or
// thaws them with it), and a login that needs either joins the call in
// flight instead of making its own. Failures only cost the first login
// what it would have paid anyway. The returned channel closes when both
// are done (tests).
func (rt *Runtime) WarmLogin() <-chan struct{} {
	done := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rt.Breaker.State(ctx) }()
	go func() {
		defer wg.Done()
		if err := rt.TokenCipher.Warm(ctx); err != nil {
			rt.Log.Debug("token cache data key not fetched ahead", "err", err)
		}
	}()
	go func() { wg.Wait(); cancel(); close(done) }()
	return done
}

// NewAuth builds the login and password service over the Runtime's stores
// with the given hasher (Build uses the configured one; tests count checks).
func (rt *Runtime) NewAuth(hasher auth.PasswordHasher) (*auth.Service, error) {
	cfg := rt.Config
	record := loginrecord.NewDynamo(rt.DynamoDB, rt.Users, rt.Sessions, rt.Tokens, rt.Audit)
	return auth.New(auth.Deps{
		Users: rt.Users, Hasher: hasher, Policy: PasswordPolicy(cfg),
		Keycloak: rt.Keycloak, Breaker: rt.Breaker, Tokens: CachedTokens{Store: rt.Tokens},
		Recorder: record, Reads: record, UsernameKey: []byte(cfg.Audit.UsernameHMACKey),
		Sessions: rt.Sessions, Sync: rt.Dispatcher, Packages: cfg.PackageNames(), Log: rt.Log,
	}, AuthSettings(cfg))
}

// UserStore is the users table of cfg over db.
func UserStore(cfg config.Config, db *dynamodb.Client) *users.Dynamo {
	return users.NewDynamo(db, cfg.Tables.Users)
}

// PasswordPolicy is the policy for new passwords (password.min_length).
func PasswordPolicy(cfg config.Config) credential.Policy {
	return credential.Policy{MinLength: cfg.Password.MinLength}
}

// Accounts builds an operator's changes to local users (`kcguard users`)
// over the users table alone, with the login flow's hasher and policy and
// the AWS SDK bounded as in a Runtime: the user commands need no Keycloak,
// queue or breaker.
func Accounts(cfg config.Config, awsCfg aws.Config) (auth.Accounts, *users.Dynamo, error) {
	hasher, err := Hasher(cfg)
	if err != nil {
		return auth.Accounts{}, nil, err
	}
	st := UserStore(cfg, dynamodb.NewFromConfig(Bounded(awsCfg, cfg.AWS)))
	return auth.Accounts{Users: st, Hasher: hasher, Policy: PasswordPolicy(cfg)}, st, nil
}

// KeycloakClient builds the Keycloak adapter for every configured package.
func KeycloakClient(cfg config.Config, log *slog.Logger) (*keycloak.Client, error) {
	kc, err := keycloak.New(KeycloakOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("keycloak client: %w", err)
	}
	return kc, nil
}

// KeycloakOptions are the Keycloak adapter's options for cfg (benchmarks
// add a timed HTTP client).
func KeycloakOptions(cfg config.Config, log *slog.Logger) keycloak.Options {
	realms := map[string]keycloak.Realm{}
	for name, p := range cfg.Keycloak.Packages {
		realms[name] = keycloak.Realm{Realm: p.Realm, ClientID: p.ClientID, ClientSecret: p.ClientSecret}
	}
	return keycloak.Options{
		BaseURL: cfg.Keycloak.URL, Packages: realms, RequestTimeout: cfg.Keycloak.Timeout,
		AdminTimeout: cfg.Keycloak.AdminTimeout, Logger: log,
	}
}

// AuthSettings maps the configuration onto the login and password flows.
func AuthSettings(cfg config.Config) auth.Settings {
	return auth.Settings{
		AllowOfflineMode: cfg.Keycloak.Resilience.AllowOfflineMode,
		GracePeriod:      cfg.Keycloak.Resilience.GracePeriod(),
		MaxFailures:      cfg.Lockout.MaxFailures, FailureDelay: cfg.Lockout.Delay, MaxFailureDelay: cfg.Lockout.MaxDelay,
		SourceMaxFailures: cfg.Lockout.SourceMaxFailures, SourceDelay: cfg.Lockout.SourceDelay,
		SourceMaxDelay: cfg.Lockout.SourceMaxDelay,
		SessionIdle:    cfg.Sessions.IdleTimeout, SessionLifetime: cfg.Sessions.MaxLifetime,
		RevokeOtherSessions: cfg.Password.RevokeOtherSessions, ParallelKeycloak: cfg.Keycloak.ParallelGrant,
		LearnOnLogin: cfg.Keycloak.LearnOnLogin, OfflineWindow: cfg.Keycloak.Resilience.OfflineWindow(),
		InspectTimeout: cfg.Keycloak.Timeout,
	}
}

// auditKeySecret is the entry of the Secrets Manager secret that holds
// audit.username_hmac_key (package names never start with "_").
const auditKeySecret = "_audit_username_hmac_key"

// resolveSecrets fills the packages' client secrets from a Secrets Manager
// secret holding {"<package>": "<client secret>"} and, optionally, the
// audit HMAC key under auditKeySecret.
func resolveSecrets(ctx context.Context, sm *secretsmanager.Client, cfg *config.Config) error {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &cfg.Keycloak.SecretsID})
	if err != nil {
		return fmt.Errorf("keycloak client secrets %s: %w", cfg.Keycloak.SecretsID, err)
	}
	var secrets map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &secrets); err != nil {
		return fmt.Errorf("keycloak client secrets %s: not a JSON object of strings", cfg.Keycloak.SecretsID)
	}
	if k, ok := secrets[auditKeySecret]; ok {
		cfg.Audit.UsernameHMACKey = k
	}
	for name, p := range cfg.Keycloak.Packages {
		if s, ok := secrets[name]; ok {
			p.ClientSecret = s
			cfg.Keycloak.Packages[name] = p
		}
	}
	return nil
}

// CachedTokens serves the token cache to the login flow.
type CachedTokens struct{ Store tokencache.Store }

// Get implements auth.TokenCache.
func (c CachedTokens) Get(ctx context.Context, key userkey.Key, now time.Time) (keycloak.Token, bool, error) {
	rec, err := c.Store.Get(ctx, key.Package, key.Username, now)
	switch {
	case err == nil:
	case isNotFound(err):
		return keycloak.Token{}, false, nil
	default:
		return keycloak.Token{}, false, err
	}
	return loginrecord.KeycloakToken(rec, now), true, nil
}

// Forget implements auth.TokenCache.
func (c CachedTokens) Forget(ctx context.Context, key userkey.Key) error {
	if err := c.Store.Delete(ctx, key.Package, key.Username); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, tokencache.ErrNotFound) }
