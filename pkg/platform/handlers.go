package platform

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kcguard/kcguard/pkg/alerts"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/httpapi"
	"github.com/kcguard/kcguard/pkg/schema"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// FromEnvironment builds the Runtime the way a Lambda function starts:
// configuration from $KCGUARD_CONFIG (optional) and KCGUARD_* variables,
// JSON logs on stderr.
func FromEnvironment(ctx context.Context) (*Runtime, error) {
	cfg, err := config.Load(os.Getenv("KCGUARD_CONFIG"))
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, Logger(os.Stderr, cfg.Log))
}

// AuthHandlers are the login and password routes.
func (rt *Runtime) AuthHandlers() *httpapi.AuthHandlers {
	return &httpapi.AuthHandlers{Service: rt.Auth, MaxBodyBytes: rt.Config.API.MaxBodyBytes, Log: rt.Log}
}

// SessionHandlers are the session routes and their admin counterparts.
func (rt *Runtime) SessionHandlers() *httpapi.SessionHandlers {
	return &httpapi.SessionHandlers{Store: rt.Sessions, Keycloak: rt.Dispatcher,
		Reports: rt.SessionReporter(), Packages: rt.Config.PackageNames(),
		Guard: rt.AdminGuard(), Log: rt.Log}
}

// AdminGuard admits operators: api.admin_principals in AWS, api.admin_key
// locally.
func (rt *Runtime) AdminGuard() httpapi.AdminGuard {
	return httpapi.AdminGuard{Key: rt.Config.API.AdminKey, Principals: rt.Config.API.AdminPrincipals}
}

// Authorizer is the API Gateway Lambda authorizer for downstream APIs. It
// only reads (its IAM role can do nothing else: infra/functions.go), so it
// does not slide idle expiry.
func (rt *Runtime) Authorizer() *httpapi.Authorizer {
	return &httpapi.Authorizer{Store: rt.Sessions, Log: rt.Log,
		DenyDegraded: httpapi.NewDegradedRoutes(rt.Config.Authorizer.DenyDegradedRoutes)}
}

// SessionRoutes are served by functions/sessions.
func (rt *Runtime) SessionRoutes() []httpapi.Route { return SessionRoutes(rt.SessionHandlers()) }

// Routes is the whole HTTP API, as API Gateway routes it to the functions.
func (rt *Runtime) Routes() []httpapi.Route {
	return slices.Concat(AuthRoutes(rt.AuthHandlers()), rt.SessionRoutes(), rt.StatusRoutes())
}

// AuthRoutes bind the login and password handlers to their routes.
func AuthRoutes(a *httpapi.AuthHandlers) []httpapi.Route {
	return []httpapi.Route{route(schema.Login, a.Login), route(schema.ChangePassword, a.ChangePassword)}
}

// SessionRoutes bind the session handlers to their routes.
func SessionRoutes(s *httpapi.SessionHandlers) []httpapi.Route {
	return []httpapi.Route{
		route(schema.ListSessions, s.List),
		route(schema.DeleteSession, s.Delete),
		route(schema.Logout, s.Logout),
		route(schema.LogoutAll, s.LogoutAll),
		route(schema.AdminListSessions, s.AdminList),
		route(schema.AdminDeleteSession, s.AdminDelete),
		route(schema.AdminLogoutUser, s.AdminLogoutUser),
		route(schema.AdminMetrics, s.AdminMetrics),
	}
}

// StatusRoutes bind the operators' handlers to their routes.
func StatusRoutes(s *httpapi.StatusHandlers) []httpapi.Route {
	return []httpapi.Route{
		route(schema.Status, s.Status),
		route(schema.Dashboard, s.Dashboard),
		route(schema.DashboardStatus, s.Status),
		route(schema.DashboardLoginForm, s.DashboardLoginForm),
		route(schema.DashboardLogin, s.DashboardLogin),
		route(schema.DashboardLogout, s.DashboardLogout),
		route(schema.Report, s.Report),
	}
}

func route(r schema.Route, h httpapi.Handler) httpapi.Route {
	return httpapi.Route{Method: r.Method, Path: r.Path, Handler: h}
}

// The handlers of the functions under functions/, for Start (cleanup's
// and pull's are CleanupHandler and PullHandler).

// LoginFunction serves POST /login, each answer counted by outcome as an
// EMF metric on stdout; the instance is warmed before its first login.
func (rt *Runtime) LoginFunction() httpapi.Handler {
	rt.WarmLogin()
	return CountLogins(rt.AuthHandlers().Login, os.Stdout)
}

// PasswordFunction serves POST /password.
func (rt *Runtime) PasswordFunction() httpapi.Handler { return rt.AuthHandlers().ChangePassword }

// SessionsFunction serves the session routes by the route key API Gateway
// matched.
func (rt *Runtime) SessionsFunction() httpapi.Handler { return httpapi.ByRouteKey(rt.SessionRoutes()) }

// AuthorizerFunction is the Lambda authorizer of downstream APIs.
func (rt *Runtime) AuthorizerFunction() func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	return rt.Authorizer().Handle
}

// SyncWorkerFunction consumes the sync queue (partial batch failures).
func (rt *Runtime) SyncWorkerFunction() func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return rt.Worker().HandleBatch
}

// Start is a Lambda function's main: build the Runtime once per instance
// (cold start), then serve the handler wire picks from it. The handler's
// type is checked when the function is compiled, not when Lambda first
// calls it. A function that cannot start exits with the reason, which
// Lambda reports as an init error.
func Start[In, Out any, H Handler[In, Out]](name string, wire func(*Runtime) H) {
	rt, err := FromEnvironment(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "kcguard %s: start-up failed: %v\n", name, err)
		os.Exit(1)
	}
	lambda.StartHandlerFunc(flushingAlerts(rt.Alerts, (func(context.Context, In) (Out, error))(wire(rt))))
}

// AlertFlush bounds how long an invocation that raised a breaker alert
// holds its answer for the alert's publish.
const AlertFlush = 2 * time.Second

// flushingAlerts wraps a Lambda handler: Lambda freezes the instance once
// the handler returns, and the alert publisher works in the background, so
// an alert raised by this invocation (this instance won a breaker
// transition) is given up to AlertFlush to reach SNS before the answer
// goes. Transitions are rare; other invocations never wait, not even while
// an earlier alert is still being retried.
func flushingAlerts[In, Out any](pub *alerts.Publisher, h func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	if pub == nil {
		return h
	}
	return func(ctx context.Context, in In) (Out, error) {
		before := pub.Raised()
		out, err := h(ctx, in)
		if pub.Raised() != before {
			pub.WaitFor(AlertFlush)
		}
		return out, err
	}
}

// Handler is a function Lambda can call: an event in, an answer or an
// error out (lambda.HandlerFunc, named types such as httpapi.Handler too).
type Handler[In, Out any] interface {
	~func(context.Context, In) (Out, error)
}

// Worker applies queued sync jobs (functions/syncworker, `kcguard sync`).
// A record received while the breaker is open goes back until the next
// probe instead of failing into the visibility timeout.
func (rt *Runtime) Worker() *syncjob.Worker {
	return &syncjob.Worker{Applier: rt.Applier, Breaker: rt.Breaker, DLQ: rt.DLQ, Journal: rt.JobJournal, Log: rt.Log,
		Defer: rt.Queue, NextProbe: rt.nextProbe,
		// Forced open (no probe time): no longer than a plain failure would wait.
		DeferFallback: min(rt.Config.Keycloak.Resilience.Cooldown(), time.Duration(rt.Config.Sync.VisibilityTimeoutSeconds)*time.Second),
		// Outage-class failures back off from the visibility timeout, and a
		// record's last allowed receive re-sends it: the DLQ holds only poison.
		RetryBase: time.Duration(rt.Config.Sync.VisibilityTimeoutSeconds) * time.Second, MaxReceives: rt.Config.Sync.MaxReceiveCount,
		Resend: rt.Queue}
}

// LongPoll is the receive wait that fits in one AWS call attempt
// (aws.attempt_timeout), one second to spare. A long poll that outlives
// the attempt is abandoned by the client while SQS may still deliver into
// it: the message counts a receive toward maxReceiveCount and stays
// invisible for the visibility timeout with nobody working on it. With the
// SDK retrying the timed-out receive, `kcguard sync run` dead-lettered
// healthy jobs this way ("received 4 times" and never failed: finding 6 of
// RELIABILITY.md).
func LongPoll(waitSeconds int32, attemptTimeout time.Duration) int32 {
	if attemptTimeout <= 0 {
		return waitSeconds
	}
	return max(0, min(waitSeconds, int32((attemptTimeout-time.Second)/time.Second)))
}

// nextProbe is when a record refused by the breaker may be tried again: the
// open breaker's next probe; while the fleet's breaker is still closed (this
// instance saw a failure and lets one trial call through at a time) as soon
// as the instance re-reads the fleet's verdict.
func (rt *Runtime) nextProbe(ctx context.Context) time.Time {
	st := rt.Breaker.State(ctx)
	if st.State == breaker.StateClosed {
		return time.Now().Add(max(time.Second, rt.Config.Keycloak.Resilience.StateCacheTTL()))
	}
	return st.NextProbe
}

// Poller feeds the Worker from the queue, as Lambda's event source does.
// Its Run pauses while the breaker is open, probes Keycloak when a probe is
// due, and is woken when this process closes the breaker.
func (rt *Runtime) Poller(waitSeconds int32) *syncjob.Poller {
	wait := LongPoll(waitSeconds, rt.Config.AWS.AttemptTimeout)
	p := &syncjob.Poller{Queue: rt.Queue, Worker: rt.Worker(), WaitSeconds: wait,
		ReceiveOptions: []func(*sqs.Options){ReceiveOptions(wait)},
		Breaker:        rt.Breaker, Ping: rt.Keycloak.Ping, Log: rt.Log}
	rt.poller = p
	return p
}
