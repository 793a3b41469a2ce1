package tokencache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/ddbcount"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/tokencache/tokencachetest"
)

func localCipher(t *testing.T) *tokencache.Envelope {
	t.Helper()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	c, err := tokencache.NewLocalCipher(master)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMemory(t *testing.T) {
	tokencachetest.Run(t, func(*testing.T) tokencache.Store {
		return tokencache.NewMemory(tokencache.WithGracePeriod(tokencachetest.Grace))
	})
}

func TestDynamo(t *testing.T) {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	c := localCipher(t)
	tokencachetest.Run(t, func(t *testing.T) tokencache.Store {
		return tokencache.NewDynamo(db, testenv.Table(t, cfg, tokencache.Table("tokens")), c, tokencache.WithGracePeriod(tokencachetest.Grace))
	})
}

// newKMSKey creates a symmetric key in moto's KMS.
func newKMSKey(t *testing.T, client *kms.Client) string {
	t.Helper()
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{Description: strPtr(testenv.Unique("kcguard-tokencache-test"))})
	if err != nil {
		t.Fatalf("create kms key: %v", err)
	}
	return *out.KeyMetadata.KeyId
}

func strPtr(s string) *string { return &s }

// TestDynamoWithKMS runs the suite with real envelope encryption against
// moto's KMS and checks the table holds no token material.
func TestDynamoWithKMS(t *testing.T) {
	cfg := testenv.AWS(t)
	db := dynamodb.NewFromConfig(cfg)
	kmsCalls := ddbcount.New() // counts any SDK client's calls, KMS too
	kmsClient := kms.NewFromConfig(cfg, func(o *kms.Options) { o.APIOptions = append(o.APIOptions, kmsCalls.Register) })
	c := tokencache.NewKMSCipher(kmsClient, newKMSKey(t, kmsClient))
	kmsCalls.Reset()
	tokencachetest.Run(t, func(t *testing.T) tokencache.Store {
		return tokencache.NewDynamo(db, testenv.Table(t, cfg, tokencache.Table("tokens")), c, tokencache.WithGracePeriod(tokencachetest.Grace))
	})
	// The whole suite sealed and opened dozens of entries with one data key.
	if got := kmsCalls.Snapshot(); !maps.Equal(got, map[string]int{"GenerateDataKey": 1}) {
		t.Errorf("KMS calls %v, want one GenerateDataKey", got)
	}

	t.Run("NothingReadableInTable", func(t *testing.T) {
		table := testenv.Table(t, cfg, tokencache.Table("tokens"))
		s := tokencache.NewDynamo(db, table, c)
		now := time.Now()
		r := tokencache.Record{Package: "p", Username: "u", AccessToken: "ACCESS-SECRET-123", RefreshToken: "REFRESH-SECRET-456",
			TokenType: "Bearer", AccessExpiresAt: now.Add(5 * time.Minute), CachedAt: now}
		if err := s.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: &table})
		if err != nil || len(out.Items) != 1 {
			t.Fatalf("scan: %v", err)
		}
		raw := fmt.Sprintf("%+v", out.Items[0])
		for _, secret := range []string{"ACCESS-SECRET", "REFRESH-SECRET", "Bearer"} {
			if strings.Contains(raw, secret) {
				t.Errorf("table item shows %q", secret)
			}
		}
		// A process with the same KMS key (another Lambda) reads it back.
		other := tokencache.NewDynamo(db, table, tokencache.NewKMSCipher(kmsClient, "unused-for-reading"))
		got, err := other.Get(context.Background(), "p", "u", now)
		if err != nil || got.AccessToken != r.AccessToken || got.RefreshToken != r.RefreshToken {
			t.Errorf("read back by another process: %+v, %v", got, err)
		}
	})
}

// TestDynamoRoundTrips documents each operation's cost.
func TestDynamoRoundTrips(t *testing.T) {
	cfg := testenv.AWS(t)
	table := testenv.Table(t, cfg, tokencache.Table("tokens"))
	calls := ddbcount.New()
	s := tokencache.NewDynamo(dynamodb.NewFromConfig(cfg, calls.Option()), table, localCipher(t), tokencache.WithExpiryLookback(time.Hour))
	ctx := context.Background()
	now := time.Now()
	r := tokencache.Record{Package: "p", Username: "u", AccessToken: "a", AccessExpiresAt: now, CachedAt: now.Add(-25 * time.Hour)}
	cases := []struct {
		name string
		op   func() error
		want map[string]int
	}{
		{"Put", func() error { return s.Put(ctx, r) }, map[string]int{"PutItem": 1}},
		{"GetPastGrace", func() error { s.Get(ctx, "p", "u", now); return nil }, map[string]int{"GetItem": 1}},
		{"ListExpiring", func() error { _, err := s.ListExpiring(ctx, now, 10); return err }, map[string]int{"Query": 2}},
		{"DeleteExpired", func() error { _, err := s.DeleteExpired(ctx, now, 10); return err }, map[string]int{"Query": 2, "DeleteItem": 1}},
		{"Delete", func() error { return s.Delete(ctx, "p", "u") }, map[string]int{"DeleteItem": 1}},
	}
	for _, c := range cases {
		calls.Reset()
		if err := c.op(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := calls.Snapshot(); !maps.Equal(got, c.want) {
			t.Errorf("%s: calls %v, want %v", c.name, got, c.want)
		}
	}
}
