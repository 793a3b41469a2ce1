package credential

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"

	"golang.org/x/crypto/argon2"
)

// Keycloak 26 defaults (Argon2Parameters, Pbkdf2Sha512PasswordHashProviderFactory).
// They equal the OWASP Password Storage Cheat Sheet minimums, so matching
// Keycloak also means Keycloak will not re-hash an imported password on the
// next login (its policyCheck compares parameters for equality).
const (
	DefaultArgon2Iterations  = 5
	DefaultArgon2MemoryKiB   = 7168
	DefaultArgon2Parallelism = 1
	DefaultArgon2HashLength  = 32
	DefaultPBKDF2Iterations  = 210_000 // pbkdf2-sha512
	pbkdf2SHA256Iterations   = 600_000
	pbkdf2KeyLength          = 64 // Keycloak's DEFAULT_DERIVED_KEY_SIZE, 512 bits
	saltLength               = 16 // Keycloak's Salt.generateSalt
)

// Params selects the algorithm and cost of new hashes. The zero value means
// Keycloak 26's non-FIPS default: argon2id, version 1.3, m=7168 KiB, t=5,
// p=1, 32-byte hash. Zero fields take their algorithm's default.
type Params struct {
	// Algorithm is Argon2 (default) or PBKDF2SHA512. Use PBKDF2SHA512 when the
	// Keycloak servers run in FIPS mode, where the argon2 provider is absent.
	Algorithm Algorithm
	// Iterations is argon2's pass count t (default 5) or PBKDF2's iteration
	// count (default 210000 for pbkdf2-sha512).
	Iterations int
	// Argon2MemoryKiB is argon2's memory m in KiB (default 7168).
	Argon2MemoryKiB uint32
	// Argon2Parallelism is argon2's lanes p (default 1).
	Argon2Parallelism uint8
	// Argon2HashLength is the derived key length in bytes (default 32).
	Argon2HashLength uint32
}

func (p Params) withDefaults() Params {
	if p.Algorithm == "" {
		p.Algorithm = Argon2
	}
	switch p.Algorithm {
	case Argon2:
		if p.Iterations == 0 {
			p.Iterations = DefaultArgon2Iterations
		}
		if p.Argon2MemoryKiB == 0 {
			p.Argon2MemoryKiB = DefaultArgon2MemoryKiB
		}
		if p.Argon2Parallelism == 0 {
			p.Argon2Parallelism = DefaultArgon2Parallelism
		}
		if p.Argon2HashLength == 0 {
			p.Argon2HashLength = DefaultArgon2HashLength
		}
	case PBKDF2SHA512:
		if p.Iterations == 0 {
			p.Iterations = DefaultPBKDF2Iterations
		}
	case PBKDF2SHA256:
		if p.Iterations == 0 {
			p.Iterations = pbkdf2SHA256Iterations
		}
	}
	return p
}

// Hasher makes and checks password hashes with one configured cost. It is
// safe for concurrent use.
type Hasher struct {
	params Params
	dummy  Hash
}

// NewHasher returns a Hasher for p (zero fields take defaults, see Params).
// It checks p and makes the dummy hash VerifyDummy checks against, without
// hashing anything; construct it once at init, not per request.
func NewHasher(p Params) (*Hasher, error) {
	p = p.withDefaults()
	h := &Hasher{params: p}
	// The dummy is a random key under a random salt at the configured cost:
	// checking a password against it costs one derivation, as against any
	// stored hash, and nothing can match it. It is made without deriving,
	// so a cold start does not pay an argon2 run (~20 ms) for it.
	dummy, err := h.shape(randomBytes(saltLength))
	if err != nil {
		return nil, fmt.Errorf("credential: hasher params: %w", err)
	}
	dummy.Value = randomBytes(len(dummy.Value))
	h.dummy = dummy
	return h, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// Params returns the effective parameters, defaults filled in.
func (h *Hasher) Params() Params { return h.params }

// Hash derives a new hash of password with a fresh random salt.
func (h *Hasher) Hash(password string) (Hash, error) {
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return Hash{}, fmt.Errorf("credential: salt: %w", err)
	}
	return h.hashWithSalt(password, salt)
}

func (h *Hasher) hashWithSalt(password string, salt []byte) (Hash, error) {
	out, err := h.shape(salt)
	if err != nil {
		return Hash{}, err
	}
	v, err := derive(out, password)
	if err != nil {
		return Hash{}, err
	}
	out.Value = v
	return out, nil
}

// shape is a hash with the Hasher's parameters and salt, checked, whose
// Value is still zeros of the right length.
func (h *Hasher) shape(salt []byte) (Hash, error) {
	p := h.params
	out := Hash{Algorithm: p.Algorithm, Iterations: p.Iterations, Salt: salt}
	if p.Algorithm == Argon2 {
		out.Argon2Type, out.Argon2Version = "id", "1.3"
		out.Argon2MemoryKiB, out.Argon2Parallelism = p.Argon2MemoryKiB, p.Argon2Parallelism
		// validate before deriving: argon2 panics on parallelism 0.
		out.Value = make([]byte, p.Argon2HashLength)
	} else {
		out.Value = make([]byte, pbkdf2KeyLength)
	}
	if err := out.validate(); err != nil {
		return Hash{}, err
	}
	return out, nil
}

// derive computes the key for password with the parameters (and the key
// length) of h. Passwords go in as their UTF-8 bytes, which is what Java's
// PBKDF2WithHmacSHA* and BouncyCastle's Argon2 do with a char[]; Keycloak
// does not normalise Unicode, so neither do we. Keycloak's PBKDF2 padding of
// short passwords with NULs (max-padding-length) is 0 by default in 26.x and
// is deliberately not reproduced.
func derive(h Hash, password string) ([]byte, error) {
	switch h.Algorithm {
	case Argon2:
		n := uint32(len(h.Value))
		if h.Argon2Type == "i" {
			return argon2.Key([]byte(password), h.Salt, uint32(h.Iterations), h.Argon2MemoryKiB, h.Argon2Parallelism, n), nil
		}
		return argon2.IDKey([]byte(password), h.Salt, uint32(h.Iterations), h.Argon2MemoryKiB, h.Argon2Parallelism, n), nil
	case PBKDF2SHA512, PBKDF2SHA256:
		var fn func() hash.Hash = sha512.New
		if h.Algorithm == PBKDF2SHA256 {
			fn = sha256.New
		}
		return pbkdf2.Key(fn, password, h.Salt, h.Iterations, len(h.Value))
	}
	return nil, fmt.Errorf("%w: algorithm %q", ErrMalformedHash, h.Algorithm)
}

// Verify reports whether password matches stored. The comparison is
// constant-time; a malformed stored hash is an error, never a match.
func (h *Hasher) Verify(stored Hash, password string) (bool, error) {
	return Verify(stored, password)
}

// Verify reports whether password matches stored, whatever parameters
// stored was made with (within sane bounds).
func Verify(stored Hash, password string) (bool, error) {
	if err := stored.validate(); err != nil {
		return false, err
	}
	got, err := derive(stored, password)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, stored.Value) == 1, nil
}

// VerifyDummy spends the same time as Verify against a hash of the current
// cost and always returns false. Call it when the username is unknown so the
// response time does not reveal which usernames exist.
func (h *Hasher) VerifyDummy(password string) bool {
	_, _ = Verify(h.dummy, password)
	return false
}

// NeedsRehash reports whether stored was made with other parameters than
// the Hasher's, so the caller should re-hash after a successful login.
// Like Keycloak's policyCheck it tests equality, not "weaker than": a hash
// far costlier than configured also slows every login, and keeping one cost
// fleet-wide keeps the dummy-hash timing honest.
func (h *Hasher) NeedsRehash(stored Hash) bool {
	p := h.params
	if stored.Algorithm != p.Algorithm || stored.Iterations != p.Iterations {
		return true
	}
	switch p.Algorithm {
	case Argon2:
		return stored.Argon2Type != "id" || stored.Argon2Version != "1.3" ||
			stored.Argon2MemoryKiB != p.Argon2MemoryKiB ||
			stored.Argon2Parallelism != p.Argon2Parallelism ||
			uint32(len(stored.Value)) != p.Argon2HashLength
	default:
		return len(stored.Value) != pbkdf2KeyLength
	}
}
