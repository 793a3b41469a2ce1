package tokencache

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// ErrDecrypt means a sealed value could not be opened: wrong key, wrong
// context (an item moved to another user) or tampering.
var ErrDecrypt = errors.New("tokencache: cannot decrypt")

// Sealed is an encrypted value as it is stored: the ciphertext and the data
// key that opens it, itself encrypted under KeyID.
type Sealed struct {
	KeyID        string
	EncryptedKey []byte
	Ciphertext   []byte // GCM nonce || sealed data
}

// Cipher encrypts values bound to additional data (aad), which must be
// presented again to open them.
type Cipher interface {
	Seal(ctx context.Context, plaintext, aad []byte) (Sealed, error)
	Open(ctx context.Context, s Sealed, aad []byte) ([]byte, error)
}

// KeySource makes and unwraps 256-bit data keys: KMS in production, a local
// master key in unit tests.
type KeySource interface {
	GenerateDataKey(ctx context.Context) (plaintext, encrypted []byte, keyID string, err error)
	DecryptDataKey(ctx context.Context, encrypted []byte, keyID string) ([]byte, error)
}

// Defaults for the envelope cipher.
const (
	// DefaultDataKeyLifetime bounds how long one plaintext data key stays in
	// memory and in use; a warm Lambda asks KMS for a new one this often.
	DefaultDataKeyLifetime = time.Hour
	// maxKeyUses keeps random 96-bit GCM nonces far below their collision
	// bound (NIST: 2^32 messages per key).
	maxKeyUses = 1 << 24
	// maxOpenedKeys bounds the cache of unwrapped data keys.
	maxOpenedKeys = 1024
)

// Envelope is a Cipher doing envelope encryption: AES-256-GCM under a data
// key from a KeySource, the encrypted data key stored beside the data.
// It asks the source for a data key once per lifetime, not once per value,
// and remembers unwrapped keys, so a warm Lambda adds no KMS call to login.
type Envelope struct {
	src      KeySource
	lifetime time.Duration
	now      func() time.Time

	mu      sync.Mutex
	current *dataKey
	opened  map[string]*dataKey // by keyID + encrypted key
}

type dataKey struct {
	aead      cipher.AEAD
	keyID     string
	encrypted []byte
	expires   time.Time
	uses      int
}

// EnvelopeOption configures an Envelope.
type EnvelopeOption func(*Envelope)

// WithDataKeyLifetime sets how long a data key is used and cached
// (default DefaultDataKeyLifetime).
func WithDataKeyLifetime(d time.Duration) EnvelopeOption {
	return func(e *Envelope) {
		if d > 0 {
			e.lifetime = d
		}
	}
}

// WithCipherClock sets the clock data key lifetimes are measured with.
func WithCipherClock(now func() time.Time) EnvelopeOption { return func(e *Envelope) { e.now = now } }

// NewEnvelope returns an envelope cipher over src.
func NewEnvelope(src KeySource, opts ...EnvelopeOption) *Envelope {
	e := &Envelope{src: src, lifetime: DefaultDataKeyLifetime, now: time.Now, opened: map[string]*dataKey{}}
	for _, o := range opts {
		o(e)
	}
	return e
}

var _ Cipher = (*Envelope)(nil)

func newDataKey(plain []byte, keyID string, encrypted []byte, expires time.Time) (*dataKey, error) {
	if len(plain) != 32 {
		return nil, fmt.Errorf("tokencache: data key is %d bytes, want 32", len(plain))
	}
	block, err := aes.NewCipher(plain)
	if err != nil {
		return nil, err
	}
	clear(plain)
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &dataKey{aead: aead, keyID: keyID, encrypted: bytes.Clone(encrypted), expires: expires}, nil
}

// fullAAD binds the ciphertext to the data key that encrypts it as well as
// the caller's context; fields are length-prefixed so no two different
// triples encode alike.
func fullAAD(keyID string, encrypted, aad []byte) []byte {
	var b []byte
	for _, part := range [][]byte{[]byte(keyID), encrypted, aad} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
		b = append(b, part...)
	}
	return b
}

func (e *Envelope) sealingKey(ctx context.Context) (*dataKey, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if k := e.current; k != nil && now.Before(k.expires) && k.uses < maxKeyUses {
		k.uses++
		return k, nil
	}
	plain, enc, keyID, err := e.src.GenerateDataKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	k, err := newDataKey(plain, keyID, enc, now.Add(e.lifetime))
	if err != nil {
		return nil, err
	}
	k.uses = 1
	e.current = k
	return k, nil
}

// Warm fetches the data key the next Seal will use, if none is current, so
// a cold start can ask KMS in the background instead of during its first
// login. A Seal that comes while Warm waits for KMS shares its key.
func (e *Envelope) Warm(ctx context.Context) error {
	_, err := e.sealingKey(ctx)
	return err
}

// Seal encrypts plaintext under the current data key.
func (e *Envelope) Seal(ctx context.Context, plaintext, aad []byte) (Sealed, error) {
	k, err := e.sealingKey(ctx)
	if err != nil {
		return Sealed{}, err
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, err
	}
	ct := k.aead.Seal(nonce, nonce, plaintext, fullAAD(k.keyID, k.encrypted, aad))
	return Sealed{KeyID: k.keyID, EncryptedKey: bytes.Clone(k.encrypted), Ciphertext: ct}, nil
}

func (e *Envelope) openingKey(ctx context.Context, s Sealed) (*dataKey, error) {
	cacheKey := s.KeyID + "\x00" + string(s.EncryptedKey)
	e.mu.Lock()
	if k := e.current; k != nil && k.keyID == s.KeyID && bytes.Equal(k.encrypted, s.EncryptedKey) {
		e.mu.Unlock()
		return k, nil
	}
	k, ok := e.opened[cacheKey]
	e.mu.Unlock()
	now := e.now()
	if ok && now.Before(k.expires) {
		return k, nil
	}
	plain, err := e.src.DecryptDataKey(ctx, s.EncryptedKey, s.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: data key: %v", ErrDecrypt, err)
	}
	k, err = newDataKey(plain, s.KeyID, s.EncryptedKey, now.Add(e.lifetime))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	e.mu.Lock()
	if len(e.opened) >= maxOpenedKeys {
		clear(e.opened) // crude, but bounded; a refill costs one Decrypt per key
	}
	e.opened[cacheKey] = k
	e.mu.Unlock()
	return k, nil
}

// Open decrypts s; any mismatch of key, context or bytes is ErrDecrypt.
func (e *Envelope) Open(ctx context.Context, s Sealed, aad []byte) ([]byte, error) {
	k, err := e.openingKey(ctx, s)
	if err != nil {
		return nil, err
	}
	ns := k.aead.NonceSize()
	if len(s.Ciphertext) < ns {
		return nil, fmt.Errorf("%w: short ciphertext", ErrDecrypt)
	}
	pt, err := k.aead.Open(nil, s.Ciphertext[:ns], s.Ciphertext[ns:], fullAAD(s.KeyID, s.EncryptedKey, aad))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return pt, nil
}

// KMS is the part of *kms.Client the KMS key source uses.
type KMS interface {
	GenerateDataKey(context.Context, *kms.GenerateDataKeyInput, ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// kmsContext is the KMS encryption context of every data key: CloudTrail
// shows what a key was for, and a data key made for something else will
// not decrypt here.
var kmsContext = map[string]string{"purpose": "kcguard-tokencache"}

// KMSKeySource makes data keys with a KMS key.
type KMSKeySource struct {
	Client KMS
	KeyID  string // key id, ARN or alias
}

// NewKMSCipher returns an envelope cipher whose data keys come from the KMS
// key keyID.
func NewKMSCipher(client KMS, keyID string, opts ...EnvelopeOption) *Envelope {
	return NewEnvelope(KMSKeySource{Client: client, KeyID: keyID}, opts...)
}

func (s KMSKeySource) GenerateDataKey(ctx context.Context) ([]byte, []byte, string, error) {
	out, err := s.Client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId: aws.String(s.KeyID), KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("kms generate data key: %w", err)
	}
	// KeyId in the answer is the key's ARN, stable even when s.KeyID is an alias.
	return out.Plaintext, out.CiphertextBlob, aws.ToString(out.KeyId), nil
}

func (s KMSKeySource) DecryptDataKey(ctx context.Context, encrypted []byte, keyID string) ([]byte, error) {
	out, err := s.Client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob: encrypted, KeyId: aws.String(keyID), EncryptionContext: kmsContext,
	})
	if err != nil {
		return nil, fmt.Errorf("kms decrypt data key: %w", err)
	}
	return out.Plaintext, nil
}

// LocalKeySource wraps data keys with a master key held in memory. It is
// for unit tests and `kcguard serve` without KMS; production uses KMS.
type LocalKeySource struct {
	aead  cipher.AEAD
	keyID string
}

// NewLocalCipher returns an envelope cipher whose data keys are wrapped by
// the 32-byte masterKey.
func NewLocalCipher(masterKey []byte, opts ...EnvelopeOption) (*Envelope, error) {
	src, err := NewLocalKeySource("local", masterKey)
	if err != nil {
		return nil, err
	}
	return NewEnvelope(src, opts...), nil
}

// NewLocalKeySource returns a key source named keyID over masterKey.
func NewLocalKeySource(keyID string, masterKey []byte) (*LocalKeySource, error) {
	if len(masterKey) != 32 {
		return nil, fmt.Errorf("tokencache: master key is %d bytes, want 32", len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &LocalKeySource{aead: aead, keyID: keyID}, nil
}

func (s *LocalKeySource) GenerateDataKey(context.Context) ([]byte, []byte, string, error) {
	plain := make([]byte, 32)
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(plain); err != nil {
		return nil, nil, "", err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, "", err
	}
	enc := s.aead.Seal(nonce, nonce, plain, []byte(s.keyID))
	return plain, enc, s.keyID, nil
}

func (s *LocalKeySource) DecryptDataKey(_ context.Context, encrypted []byte, keyID string) ([]byte, error) {
	ns := s.aead.NonceSize()
	if keyID != s.keyID || len(encrypted) < ns {
		return nil, errors.New("not this key source's data key")
	}
	return s.aead.Open(nil, encrypted[:ns], encrypted[ns:], []byte(keyID))
}
