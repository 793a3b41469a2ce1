//go:build rie

// Package e2e runs the built Lambda bootstraps (dist/lambda/amd64, from
// `make build-functions`: the same source and flags as the arm64 ones that
// are deployed) under the AWS Lambda RIE against the local stack, invoked
// with the sample events in events/. `make test-rie` builds and runs them.
package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/internal/rietest"
	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/cleanup"
	"github.com/kcguard/kcguard/pkg/provision"
	"github.com/kcguard/kcguard/pkg/pull"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// stack is one test's kcguard on the local stack (its own tables, queue,
// KMS key and Keycloak proxy) and the environment its functions run with.
type stack struct {
	*stacktest.Env
	root string
	env  map[string]string
}

func newStack(t testing.TB) *stack {
	t.Helper()
	e := stacktest.New(t)
	root := testenv.RepoRoot(t)
	// local/env.json is what `sam local invoke --env-vars` uses; start from
	// it so the file stays right, then point it at this test's resources.
	env, err := rietest.LocalEnv(filepath.Join(root, "local", "env.json"), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.Config
	packages := map[string]map[string]string{}
	secrets := map[string]string{}
	for name, p := range cfg.Keycloak.Packages {
		packages[name] = map[string]string{"realm": p.Realm, "client_id": p.ClientID}
		secrets[name] = p.ClientSecret
	}
	pj, _ := json.Marshal(packages)
	// Client secrets come from Secrets Manager, as in AWS.
	secretID := testenv.Unique("rie-keycloak-clients")
	sv, _ := json.Marshal(secrets)
	sm := secretsmanager.NewFromConfig(testenv.AWS(t))
	if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(secretID), SecretString: aws.String(string(sv))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{
			SecretId: aws.String(secretID), ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	for k, v := range map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_ENDPOINT_URL":            testenv.MotoEndpoint,
		"KCGUARD_KEYCLOAK_URL":        cfg.Keycloak.URL,
		"KCGUARD_PACKAGES":            string(pj),
		"KCGUARD_KEYCLOAK_SECRETS_ID": secretID,
		"KCGUARD_TABLE_USERS":         cfg.Tables.Users, "KCGUARD_TABLE_SESSIONS": cfg.Tables.Sessions,
		"KCGUARD_TABLE_TOKENS": cfg.Tables.Tokens, "KCGUARD_TABLE_BREAKER": cfg.Tables.Breaker,
		"KCGUARD_TABLE_AUDIT": cfg.Tables.Audit, "KCGUARD_TABLE_JOURNAL": cfg.Tables.Journal,
		"KCGUARD_SYNC_QUEUE": cfg.Sync.Queue, "KCGUARD_SYNC_DLQ": cfg.Sync.DLQ,
		"KCGUARD_SYNC_VISIBILITY_TIMEOUT_SECONDS": "2",
		"KCGUARD_KMS_KEY_ID":                      cfg.KMSKeyID,
		// The operator role of events/*-admin.json and events/status.json.
		"KCGUARD_ADMIN_PRINCIPALS": "arn:aws:sts::123456789012:assumed-role/kcguard-operator/*",
	} {
		env[k] = v
	}
	return &stack{Env: e, root: root, env: env}
}

// start runs one function's amd64 bootstrap under its own RIE.
func (s *stack) start(t *testing.T, name string) *rietest.Function {
	t.Helper()
	return s.startWithTimeout(t, name, 0)
}

// startWithTimeout is start with the function timeout the RIE enforces
// (0: the RIE's 30 s).
func (s *stack) startWithTimeout(t *testing.T, name string, seconds int) *rietest.Function {
	t.Helper()
	bootstrap := filepath.Join(s.root, "dist", "lambda", "amd64", name, "bootstrap")
	if _, err := os.Stat(bootstrap); err != nil {
		t.Fatalf("%s is not built: run `make test-rie` (or `make build-functions`): %v", bootstrap, err)
	}
	f, err := rietest.Start(name, rietest.Options{
		RIE:            filepath.Join(s.root, ".cache", "bin", "aws-lambda-rie"),
		Bootstrap:      bootstrap,
		Env:            s.env,
		TimeoutSeconds: seconds,
	})
	if err != nil {
		t.Fatalf("%v (install the RIE with `make install`)", err)
	}
	t.Cleanup(func() {
		f.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, f.Output())
		}
	})
	return f
}

// event reads events/<name> and lets the test adjust it.
func event[T any](t testing.TB, root, name string, edit func(*T)) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev T
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("events/%s: %v", name, err)
	}
	if edit != nil {
		edit(&ev)
	}
	out, _ := json.Marshal(ev)
	return out
}

func withBody(body any) func(*events.APIGatewayV2HTTPRequest) {
	return func(ev *events.APIGatewayV2HTTPRequest) {
		b, _ := json.Marshal(body)
		ev.Body = string(b)
	}
}

// invokeHTTP invokes an HTTP API function and decodes its JSON body.
func invokeHTTP(t *testing.T, f *rietest.Function, ev []byte, body any) (events.APIGatewayV2HTTPResponse, rietest.Report) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payload, rep, err := f.Invoke(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		t.Fatalf("%s: not an API Gateway v2 response: %v: %s", f.Name, err, payload)
	}
	if body != nil {
		if err := json.Unmarshal([]byte(resp.Body), body); err != nil {
			t.Fatalf("%s: body %q: %v", f.Name, resp.Body, err)
		}
	}
	return resp, rep
}

type loginBody struct {
	Success        bool   `json:"success"`
	SessionToken   string `json:"session_token"`
	AuthMode       string `json:"auth_mode"`
	KeycloakStatus string `json:"keycloak_status"`
	Error          any    `json:"error"`
}

func TestLoginUnderRIE(t *testing.T) {
	s := newStack(t)
	u := s.NewUser(t, "homechoice")
	// The shared Keycloak of a loaded test machine can take over the 2 s
	// default to grant (seen: "no answer within 2s", load average 20 on
	// 2 cores); this test is about the bootstrap, not Keycloak's latency.
	s.env["KCGUARD_KEYCLOAK_TIMEOUT"] = "5s"
	login := s.start(t, "login")
	creds := map[string]string{"username": u.Name, "password": u.Password, "package": u.Package}

	var ok loginBody
	resp, cold := invokeHTTP(t, login, event(t, s.root, "login.json", withBody(creds)), &ok)
	if resp.StatusCode != 200 || !ok.Success || ok.SessionToken == "" || ok.AuthMode != "keycloak" {
		t.Fatalf("login: %d %+v, want 200 with a session in keycloak mode", resp.StatusCode, ok)
	}
	var warmBody loginBody
	_, warm := invokeHTTP(t, login, event(t, s.root, "login.json", withBody(creds)), &warmBody)
	t.Logf("login under the RIE: cold invoke %v (round trip %v), warm invoke %v", cold.Duration, cold.Wall, warm.Duration)

	creds["password"] = "not-" + u.Password
	var bad loginBody
	if resp, _ := invokeHTTP(t, login, event(t, s.root, "login.json", withBody(creds)), &bad); resp.StatusCode != 401 || bad.Success {
		t.Errorf("wrong password: %d %+v, want 401", resp.StatusCode, bad)
	}
	// Each answer is counted as an EMF metric on stdout (the dashboards'
	// auth-mode mix and failures).
	for _, want := range []string{`"LoginsKeycloak":1`, `"LoginFailures":1`, `"Namespace":"kcguard"`} {
		if !strings.Contains(login.Output(), want) {
			t.Errorf("login output lacks the EMF metric %s", want)
		}
	}

	// Keycloak down: the local tier still logs the user in.
	s.Proxy.Disable()
	defer s.Proxy.Enable()
	creds["password"] = u.Password
	var offline loginBody
	resp, _ = invokeHTTP(t, login, event(t, s.root, "login.json", withBody(creds)), &offline)
	if resp.StatusCode != 200 || offline.SessionToken == "" || offline.AuthMode == "keycloak" {
		t.Errorf("login with Keycloak down: %d %+v, want 200 with a session, not in keycloak mode", resp.StatusCode, offline)
	}
}

type passwordBody struct {
	Success bool   `json:"success"`
	Synced  bool   `json:"synced"`
	Sync    string `json:"sync"`
}

func TestPasswordUnderRIE(t *testing.T) {
	s := newStack(t)
	u := s.NewUser(t, "homechoice")
	password := s.start(t, "password")
	change := func(old, new string) (events.APIGatewayV2HTTPResponse, passwordBody) {
		var b passwordBody
		resp, _ := invokeHTTP(t, password, event(t, s.root, "password.json", withBody(map[string]string{
			"username": u.Name, "package": u.Package, "old_password": old, "new_password": new})), &b)
		return resp, b
	}

	second := u.Password + "-2nd"
	if resp, b := change(u.Password, second); resp.StatusCode != 200 || !b.Success || b.Sync != "applied" || !b.Synced {
		t.Fatalf("change with Keycloak up: %d %+v, want 200 applied", resp.StatusCode, b)
	}

	s.Proxy.Disable()
	defer s.Proxy.Enable()
	if resp, b := change(second, second+"-3rd"); resp.StatusCode != 200 || !b.Success || b.Sync != "queued" || b.Synced {
		t.Fatalf("change with Keycloak down: %d %+v, want 200 queued", resp.StatusCode, b)
	}
	out, err := sqs.NewFromConfig(testenv.AWS(t)).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: &s.QueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
	if err != nil {
		t.Fatal(err)
	}
	// One job: the new hash, carrying the end of the user's Keycloak
	// sessions (issue 11: a password change logs the old password's
	// sessions out, through the queue while Keycloak is down).
	if len(out.Messages) != 1 {
		t.Fatalf("queue holds %d messages, want the one sync job for %s", len(out.Messages), u.Name)
	}
	var job struct {
		Type, Username string
		EndSessions    bool `json:"end_sessions"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.Messages[0].Body)), &job); err != nil ||
		job.Type != "set_password" || job.Username != u.Name || !job.EndSessions {
		t.Errorf("queued %s (%v), want set_password for %s that ends its Keycloak sessions", aws.ToString(out.Messages[0].Body), err, u.Name)
	}
}

func TestSyncWorkerUnderRIE(t *testing.T) {
	s := newStack(t)
	u := s.NewUser(t, "homechoice") // in both tiers, synced at version 1
	worker := s.start(t, "syncworker")

	// events/syncworker.json: two jobs of one user's group, a job for a
	// user kcguard does not know, and a body that is not a job.
	batch := event(t, s.root, "syncworker.json", func(ev *events.SQSEvent) {
		for i := range ev.Records {
			r := &ev.Records[i]
			r.Body = strings.ReplaceAll(r.Body, "bob.hc", u.Name)
			r.Attributes["MessageGroupId"] = strings.ReplaceAll(r.Attributes["MessageGroupId"], "bob.hc", u.Name)
			r.Body = strings.Replace(r.Body, `"version": 2`, `"version": 5`, 1) // newer than synced: must reach Keycloak
		}
	})
	var ev events.SQSEvent
	_ = json.Unmarshal(batch, &ev)
	invoke := func() events.SQSEventResponse {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		payload, _, err := worker.Invoke(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(payload, &resp); err != nil {
			t.Fatalf("not an SQS batch response: %s", payload)
		}
		return resp
	}
	failed := func(resp events.SQSEventResponse) []string {
		var ids []string
		for _, f := range resp.BatchItemFailures {
			ids = append(ids, f.ItemIdentifier)
		}
		return ids
	}

	// Keycloak down: the user's first job fails, the second fails with it
	// (FIFO order within the group); the unknown user's job is superseded
	// and the garbage is dead-lettered: neither is retried.
	s.Proxy.Disable()
	got := failed(invoke())
	want := []string{ev.Records[0].MessageId, ev.Records[1].MessageId}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("with Keycloak down: batch item failures %v, want %v", got, want)
	}

	// Keycloak back, on a fresh instance (one that just saw a failure
	// lets one call through at a time, by design, and fails the rest fast):
	// nothing fails.
	s.Proxy.Enable()
	worker.Stop()
	worker = s.start(t, "syncworker")
	if got := failed(invoke()); len(got) != 0 {
		t.Errorf("with Keycloak up: batch item failures %v, want none", got)
	}
}

func TestCleanupUnderRIE(t *testing.T) {
	s := newStack(t)
	c := s.start(t, "cleanup")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	payload, rep, err := c.Invoke(ctx, event[map[string]any](t, s.root, "cleanup.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	var res cleanup.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		t.Fatalf("not a cleanup result: %s", payload)
	}
	if len(res.Errors) != 0 || !res.Done() {
		t.Errorf("cleanup run: %s, want every step done without errors", payload)
	}
	t.Logf("cleanup under the RIE: %v", rep.Duration)
}

// A session from the login function is listed by the sessions function and
// accepted by the authorizer; a made-up token is not.
func TestSessionsAndAuthorizerUnderRIE(t *testing.T) {
	s := newStack(t)
	u := s.NewUser(t, "homechoice")
	// The shared Keycloak of a loaded test machine can take over the 2 s
	// default to grant (seen: "no answer within 2s", load average 20 on
	// 2 cores); this test is about the bootstrap, not Keycloak's latency.
	s.env["KCGUARD_KEYCLOAK_TIMEOUT"] = "5s"
	login := s.start(t, "login")
	var session loginBody
	if resp, _ := invokeHTTP(t, login, event(t, s.root, "login.json", withBody(map[string]string{
		"username": u.Name, "password": u.Password, "package": u.Package})), &session); resp.StatusCode != 200 {
		t.Fatalf("login: %d %+v", resp.StatusCode, session)
	}

	sessionsFn := s.start(t, "sessions")
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	resp, _ := invokeHTTP(t, sessionsFn, event(t, s.root, "sessions.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.Headers["authorization"] = "Bearer " + session.SessionToken
	}), &list)
	if resp.StatusCode != 200 || len(list.Sessions) != 1 {
		t.Errorf("GET /sessions: %d %s, want 200 with the one session", resp.StatusCode, resp.Body)
	}

	authorizer := s.start(t, "authorizer")
	authorize := func(token string) bool {
		ev := event(t, s.root, "authorizer.json", func(ev *events.APIGatewayV2CustomAuthorizerV2Request) {
			ev.Headers["authorization"] = "Bearer " + token
			ev.IdentitySource = []string{"Bearer " + token}
		})
		payload, _, err := authorizer.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		var out events.APIGatewayV2CustomAuthorizerSimpleResponse
		if err := json.Unmarshal(payload, &out); err != nil {
			t.Fatalf("not a simple authorizer response: %s", payload)
		}
		return out.IsAuthorized
	}
	if !authorize(session.SessionToken) {
		t.Error("authorizer refused a live session")
	}
	if authorize("made-up-" + session.SessionToken[:10]) {
		t.Error("authorizer accepted a made-up token")
	}
}

// The pull function, scheduled: an administrator's disable in Keycloak
// reaches the local store through the built bootstrap.
func TestPullUnderRIE(t *testing.T) {
	const realm = "homechoice"
	admin := testenv.NewKeycloakAdmin(t)
	admin.GrantServiceAccountRoles(realm, testenv.Homechoice.ClientID, "view-events", "manage-events")
	s := newStack(t)
	if _, err := provision.FixEvents(context.Background(), s.RT.Keycloak, realm); err != nil {
		t.Fatal(err)
	}
	// Only the realm whose events this test turned on.
	pkgs, _ := json.Marshal(map[string]map[string]string{realm: {
		"realm": s.Config.Keycloak.Packages[realm].Realm, "client_id": s.Config.Keycloak.Packages[realm].ClientID}})
	s.env["KCGUARD_PACKAGES"] = string(pkgs)
	u := s.NewUserPrefixed(t, realm, "infra-pull")
	// Its deployed timeout: the first run compares page by page with a
	// Keycloak realm that the other tests share.
	p := s.startWithTimeout(t, "pull", 300)
	run := func() pull.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		payload, _, err := p.Invoke(ctx, event[map[string]any](t, s.root, "pull.json", nil))
		if err != nil {
			t.Fatal(err)
		}
		var rs []pull.Result
		if err := json.Unmarshal(payload, &rs); err != nil || len(rs) != 1 {
			t.Fatalf("not one pull result: %s", payload)
		}
		return rs[0]
	}
	if first := run(); first.Checked < 1 {
		t.Fatalf("first run: %+v, want a compare that checks the user", first)
	}
	admin.Do("PUT", realm+"/users/"+admin.UserID(realm, u.Name), map[string]any{"enabled": false}, nil)
	if r := run(); r.Disabled != 1 {
		t.Errorf("after the disable: %+v, want one user disabled", r)
	}
	got, err := s.RT.Users.Get(context.Background(), userkey.Key{Package: realm, Username: u.Name})
	if err != nil || got.Enabled {
		t.Errorf("local user after the pull: %+v %v, want disabled", got, err)
	}
}

// The status function answers a listed IAM caller with the snapshot, and
// nobody else.
func TestStatusUnderRIE(t *testing.T) {
	s := newStack(t) // admits the operator role of events/status.json; IAM alone admits nobody
	fn := s.start(t, "status")
	var snap struct {
		Breaker  struct{ State string } `json:"breaker"`
		Keycloak []struct {
			Package   string `json:"package"`
			Reachable bool   `json:"reachable"`
		} `json:"keycloak"`
		Packages []map[string]any `json:"packages"`
		Errors   []string         `json:"errors"`
	}
	resp, rep := invokeHTTP(t, fn, event[events.APIGatewayV2HTTPRequest](t, s.root, "status.json", nil), &snap)
	if resp.StatusCode != 200 || snap.Breaker.State != "closed" || len(snap.Keycloak) != 2 || len(snap.Packages) != 2 || len(snap.Errors) != 0 {
		t.Fatalf("GET /status as IAM: %d %s", resp.StatusCode, resp.Body)
	}
	for _, k := range snap.Keycloak {
		if !k.Reachable {
			t.Errorf("keycloak %s unreachable from the function", k.Package)
		}
	}
	resp, _ = invokeHTTP(t, fn, event(t, s.root, "status.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer = nil
	}), nil)
	if resp.StatusCode != 403 {
		t.Errorf("anonymous GET /status: %d %s", resp.StatusCode, resp.Body)
	}
	// IAM lets anyone allowed to invoke the API through; only the listed
	// principals are operators.
	stranger := event(t, s.root, "status.json", func(ev *events.APIGatewayV2HTTPRequest) {
		ev.RequestContext.Authorizer.IAM.UserARN = "arn:aws:sts::123456789012:assumed-role/some-app/i-0abc"
	})
	if resp, _ := invokeHTTP(t, fn, stranger, nil); resp.StatusCode != 403 {
		t.Errorf("GET /status by an unlisted IAM caller: %d %s, want 403", resp.StatusCode, resp.Body)
	}
	t.Logf("status under the RIE: %v", rep.Duration)
}
