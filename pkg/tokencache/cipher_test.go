package tokencache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/tokencache"
)

// countingSource counts data key operations of a local key source.
type countingSource struct {
	tokencache.KeySource
	mu                 sync.Mutex
	generated, decrypt int
}

func (c *countingSource) GenerateDataKey(ctx context.Context) ([]byte, []byte, string, error) {
	c.mu.Lock()
	c.generated++
	c.mu.Unlock()
	return c.KeySource.GenerateDataKey(ctx)
}

func (c *countingSource) DecryptDataKey(ctx context.Context, enc []byte, keyID string) ([]byte, error) {
	c.mu.Lock()
	c.decrypt++
	c.mu.Unlock()
	return c.KeySource.DecryptDataKey(ctx, enc, keyID)
}

func newSource(t *testing.T) *countingSource {
	t.Helper()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	src, err := tokencache.NewLocalKeySource("local-test", master)
	if err != nil {
		t.Fatal(err)
	}
	return &countingSource{KeySource: src}
}

func TestEnvelopeRoundTripAndTamper(t *testing.T) {
	ctx := context.Background()
	e := tokencache.NewEnvelope(newSource(t))
	secret := []byte("refresh-token-value")
	s, err := e.Seal(ctx, secret, []byte("homechoice#alice"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Ciphertext, secret) || bytes.Contains(s.EncryptedKey, secret) {
		t.Fatal("plaintext visible in sealed value")
	}
	got, err := e.Open(ctx, s, []byte("homechoice#alice"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q, %v", got, err)
	}

	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	other, _ := e.Seal(ctx, []byte("x"), nil)
	otherKey := tokencache.NewEnvelope(newSource(t))
	foreign, _ := otherKey.Seal(ctx, secret, []byte("homechoice#alice"))
	cases := []struct {
		name string
		s    tokencache.Sealed
		aad  string
	}{
		{"other user's context", s, "homechoice#mallory"},
		{"flipped ciphertext", tokencache.Sealed{KeyID: s.KeyID, EncryptedKey: s.EncryptedKey, Ciphertext: flip(s.Ciphertext)}, "homechoice#alice"},
		{"flipped data key", tokencache.Sealed{KeyID: s.KeyID, EncryptedKey: flip(s.EncryptedKey), Ciphertext: s.Ciphertext}, "homechoice#alice"},
		{"other key id", tokencache.Sealed{KeyID: "else", EncryptedKey: s.EncryptedKey, Ciphertext: s.Ciphertext}, "homechoice#alice"},
		{"short ciphertext", tokencache.Sealed{KeyID: s.KeyID, EncryptedKey: s.EncryptedKey, Ciphertext: []byte{1}}, "homechoice#alice"},
		{"another master key", foreign, "homechoice#alice"},
		{"other value's nonce", tokencache.Sealed{KeyID: s.KeyID, EncryptedKey: s.EncryptedKey, Ciphertext: append(bytes.Clone(other.Ciphertext[:12]), s.Ciphertext[12:]...)}, "homechoice#alice"},
	}
	for _, c := range cases {
		if _, err := e.Open(ctx, c.s, []byte(c.aad)); !errors.Is(err, tokencache.ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", c.name, err)
		}
	}
}

func TestEnvelopeCachesDataKeys(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	e := tokencache.NewEnvelope(src, tokencache.WithDataKeyLifetime(time.Hour), tokencache.WithCipherClock(func() time.Time { return now }))
	var sealed []tokencache.Sealed
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.Seal(ctx, []byte("t"), nil)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			sealed = append(sealed, s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if src.generated != 1 {
		t.Errorf("50 seals asked for %d data keys, want 1", src.generated)
	}
	// A fresh process (cold Lambda) unwraps the key once, then reuses it.
	cold := tokencache.NewEnvelope(src)
	for _, s := range sealed {
		if _, err := cold.Open(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if src.decrypt != 1 {
		t.Errorf("50 opens unwrapped %d data keys, want 1", src.decrypt)
	}
	now = now.Add(time.Hour)
	if _, err := e.Seal(ctx, []byte("t"), nil); err != nil {
		t.Fatal(err)
	}
	if src.generated != 2 {
		t.Errorf("after the lifetime: %d data keys, want 2", src.generated)
	}
	// Values sealed under the old key still open.
	if _, err := e.Open(ctx, sealed[0], nil); err != nil {
		t.Errorf("old value after rotation: %v", err)
	}
}

func TestLocalCipherRejectsShortKey(t *testing.T) {
	if _, err := tokencache.NewLocalCipher(make([]byte, 16)); err == nil {
		t.Error("16-byte master key accepted")
	}
}

func TestEnvelopeWarmFetchesTheKeySealUses(t *testing.T) {
	ctx := context.Background()
	src := newSource(t)
	e := tokencache.NewEnvelope(src)
	if err := e.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := e.Seal(ctx, []byte("token"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if src.generated != 1 {
		t.Fatalf("warm, warm, seal asked for %d data keys, want 1", src.generated)
	}
	if pt, err := e.Open(ctx, s, []byte("aad")); err != nil || string(pt) != "token" {
		t.Fatalf("%q %v", pt, err)
	}
}
