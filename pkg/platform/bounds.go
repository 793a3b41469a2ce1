package platform

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
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
