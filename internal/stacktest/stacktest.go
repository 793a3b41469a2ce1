// Package stacktest builds a complete kcguard Runtime on the local stack
// for integration tests: its own tables, queue and KMS key in the shared
// moto, its own toxiproxy proxy in front of the real Keycloak, a DynamoDB
// call counter, and every log line captured so a test can prove that no
// secret was logged.
package stacktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/provision"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// Env is one test's kcguard on the local stack.
type Env struct {
	Config   config.Config
	RT       *platform.Runtime
	Proxy    *testenv.Proxy // this test's path to Keycloak
	Calls    *ddbcount.Counter
	Logs     *Logs
	QueueURL string
}

// Logs is a concurrency-safe log sink.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// New builds the Env. mutate may adjust the configuration before the
// resources are created (e.g. a shorter cooldown).
func New(t testing.TB, mutate ...func(*config.Config)) *Env {
	t.Helper()
	testenv.Need(t, "moto", "keycloak", "toxiproxy")
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
		"AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": testenv.MotoEndpoint} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	url, proxy := testenv.Keycloak(t)
	cfg := config.Default()
	cfg.Keycloak.URL = url
	cfg.Keycloak.Packages = map[string]config.Package{}
	for _, r := range []testenv.Realm{testenv.Homechoice, testenv.Janee} {
		cfg.Keycloak.Packages[r.Name] = config.Package{Realm: r.Name, ClientID: r.ClientID, ClientSecret: r.ClientSecret}
	}
	id := testenv.Unique("it")
	cfg.Tables = config.Tables{Users: id + "-users", Sessions: id + "-sessions", Tokens: id + "-tokens",
		Breaker: id + "-breaker", Audit: id + "-audit", Journal: id + "-journal"}
	cfg.Sync.Queue, cfg.Sync.DLQ = id+"-sync.fifo", id+"-sync-dlq.fifo"
	cfg.Sync.VisibilityTimeoutSeconds = 2 // failed jobs come back quickly in tests
	cfg.KMSKeyID = "alias/" + id
	cfg.Log.Level = "debug"
	// The shared moto stalls for seconds when the machine is loaded; the
	// production bounds (aws.*) would turn that into 503s in tests that
	// are not about them. Tests of the bounds set their own.
	cfg.AWS.AttemptTimeout, cfg.AWS.CallBudget = 10*time.Second, 20*time.Second
	for _, m := range mutate {
		m(&cfg)
	}

	awsCfg := testenv.AWS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := platform.ResourcesOf(cfg)
	db := dynamodb.NewFromConfig(awsCfg)
	for _, tb := range res.Tables {
		if _, err := provision.EnsureTable(ctx, db, tb); err != nil {
			t.Fatal(err)
		}
		name := tb.Name
		t.Cleanup(func() { _, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	}
	q := sqs.NewFromConfig(awsCfg)
	if _, err := provision.EnsureQueue(ctx, q, res.Queue); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{res.Queue.Name, res.Queue.DLQName} {
		name := n
		t.Cleanup(func() {
			if u, err := q.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: &name}); err == nil {
				_, _ = q.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			}
		})
	}
	if _, err := provision.EnsureKMSKey(ctx, kms.NewFromConfig(awsCfg), cfg.KMSKeyID); err != nil {
		t.Fatal(err)
	}

	e := &Env{Config: cfg, Proxy: proxy, Calls: ddbcount.New(), Logs: &Logs{}}
	log := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt, err := platform.Build(ctx, cfg, awsCfg, log, e.Calls.Option())
	if err != nil {
		t.Fatal(err)
	}
	e.RT = rt
	if e.QueueURL, err = rt.Queue.URL(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// User is a user both tiers know, created for one test.
type User struct {
	Package, Name, Password string
}

// NewUser creates a unique user locally and provisions it into Keycloak by
// importing its hash (the sync path), and deletes it from Keycloak when the
// test ends.
func (e *Env) NewUser(t testing.TB, pkg string) User {
	t.Helper()
	return e.NewUserPrefixed(t, pkg, "it-user")
}

// NewUserPrefixed is NewUser with the username starting with prefix (a
// unique suffix is added), so a test's Keycloak users are recognisable in
// the shared Keycloak.
func (e *Env) NewUserPrefixed(t testing.TB, pkg, prefix string) User {
	t.Helper()
	return e.NewUsers(t, 1, prefix, func(int) string { return pkg })[0]
}

// NewUsers creates n users like NewUserPrefixed, four at a time (hashing and
// the Keycloak import dominate); user i belongs to package pkgOf(i).
func (e *Env) NewUsers(t testing.TB, n int, prefix string, pkgOf func(i int) string) []User {
	t.Helper()
	h, err := platform.Hasher(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	out, errs := make([]User, n), make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(4, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = e.newUser(h, pkgOf(i), prefix)
				if errs[i] == nil {
					u := out[i]
					t.Cleanup(func() {
						if kc, err := e.RT.Keycloak.FindUser(context.Background(), u.Package, u.Name); err == nil {
							_ = e.RT.Keycloak.DeleteUser(context.Background(), u.Package, kc.ID)
						}
					})
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// newUser creates one user locally and imports its hash into Keycloak.
func (e *Env) newUser(h *credential.Hasher, pkg, prefix string) (User, error) {
	ctx := context.Background()
	u := User{Package: pkg, Name: testenv.Unique(prefix), Password: testenv.Unique("Pw-for-tests")}
	hash, err := h.Hash(u.Password)
	if err != nil {
		return u, err
	}
	rec, err := e.RT.Users.Create(ctx, users.User{Package: pkg, Username: u.Name, Enabled: true,
		Email: u.Name + "@example.com", Hash: users.NewHash(hash)}, time.Now())
	if err != nil {
		return u, fmt.Errorf("create %s locally: %w", u.Name, err)
	}
	job := syncjob.New(syncjob.ProvisionUser, pkg, u.Name, rec.Version, time.Now())
	job.Hash = &hash
	if _, err := e.RT.Applier.Apply(ctx, job); err != nil {
		return u, fmt.Errorf("provision %s into keycloak: %w", u.Name, err)
	}
	return u, nil
}

// NewKeycloakUser creates a unique user in Keycloak only (none locally),
// as an administrator would, and deletes it when the test ends. It returns
// the user and its Keycloak id.
func (e *Env) NewKeycloakUser(t testing.TB, pkg, prefix string) (User, string) {
	t.Helper()
	u := User{Package: pkg, Name: testenv.Unique(prefix), Password: testenv.Unique("Pw-kc-only")}
	id, err := e.RT.Keycloak.CreateUser(context.Background(), pkg, keycloak.UserSpec{Username: u.Name,
		Email: u.Name + "@example.com", FirstName: "Keycloak", LastName: "Only", EmailVerified: true,
		Password: e.Hash(t, u.Password)})
	if err != nil {
		t.Fatalf("create %s in keycloak: %v", u.Name, err)
	}
	t.Cleanup(func() { _ = e.RT.Keycloak.DeleteUser(context.Background(), pkg, id) })
	return u, id
}

// Hash hashes password with the configured hasher (Keycloak-compatible).
func (e *Env) Hash(t testing.TB, password string) credential.Hash {
	t.Helper()
	h, err := platform.Hasher(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

// Login logs u in through the service.
func (e *Env) Login(u User, password string) (auth.LoginResult, error) {
	return e.RT.Auth.Login(context.Background(), auth.LoginInput{Package: u.Package, Username: u.Name, Password: password,
		SourceIP: "127.0.0.1", UserAgent: "stacktest"})
}

// AssertNoSecrets fails if any secret appears in the captured logs or in
// any item of the audit table (where, say, a password typed into the
// username field would land if the trail kept it verbatim).
func (e *Env) AssertNoSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	logs := e.Logs.String()
	if logs == "" {
		t.Fatal("no log output was captured: the check would prove nothing")
	}
	trail := e.AuditTrail(t) // may be empty: not every test logs in
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%d characters, starting %.3q) appears in the logs", len(s), s)
		}
		if strings.Contains(strings.ToLower(trail), strings.ToLower(s)) {
			t.Errorf("a secret (%d characters, starting %.3q) appears in the audit table", len(s), s)
		}
	}
}

// AuditTrail is every attribute of every audit item, as text.
func (e *Env) AuditTrail(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	var start map[string]types.AttributeValue
	for {
		out, err := e.RT.DynamoDB.Scan(context.Background(), &dynamodb.ScanInput{
			TableName: aws.String(e.Config.Tables.Audit), ExclusiveStartKey: start})
		if err != nil {
			t.Fatalf("scan the audit table: %v", err)
		}
		for _, item := range out.Items {
			var m map[string]any
			if err := attributevalue.UnmarshalMap(item, &m); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, m)
		}
		if out.LastEvaluatedKey == nil {
			return b.String()
		}
		start = out.LastEvaluatedKey
	}
}
