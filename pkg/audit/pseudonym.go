package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// PseudonymPrefix marks an audit username that is a keyed hash of what was
// typed, not a known user's name.
const PseudonymPrefix = "hmac-sha256:"

// Pseudonyms turns what a client typed into stable, keyed hashes, so the
// audit trail can group the attempts on one unknown username (or from one
// source) without ever storing the text itself: people type passwords into
// the username field.
type Pseudonyms struct{ key []byte }

// NewPseudonyms keys the hashes with key. An empty key takes a random one:
// nothing is stored in the clear, but pseudonyms then differ between
// processes, so deployments configure a key (audit.username_hmac_key).
func NewPseudonyms(key []byte) Pseudonyms {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return Pseudonyms{key: append([]byte(nil), key...)}
}

// Username is the pseudonym of an unknown username typed for pkg.
func (p Pseudonyms) Username(pkg, username string) string {
	return PseudonymPrefix + p.sum("username", pkg, username)
}

// Source is the id of a request source (client address) for counters.
func (p Pseudonyms) Source(addr string) string { return p.sum("source", addr)[:32] }

func (p Pseudonyms) sum(parts ...string) string {
	m := hmac.New(sha256.New, p.key)
	for _, s := range parts {
		m.Write([]byte(s))
		m.Write([]byte{0}) // unambiguous boundaries
	}
	return hex.EncodeToString(m.Sum(nil))
}
