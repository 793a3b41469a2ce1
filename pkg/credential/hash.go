// Package credential hashes and checks local passwords in exactly the format
// Keycloak stores them, so that a password changed while Keycloak is down can
// later be imported into Keycloak as a hash through the Admin REST API. The
// plaintext never leaves the request that carried it.
//
// Keycloak keeps a password credential as two JSON documents, and so does
// kcguard:
//
//	secretData:     {"value":"<base64 hash>","salt":"<base64 salt>","additionalParameters":{}}
//	credentialData: {"hashIterations":N,"algorithm":"<provider id>","additionalParameters":{...}}
//
// The provider ids and parameter names are Keycloak 26's (checked against the
// 26.7.3 jars): "pbkdf2-sha512" / "pbkdf2-sha256" (PBKDF2WithHmacSHA*, 512-bit
// key, no additional parameters) and "argon2" (BouncyCastle Argon2 with
// additionalParameters type, version, hashLength, memory, parallelism, each a
// one-element list of strings). Salts are 16 random bytes, as Keycloak's
// Salt.generateSalt makes them; every value is standard padded base64.
package credential

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// Algorithm is a Keycloak password hash provider id.
type Algorithm string

// Provider ids as Keycloak names them in credentialData.algorithm.
const (
	// Argon2 is Keycloak's default on non-FIPS servers since Keycloak 24.
	Argon2 Algorithm = "argon2"
	// PBKDF2SHA512 is Keycloak's default in FIPS mode and before Keycloak 24.
	PBKDF2SHA512 Algorithm = "pbkdf2-sha512"
	// PBKDF2SHA256 is only verified, for hashes migrated from older realms.
	PBKDF2SHA256 Algorithm = "pbkdf2-sha256"
)

// Supported reports whether kcguard can verify hashes of algorithm a (the
// parameters are checked by ParseHash). Keycloak may hold others: custom
// providers, or hashes imported from older systems.
func Supported(a Algorithm) bool {
	return a == Argon2 || a == PBKDF2SHA512 || a == PBKDF2SHA256
}

// Argon2 parameter names in credentialData.additionalParameters, as in
// Keycloak's Argon2PasswordHashProviderFactory.
const (
	paramType        = "type"
	paramVersion     = "version"
	paramHashLength  = "hashLength"
	paramMemory      = "memory"
	paramParallelism = "parallelism"
)

// ErrMalformedHash means stored hash data cannot be parsed or names
// parameters kcguard cannot compute (for example argon2d or version 1.0).
var ErrMalformedHash = errors.New("credential: malformed or unsupported hash")

// Hash is one hashed password in Keycloak's credential format. It holds no
// plaintext. It is what kcguard stores in DynamoDB and puts into sync jobs;
// its JSON form is {"secretData":"...","credentialData":"..."}, the two
// strings Keycloak's CredentialRepresentation carries.
//
// String and LogValue print only the algorithm and cost, never the hash or
// salt: a leaked hash can still be attacked offline.
type Hash struct {
	Algorithm  Algorithm
	Iterations int    // credentialData.hashIterations (argon2: passes t)
	Salt       []byte // secretData.salt
	Value      []byte // secretData.value, the derived key

	// Argon2 only (zero for PBKDF2).
	Argon2Type        string // "id" or "i"
	Argon2Version     string // "1.3"
	Argon2MemoryKiB   uint32
	Argon2Parallelism uint8
}

// secretData and credentialData mirror Keycloak's PasswordSecretData and
// PasswordCredentialData. additionalParameters is a MultivaluedHashMap in
// Java, hence the list values; Keycloak accepts {} but not null for it.
type secretData struct {
	Value                string              `json:"value"`
	Salt                 string              `json:"salt"`
	AdditionalParameters map[string][]string `json:"additionalParameters"`
}

type credentialData struct {
	HashIterations       int                 `json:"hashIterations"`
	Algorithm            string              `json:"algorithm"`
	AdditionalParameters map[string][]string `json:"additionalParameters"`
}

// SecretData returns the secretData JSON Keycloak expects for this hash.
func (h Hash) SecretData() string {
	b, _ := json.Marshal(secretData{
		Value:                base64.StdEncoding.EncodeToString(h.Value),
		Salt:                 base64.StdEncoding.EncodeToString(h.Salt),
		AdditionalParameters: map[string][]string{},
	})
	return string(b)
}

// CredentialData returns the credentialData JSON Keycloak expects for this hash.
func (h Hash) CredentialData() string {
	params := map[string][]string{}
	if h.Algorithm == Argon2 {
		params[paramType] = []string{h.Argon2Type}
		params[paramVersion] = []string{h.Argon2Version}
		params[paramHashLength] = []string{strconv.Itoa(len(h.Value))}
		params[paramMemory] = []string{strconv.FormatUint(uint64(h.Argon2MemoryKiB), 10)}
		params[paramParallelism] = []string{strconv.Itoa(int(h.Argon2Parallelism))}
	}
	b, _ := json.Marshal(credentialData{
		HashIterations:       h.Iterations,
		Algorithm:            string(h.Algorithm),
		AdditionalParameters: params,
	})
	return string(b)
}

// ParseHash reads a hash from Keycloak's secretData and credentialData JSON
// and checks that kcguard can verify it.
func ParseHash(secret, cred string) (Hash, error) {
	var s secretData
	if err := json.Unmarshal([]byte(secret), &s); err != nil {
		return Hash{}, fmt.Errorf("%w: secretData: %v", ErrMalformedHash, err)
	}
	var c credentialData
	if err := json.Unmarshal([]byte(cred), &c); err != nil {
		return Hash{}, fmt.Errorf("%w: credentialData: %v", ErrMalformedHash, err)
	}
	value, err := decodeB64(s.Value)
	if err != nil {
		return Hash{}, fmt.Errorf("%w: value: %v", ErrMalformedHash, err)
	}
	salt, err := decodeB64(s.Salt)
	if err != nil {
		return Hash{}, fmt.Errorf("%w: salt: %v", ErrMalformedHash, err)
	}
	h := Hash{Algorithm: Algorithm(c.Algorithm), Iterations: c.HashIterations, Salt: salt, Value: value}
	if h.Algorithm == Argon2 {
		first := func(k string) string {
			if v := c.AdditionalParameters[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		h.Argon2Type = first(paramType)
		h.Argon2Version = first(paramVersion)
		mem, err1 := strconv.ParseUint(first(paramMemory), 10, 32)
		par, err2 := strconv.ParseUint(first(paramParallelism), 10, 8)
		hl, err3 := strconv.Atoi(first(paramHashLength))
		if err := errors.Join(err1, err2, err3); err != nil {
			return Hash{}, fmt.Errorf("%w: argon2 parameters: %v", ErrMalformedHash, err)
		}
		if hl != len(value) {
			return Hash{}, fmt.Errorf("%w: hashLength %d but value has %d bytes", ErrMalformedHash, hl, len(value))
		}
		h.Argon2MemoryKiB, h.Argon2Parallelism = uint32(mem), uint8(par)
	}
	if err := h.validate(); err != nil {
		return Hash{}, err
	}
	return h, nil
}

// Keycloak decodes with a lenient decoder; accept unpadded input too so a
// hash exported by another tool still parses.
func decodeB64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Upper bounds on stored parameters: a tampered or corrupt item must not make
// one login burn gigabytes of memory or minutes of CPU.
const (
	maxArgon2MemoryKiB = 1 << 20 // 1 GiB
	maxArgon2Passes    = 100     // Keycloak itself ignores iterations > 100 for argon2
	maxPBKDF2Iter      = 10_000_000
)

func (h Hash) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	if len(h.Value) == 0 || len(h.Salt) == 0 {
		return bad("empty value or salt")
	}
	switch h.Algorithm {
	case PBKDF2SHA512, PBKDF2SHA256:
		if h.Iterations < 1 || h.Iterations > maxPBKDF2Iter {
			return bad("pbkdf2 iterations %d out of range", h.Iterations)
		}
	case Argon2:
		if h.Argon2Type != "id" && h.Argon2Type != "i" {
			return bad("argon2 type %q unsupported", h.Argon2Type)
		}
		if h.Argon2Version != "1.3" {
			return bad("argon2 version %q unsupported", h.Argon2Version)
		}
		if h.Iterations < 1 || h.Iterations > maxArgon2Passes {
			return bad("argon2 iterations %d out of range", h.Iterations)
		}
		if h.Argon2MemoryKiB < 8*uint32(max(h.Argon2Parallelism, 1)) || h.Argon2MemoryKiB > maxArgon2MemoryKiB {
			return bad("argon2 memory %d KiB out of range", h.Argon2MemoryKiB)
		}
		if h.Argon2Parallelism < 1 {
			return bad("argon2 parallelism must be at least 1")
		}
	default: // !Supported(h.Algorithm)
		return bad("algorithm %q unsupported", h.Algorithm)
	}
	return nil
}

// IsZero reports whether h is the zero Hash (no password set).
func (h Hash) IsZero() bool { return h.Algorithm == "" && len(h.Value) == 0 }

// String describes the algorithm and cost only.
func (h Hash) String() string {
	if h.Algorithm == Argon2 {
		return fmt.Sprintf("argon2%s-%s(m=%d,t=%d,p=%d)", h.Argon2Type, h.Argon2Version,
			h.Argon2MemoryKiB, h.Iterations, h.Argon2Parallelism)
	}
	return fmt.Sprintf("%s(i=%d)", h.Algorithm, h.Iterations)
}

// GoString keeps %#v from printing the hash bytes.
func (h Hash) GoString() string { return "credential.Hash{" + h.String() + "}" }

// LogValue keeps slog from printing the hash bytes.
func (h Hash) LogValue() slog.Value { return slog.StringValue(h.String()) }

// wireHash is the stored form: the two Keycloak JSON documents as strings,
// exactly what a CredentialRepresentation carries.
type wireHash struct {
	SecretData     string `json:"secretData"`
	CredentialData string `json:"credentialData"`
}

// MarshalJSON encodes h as {"secretData":"...","credentialData":"..."}.
func (h Hash) MarshalJSON() ([]byte, error) {
	if h.IsZero() {
		return []byte("null"), nil
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(wireHash{SecretData: h.SecretData(), CredentialData: h.CredentialData()})
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (h *Hash) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = Hash{}
		return nil
	}
	var w wireHash
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	parsed, err := ParseHash(w.SecretData, w.CredentialData)
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}
