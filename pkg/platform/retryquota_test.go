package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kcguard/kcguard/pkg/config"
)

// After an outage's worth of failed calls, a call still gets its retries:
// the SDK's default retry quota (500 tokens, 5 per retry) would have been
// empty after 50 such calls and failed the next transient error at once.
func TestBoundedRetriesSurviveAnOutage(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}`))
	}))
	defer srv.Close()
	bounds := config.AWS{AttemptTimeout: time.Second, CallBudget: 2 * time.Second, MaxAttempts: 3}
	cfg := Bounded(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}, bounds)
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.Retryer = retryWithoutBackoff(o.Retryer)
	})
	for i := range 80 {
		hits.Store(0)
		if _, err := db.ListTables(context.Background(), &dynamodb.ListTablesInput{}); err == nil {
			t.Fatal("a server that answers 500 made the call succeed")
		}
		if n := hits.Load(); n != int64(bounds.MaxAttempts) {
			t.Fatalf("call %d made %d attempts, want %d (max_attempts)", i+1, n, bounds.MaxAttempts)
		}
	}
}

// retryWithoutBackoff keeps the retryer's decisions and drops its sleeps.
func retryWithoutBackoff(r aws.Retryer) aws.Retryer { return noBackoff{r} }

type noBackoff struct{ aws.Retryer }

func (noBackoff) RetryDelay(int, error) (time.Duration, error) { return 0, nil }
