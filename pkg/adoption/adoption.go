// Package adoption loads the users of a Keycloak realm export (`kc.sh
// export`: one realm JSON with "users", or the multi-file layout's
// realm-users-N.json) into the local store WITH their password hashes, so
// a site that already runs Keycloak can put kcguard in front of it without
// asking anyone for a password.
//
// Imported users are Keycloak's own: they are marked synced (Keycloak
// already has them), keep their Keycloak id, enabled flag and required
// actions, and nothing is queued. Re-importing the same export changes
// nothing; an export with changes updates what changed. A hash Keycloak can
// verify but kcguard cannot (another algorithm, a custom provider) is
// reported for that user and never guessed; a malformed entry is reported
// and skipped, and the rest of the file still loads.
package adoption

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Store is the part of the local store an import writes.
type Store interface {
	Get(ctx context.Context, key userkey.Key) (users.User, error)
	Create(ctx context.Context, u users.User, now time.Time) (users.User, error)
	UpdatePassword(ctx context.Context, key userkey.Key, expectedVersion int64, h users.Hash, now time.Time) (users.User, error)
	UpdateProfile(ctx context.Context, key userkey.Key, expectedVersion int64, p users.Profile, now time.Time) (users.User, error)
	MarkSynced(ctx context.Context, key userkey.Key, version int64) (bool, error)
	ApplyVerdict(ctx context.Context, key userkey.Key, expectedVersion int64, v users.Verdict) (users.User, error)
}

// Outcome of one user entry.
type Outcome string

// Outcomes. Malformed and UnsupportedHash are the skipped ones.
const (
	Created         Outcome = "created"
	Updated         Outcome = "updated"
	Unchanged       Outcome = "unchanged"
	KeptLocal       Outcome = "kept_local_change" // a kcguard change Keycloak has not got yet wins
	NoPassword      Outcome = "no_password"       // not loaded; learnt at the user's next Keycloak login
	ServiceAccount  Outcome = "service_account"   // not a person; never loaded
	UnsupportedHash Outcome = "unsupported_hash"
	Malformed       Outcome = "malformed"
)

// Skipped reports whether the outcome means a user the export holds was
// not loaded for a reason an operator must look at.
func (o Outcome) Skipped() bool { return o == UnsupportedHash || o == Malformed }

// Entry is what happened to one user entry (Index counts from 0 in its file).
type Entry struct {
	Index    int     `json:"index"`
	Username string  `json:"username,omitempty"`
	Outcome  Outcome `json:"outcome"`
	Detail   string  `json:"detail,omitempty"`
}

// Report sums an import.
type Report struct {
	Realm   string          `json:"realm,omitempty"`
	Total   int             `json:"total"`
	Counts  map[Outcome]int `json:"counts"`
	Entries []Entry         `json:"problems,omitempty"` // every entry that was not created, updated or unchanged
}

// Skipped counts the entries an operator must look at.
func (r Report) Skipped() int { return r.Counts[Malformed] + r.Counts[UnsupportedHash] }

// Export is a parsed export file: the realm name and its raw user entries,
// each decoded on its own so one bad entry costs only itself.
type Export struct {
	Realm string            `json:"realm"`
	Users []json.RawMessage `json:"users"`
}

// ReadExport parses an export file. Only a file that is not JSON at all is
// an error.
func ReadExport(r io.Reader) (Export, error) {
	var e Export
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		return Export{}, fmt.Errorf("not a Keycloak realm export: %w", err)
	}
	return e, nil
}

// PlainUser is an export's user with a plaintext password credential, as
// the local stack's realm files set them (real exports carry hashes).
type PlainUser struct{ Username, Email, Password string }

// PlainPasswords lists the users that have a plaintext password, one entry
// per such credential; service accounts and malformed entries are left out.
func (e Export) PlainPasswords() []PlainUser {
	var out []PlainUser
	for _, raw := range e.Users {
		var u exportUser
		if json.Unmarshal(raw, &u) != nil || u.ServiceAccountID != "" {
			continue
		}
		for _, c := range u.Credentials {
			if c.Type == "password" && c.Value != "" {
				out = append(out, PlainUser{Username: u.Username, Email: u.Email, Password: c.Value})
			}
		}
	}
	return out
}

type exportUser struct {
	ID               string   `json:"id"`
	Username         string   `json:"username"`
	Email            string   `json:"email"`
	Enabled          *bool    `json:"enabled"`
	RequiredActions  []string `json:"requiredActions"`
	ServiceAccountID string   `json:"serviceAccountClientId"`
	Credentials      []struct {
		Type           string `json:"type"`
		SecretData     string `json:"secretData"`
		Value          string `json:"value"` // plaintext (a realm file written by hand)
		CredentialData string `json:"credentialData"`
		CreatedDate    int64  `json:"createdDate"`
		Priority       int    `json:"priority"`
	} `json:"credentials"`
}

// Importer loads export entries into one package.
type Importer struct {
	Store   Store
	Package string
	Now     func() time.Time
	// Progress, if set, is called after every entry.
	Progress func(done, total int, e Entry)
}

// Import loads every entry of exp. The error is for the store failing
// (the import stops; re-running it continues where it was, since loaded
// users come out unchanged); bad entries are in the report.
func (im *Importer) Import(ctx context.Context, exp Export) (Report, error) {
	rep := Report{Realm: exp.Realm, Total: len(exp.Users), Counts: map[Outcome]int{}}
	for i, raw := range exp.Users {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		e, err := im.one(ctx, raw)
		e.Index = i
		if err != nil {
			return rep, fmt.Errorf("import %s/%s: %w", im.Package, e.Username, err)
		}
		rep.Counts[e.Outcome]++
		if e.Outcome != Created && e.Outcome != Updated && e.Outcome != Unchanged {
			rep.Entries = append(rep.Entries, e)
		}
		if im.Progress != nil {
			im.Progress(i+1, len(exp.Users), e)
		}
	}
	return rep, nil
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func (im *Importer) one(ctx context.Context, raw json.RawMessage) (Entry, error) {
	var u exportUser
	if err := json.Unmarshal(raw, &u); err != nil {
		return Entry{Outcome: Malformed, Detail: "not a user representation: " + err.Error()}, nil
	}
	e := Entry{Username: u.Username}
	if u.ServiceAccountID != "" {
		e.Outcome = ServiceAccount
		return e, nil
	}
	key, err := userkey.New(im.Package, u.Username)
	if err != nil {
		e.Outcome, e.Detail = Malformed, "bad or missing username"
		return e, nil
	}
	e.Username = key.Username
	hash, created, outcome, detail := passwordOf(u)
	if outcome != "" {
		e.Outcome, e.Detail = outcome, detail
		return e, nil
	}
	now := im.now()
	enabled := u.Enabled == nil || *u.Enabled // Keycloak's default
	want := users.User{Package: im.Package, Username: key.Username, Email: u.Email, Enabled: enabled,
		Hash: hash, KeycloakID: u.ID, RequiredActions: u.RequiredActions, KeycloakConfirmedAt: now,
		Version: 1, KeycloakSyncedVersion: 1, PasswordChangedAt: created}
	cur, err := im.Store.Get(ctx, key)
	if errors.Is(err, users.ErrNotFound) {
		if _, err := im.Store.Create(ctx, want, now); err != nil {
			return e, err
		}
		e.Outcome = Created
		return e, nil
	}
	if err != nil {
		return e, err
	}
	e.Outcome, err = im.update(ctx, cur, want, now)
	return e, err
}

// passwordOf picks the user's password credential and checks kcguard can
// verify it. A non-empty outcome means the user is not loaded.
func passwordOf(u exportUser) (users.Hash, time.Time, Outcome, string) {
	for _, c := range u.Credentials {
		if c.Type != "password" {
			continue
		}
		var cd struct {
			Algorithm string `json:"algorithm"`
		}
		if err := json.Unmarshal([]byte(c.CredentialData), &cd); err != nil || cd.Algorithm == "" {
			return users.Hash{}, time.Time{}, Malformed, "password credentialData is not Keycloak's JSON"
		}
		if !credential.Supported(credential.Algorithm(cd.Algorithm)) {
			return users.Hash{}, time.Time{}, UnsupportedHash,
				fmt.Sprintf("algorithm %q: Keycloak can verify it, kcguard cannot; the user is learnt at the next Keycloak login", cd.Algorithm)
		}
		h, err := credential.ParseHash(c.SecretData, c.CredentialData)
		if err != nil {
			return users.Hash{}, time.Time{}, Malformed, err.Error()
		}
		var created time.Time
		if c.CreatedDate > 0 {
			created = time.UnixMilli(c.CreatedDate).UTC()
		}
		return users.Hash{Algorithm: string(h.Algorithm), SecretData: c.SecretData, CredentialData: c.CredentialData}, created, "", ""
	}
	return users.Hash{}, time.Time{}, NoPassword, "no password credential in the export"
}

// update brings an existing local user to the export's state. A pending
// kcguard change (version ahead of Keycloak) keeps its hash: it is the one
// fact the local store is authoritative for.
func (im *Importer) update(ctx context.Context, cur, want users.User, now time.Time) (Outcome, error) {
	key := cur.Key()
	pending := cur.Unsynced()
	changed := false
	if !pending && cur.Hash != want.Hash {
		u, err := im.Store.UpdatePassword(ctx, key, cur.Version, want.Hash, now)
		if err != nil {
			return "", err
		}
		cur, changed = u, true
	}
	if !pending && cur.Email != want.Email {
		u, err := im.Store.UpdateProfile(ctx, key, cur.Version, users.Profile{Email: want.Email, Attributes: cur.Attributes, Enabled: cur.Enabled}, now)
		if err != nil {
			return "", err
		}
		cur, changed = u, true
	}
	if changed {
		// The new version is what Keycloak already holds: nothing to sync.
		if _, err := im.Store.MarkSynced(ctx, key, cur.Version); err != nil {
			return "", err
		}
	}
	stale := cur.HashStale && cur.Hash != want.Hash
	idChanged := want.KeycloakID != "" && cur.KeycloakID != want.KeycloakID
	if changed || idChanged || cur.Enabled != want.Enabled || cur.HashStale != stale || !slices.Equal(cur.RequiredActions, want.RequiredActions) {
		actions := want.RequiredActions
		if actions == nil {
			actions = []string{} // none in the export: clear the stored list
		}
		if _, err := im.Store.ApplyVerdict(ctx, key, cur.Version, users.Verdict{Enabled: &want.Enabled, HashStale: &stale,
			RequiredActions: actions, ConfirmedAt: now, KeycloakID: want.KeycloakID}); err != nil {
			return "", err
		}
		changed = true
	}
	switch {
	case pending && cur.Hash != want.Hash:
		return KeptLocal, nil
	case changed:
		return Updated, nil
	default:
		return Unchanged, nil
	}
}
