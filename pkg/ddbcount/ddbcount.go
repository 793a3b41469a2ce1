// Package ddbcount counts AWS SDK calls per operation, so tests can hold a
// flow to its DynamoDB round-trip budget (login must stay within three) and
// document what each store operation costs.
//
// It counts API calls, not HTTP attempts: the middleware runs in the
// Initialize step, before the retry loop, so a budget checks the design of a
// flow and does not flap when a busy endpoint makes the SDK retry.
package ddbcount

import (
	"context"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts SDK calls per operation name ("GetItem", "Query", ...).
// The zero value is not usable; call New. A Counter is safe for concurrent use.
type Counter struct {
	mu    sync.Mutex
	calls map[string]int
}

// New returns an empty counter.
func New() *Counter { return &Counter{calls: map[string]int{}} }

// Attach adds the counting middleware to every client built from cfg
// afterwards (clients already built keep their own copy of the options).
func (c *Counter) Attach(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, c.Register)
}

// Option returns a per-client option, for dynamodb.NewFromConfig(cfg, c.Option()).
func (c *Counter) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, c.Register) }
}

// Register adds the counting middleware to one operation's stack; append it
// to any SDK client's APIOptions (KMS, SQS, ...) to count that client.
func (c *Counter) Register(stack *middleware.Stack) error {
	// The stack's id is the operation name; it is set when the client builds
	// the stack, so it needs no lookup in the request context.
	op := stack.ID()
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ddbcount",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.mu.Lock()
			c.calls[op]++
			c.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

// Count returns how many times op was called.
func (c *Counter) Count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

// Total returns the number of calls of every operation.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// Snapshot returns a copy of the counts.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

// Reset forgets every count, so a test can measure one operation at a time.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.calls)
}

// String renders the counts as "GetItem=1 Query=2", sorted, for test messages.
func (c *Counter) String() string {
	snap := c.Snapshot()
	ops := make([]string, 0, len(snap))
	for op := range snap {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(op)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(snap[op]))
	}
	return b.String()
}
