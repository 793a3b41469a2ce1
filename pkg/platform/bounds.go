package platform

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/kcguard/kcguard/pkg/config"
)

const callBudgetID = "kcguardCallBudget"

// Bounded returns the SDK configuration with the aws section's bounds:
// every attempt of every call (DynamoDB, SQS, KMS, SNS, Secrets Manager,
// Lambda) ends within AttemptTimeout, and every call with its retries
// within CallBudget. Without them a store that accepts connections and
// never answers held a /login for over 60 s; with them the request fails
// after at most CallBudget with an error that wraps
// context.DeadlineExceeded, which the handlers answer as 503 unavailable.
func Bounded(c aws.Config, b config.AWS) aws.Config {
	c = c.Copy()
	c.HTTPClient = awshttp.NewBuildableClient().
		WithTimeout(b.AttemptTimeout).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(b.AttemptTimeout, 2*time.Second) }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = b.AttemptTimeout })
	if b.MaxAttempts > 0 {
		c.RetryMaxAttempts = b.MaxAttempts
	}
	// No client-side retry quota: the SDK's default token bucket is drained
	// by the retries of an outage and refills one token per clean call, so
	// for a while after the store is back every transient error (a 500, a
	// throttle) failed at once as "retry quota exceeded" and the request
	// answered 503 (the chaos run's moto cut showed it). Retries stay
	// bounded by max_attempts and the call budget.
	c.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
	}
	budget := b.CallBudget
	c.APIOptions = append(append([]func(*middleware.Stack) error(nil), c.APIOptions...), func(st *middleware.Stack) error {
		if _, ok := st.Initialize.Get(callBudgetID); ok {
			return nil // a configuration bounded twice keeps its first budget
		}
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc(callBudgetID,
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if budget <= 0 {
					return next.HandleInitialize(ctx, in)
				}
				ctx, cancel := context.WithTimeout(ctx, budget)
				defer cancel()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
	return c
}

// ReceiveOptions are the per-call options of the sync poller's
// ReceiveMessage. A receive is not on a request path, and one the client
// abandons is worse than a slow one: SQS may still deliver into it, so
// the message counts a receive toward maxReceiveCount and stays invisible
// for the visibility timeout with nobody working on it. When moto (or
// SQS) answered slower than aws.attempt_timeout, the SDK's retries of the
// timed-out receive dead-lettered healthy jobs ("received 4 times",
// RELIABILITY.md finding 6). So a receive gets one attempt, with the wait
// plus 30 s to answer, outside the call budget.
func ReceiveOptions(waitSeconds int32) func(*sqs.Options) {
	limit := time.Duration(waitSeconds)*time.Second + 30*time.Second
	client := awshttp.NewBuildableClient().WithTimeout(limit).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = limit })
	return func(o *sqs.Options) {
		o.HTTPClient = client
		o.RetryMaxAttempts = 1
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			if _, ok := st.Initialize.Get(callBudgetID); ok {
				_, err := st.Initialize.Remove(callBudgetID)
				return err
			}
			return nil
		})
	}
}
