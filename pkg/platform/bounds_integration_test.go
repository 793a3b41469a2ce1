package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Issue 15, "AWS side hangs, too": with every AWS call going through a
// toxiproxy proxy in front of moto and that proxy blackholed (connections
// accepted, nothing answered), /login and /password answer 503
// unavailable within the configured bounds, write nothing, and work again
// by themselves once the proxy heals.
func TestAWSBrownoutAnswers503WithinBudget(t *testing.T) {
	const attempt, budget = 400 * time.Millisecond, time.Second
	bounds := func(c *config.Config) {
		c.AWS = config.AWS{AttemptTimeout: attempt, CallBudget: budget, MaxAttempts: 3}
	}
	e := stacktest.New(t, bounds)
	u := e.NewUserPrefixed(t, "homechoice", "replay")
	ctx := context.Background()

	moto := testenv.NewProxy(t, strings.TrimPrefix(testenv.MotoEndpoint, "http://"))
	viaProxy := e.RT.AWS.Copy()
	viaProxy.BaseEndpoint = aws.String("http://" + moto.Listen)
	rt, err := platform.Build(ctx, e.Config, viaProxy, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	login := func() (int, string, time.Duration) {
		return call(t, rt, "/login", map[string]string{"package": u.Package, "username": u.Name, "password": u.Password})
	}
	if status, body, _ := login(); status != http.StatusOK {
		t.Fatalf("healthy login through the proxy: %d %s", status, body)
	}
	before, err := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	sessionsBefore, err := e.RT.Sessions.ListByUser(ctx, u.Package, u.Name)
	if err != nil {
		t.Fatal(err)
	}

	moto.Blackhole()
	// The login makes several AWS calls in sequence; the first that runs
	// out of budget ends it. Bound: one call's budget plus the breaker's
	// own store timeout, with room for a loaded machine, far below the
	// 60 s seen before.
	limit := budget + 2*time.Second + 3*time.Second
	for _, tc := range []struct {
		route string
		body  map[string]string
	}{
		{"/login", map[string]string{"package": u.Package, "username": u.Name, "password": u.Password}},
		{"/password", map[string]string{"package": u.Package, "username": u.Name, "old_password": u.Password, "new_password": u.Password + "-new"}},
	} {
		status, body, took := call(t, rt, tc.route, tc.body)
		var out struct{ Error struct{ Code string } }
		_ = json.Unmarshal([]byte(body), &out)
		if status != http.StatusServiceUnavailable || out.Error.Code != "unavailable" {
			t.Errorf("%s during the brownout: %d %s, want 503 unavailable", tc.route, status, body)
		}
		if took > limit {
			t.Errorf("%s took %s during the brownout, want at most %s", tc.route, took, limit)
		}
		t.Logf("%s during the brownout: %d in %s", tc.route, status, took.Round(time.Millisecond))
	}

	// Nothing partial: read directly from moto, not through the proxy.
	after, err := e.RT.Users.Get(ctx, userkey.Key{Package: u.Package, Username: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version || after.Hash != before.Hash {
		t.Errorf("the password change was partly written: version %d -> %d", before.Version, after.Version)
	}
	sessionsAfter, err := e.RT.Sessions.ListByUser(ctx, u.Package, u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessionsAfter) != len(sessionsBefore) {
		t.Errorf("a session was written during the brownout: %d -> %d", len(sessionsBefore), len(sessionsAfter))
	}

	moto.Heal()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body, _ := login()
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login did not recover after the proxy healed: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call sends one API request through the runtime's routes, as API Gateway
// would, and times it.
func call(t *testing.T, rt *platform.Runtime, path string, body map[string]string) (int, string, time.Duration) {
	t.Helper()
	b, _ := json.Marshal(body)
	req := events.APIGatewayV2HTTPRequest{Body: string(b), Headers: map[string]string{"content-type": "application/json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: testenv.Unique("req"),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: path, SourceIP: "127.0.0.1"}}}
	a := rt.AuthHandlers()
	handle := a.Login
	if path == "/password" {
		handle = a.ChangePassword
	}
	start := time.Now()
	resp, err := handle(context.Background(), req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: handler error %v", path, err)
	}
	return resp.StatusCode, resp.Body, took
}
