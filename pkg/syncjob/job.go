// Package syncjob carries local changes into Keycloak: the versioned job
// schema, the SQS FIFO queue, and the Applier that the password flow (sync
// now) and the sync worker (sync later) share.
//
// A job never carries a plaintext password: set_password carries the
// Keycloak-compatible hash made by pkg/credential.
package syncjob

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
)

// SchemaVersion is the job format version; a worker refuses (dead-letters)
// jobs of a version it does not know instead of guessing.
const SchemaVersion = 1

// Type is what a job asks Keycloak to do.
type Type string

const (
	SetPassword   Type = "set_password"   // import the user's password hash
	ProvisionUser Type = "provision_user" // create the user (with hash) if missing
	UpdateUser    Type = "update_user"    // enabled flag, email, attributes
	LogoutUser    Type = "logout_user"    // end the user's Keycloak sessions
)

// Job is one change for Keycloak. Version is the local user version the job
// was made from: a job whose version Keycloak already has is superseded.
type Job struct {
	Schema    int              `json:"schema"`
	ID        string           `json:"id"`
	Type      Type             `json:"type"`
	Package   string           `json:"package"`
	Username  string           `json:"username"`
	Version   int64            `json:"version"`
	CreatedAt time.Time        `json:"created_at"`
	Hash      *credential.Hash `json:"hash,omitempty"`
	// EndSessions also logs the user out of Keycloak once Keycloak has the
	// user's current password (a password change ends every session,
	// Keycloak's too): when this job applies it, or finds it applied by an
	// earlier job and is the user's newest change.
	EndSessions bool `json:"end_sessions,omitempty"`
}

// New makes a job with a fresh id.
func New(t Type, pkg, username string, version int64, now time.Time) Job {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return Job{Schema: SchemaVersion, ID: hex.EncodeToString(b), Type: t, Package: pkg, Username: username,
		Version: version, CreatedAt: now.UTC()}
}

// ErrMalformed marks a job that can never be applied; it goes to the DLQ.
var ErrMalformed = errors.New("malformed sync job")

// Validate checks a job is complete and of a known schema and type.
func (j Job) Validate() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }
	switch {
	case j.Schema != SchemaVersion:
		return bad(fmt.Sprintf("schema %d, this worker knows %d", j.Schema, SchemaVersion))
	case j.ID == "":
		return bad("no id")
	case j.Package == "" || j.Username == "":
		return bad("no package or username")
	case j.Version < 1 && j.Type != LogoutUser:
		return bad("version must be positive")
	}
	switch j.Type {
	case SetPassword, ProvisionUser:
		if j.Hash == nil || j.Hash.IsZero() {
			return bad(string(j.Type) + " without a hash")
		}
	case UpdateUser, LogoutUser:
	default:
		return bad(fmt.Sprintf("unknown type %q", j.Type))
	}
	return nil
}

// Parse decodes and validates a queued job.
func Parse(body []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(body, &j); err != nil {
		return j, fmt.Errorf("%w: not JSON of a job: %v", ErrMalformed, err)
	}
	return j, j.Validate()
}

// GroupID keeps one user's jobs in order (SQS FIFO MessageGroupId, at most
// 128 characters: long keys are hashed).
func (j Job) GroupID() string { return fit(j.Package + "#" + j.Username) }

// DeduplicationID makes a resend of the same change a no-op in SQS's
// five-minute deduplication window.
// A logout is not a versioned change: each one is its own.
func (j Job) DeduplicationID() string {
	if j.Type == LogoutUser {
		return fit(fmt.Sprintf("%s#%s#%s#%s", j.Type, j.Package, j.Username, j.ID))
	}
	return fit(fmt.Sprintf("%s#%s#%s#%d", j.Type, j.Package, j.Username, j.Version))
}

func fit(s string) string {
	ok := len(s) <= 128
	for _, r := range s {
		if r < '!' || r > '~' { // SQS allows printable ASCII only
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
