package syncjob_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/syncjob/syncjobtest"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Issue 11, finding 2: an older sync whose import lands after a newer sync
// finished must not leave Keycloak older than the version marked synced.
// The older sync (for v2) is held at its import; meanwhile the user changes
// to v3 and a newer sync runs to completion; then the held import lands.
// Direct syncs, queued jobs, retries and redrives all go through
// Applier.Sync, so the newer sync is either v3's own job or a redelivery of
// the v2 job (which applies the current state, v3).
func TestSyncOrderingSlowOlderImport(t *testing.T) {
	for _, newer := range []string{"v3 job (direct sync)", "redelivered v2 job"} {
		t.Run(newer, func(t *testing.T) {
			ctx := context.Background()
			st, kc := users.NewMemory(), keycloaktest.New()
			gate := syncjobtest.Gate(kc)
			a := &syncjob.Applier{Keycloak: gate, Users: st}
			if _, err := a.Apply(ctx, change(t, st, "password-one-1")); err != nil {
				t.Fatal(err)
			}
			j2 := change(t, st, "password-two-2")
			arrived := gate.Hold(*j2.Hash)
			older := make(chan error, 1)
			go func() { _, err := a.Sync(ctx, j2); older <- err }()
			<-arrived
			j3 := change(t, st, "password-three-3")
			second := j3
			if newer == "redelivered v2 job" {
				second = j2
			}
			if rep, err := a.Sync(ctx, second); err != nil || rep.Version != 3 {
				t.Fatalf("newer sync: %+v %v", rep, err)
			}
			gate.Release()
			if err := <-older; err != nil {
				t.Fatal(err)
			}
			u, _ := st.Get(ctx, key)
			if u.KeycloakSyncedVersion != 3 {
				t.Fatalf("synced version %d, want 3", u.KeycloakSyncedVersion)
			}
			if !grant(kc, "password-three-3") || grant(kc, "password-two-2") {
				t.Fatalf("Keycloak must hold the newest password; %d imports landed", len(gate.Imported()))
			}
			// The held v2 import did land after v3 (the interleaving
			// happened), and was followed by a re-import of v3.
			if n := len(gate.Imported()); n != 3 {
				t.Fatalf("%d imports, want v3, the late v2, then v3 again", n)
			}
		})
	}
}

var key = userkey.Key{Package: "homechoice", Username: "alice"}

var testHasher, _ = credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})

// change sets alice's local password to pw (creating her) and returns the
// job the password flow makes for it.
func change(t *testing.T, st *users.Memory, pw string) syncjob.Job {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	h, err := testHasher.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	sh := users.Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}
	u, err := st.Get(ctx, key)
	if err == nil {
		u, err = st.UpdatePassword(ctx, key, u.Version, sh, now)
	} else {
		u, err = st.Create(ctx, users.User{Package: key.Package, Username: key.Username, Enabled: true, Hash: sh}, now)
	}
	if err != nil {
		t.Fatal(err)
	}
	j := syncjob.New(syncjob.SetPassword, key.Package, key.Username, u.Version, now)
	j.Hash = &h
	return j
}

func grant(kc *keycloaktest.Fake, pw string) bool {
	_, err := kc.PasswordGrant(context.Background(), key.Package, key.Username, pw)
	return err == nil
}

func jsonOf(j syncjob.Job) (string, error) {
	b, err := json.Marshal(j)
	return string(b), err
}
