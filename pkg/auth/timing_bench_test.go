package auth

import (
	"context"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/users"
)

// BenchmarkFailedCheck measures on the wall clock what a failed login costs
// with Keycloak's default hashes: an unknown user (argon2 dummy), a wrong
// password for an argon2 user and for a user imported with pbkdf2-sha512
// 210k. "unpadded" turns the padding's sleep off (the behaviour before).
//
//	go test -run '^$' -bench FailedCheck -benchtime 20x ./pkg/auth
func BenchmarkFailedCheck(b *testing.B) {
	for _, padded := range []bool{false, true} {
		name := "unpadded"
		if padded {
			name = "padded"
		}
		b.Run(name, func(b *testing.B) {
			hasher, err := credential.NewHasher(credential.Params{}) // argon2id, Keycloak's defaults
			if err != nil {
				b.Fatal(err)
			}
			pb, _ := credential.NewHasher(credential.Params{Algorithm: credential.PBKDF2SHA512})
			store := users.NewMemory()
			recorder := newMemRecorder(store)
			now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			for name, h := range map[string]*credential.Hasher{"argon2-user": hasher, "pbkdf2-user": pb} {
				hash, _ := h.Hash("the-right-password")
				if _, err := store.Create(context.Background(), users.User{Package: pkg, Username: name, Enabled: true,
					Hash: users.NewHash(hash)}, now); err != nil {
					b.Fatal(err)
				}
			}
			s := Settings{AllowOfflineMode: true, MaxFailures: 1 << 30, SourceMaxFailures: -1}
			if !padded {
				s.Sleep = func(context.Context, time.Duration) {}
			}
			svc, err := New(Deps{Users: store, Hasher: hasher, Tokens: &fakeTokens{}, Recorder: recorder,
				Sessions: &fakeSessions{}, Sync: &fakeSync{}, Packages: []string{pkg}}, s)
			if err != nil {
				b.Fatal(err)
			}
			fail := func(user string) {
				svc.Login(context.Background(), LoginInput{Package: pkg, Username: user, Password: "wrong-password"})
			}
			fail("pbkdf2-user") // the dearest verifier in use has been seen once
			for _, user := range []string{"unknown-user", "argon2-user", "pbkdf2-user"} {
				b.Run(user, func(b *testing.B) {
					for range b.N {
						fail(user)
					}
				})
			}
		})
	}
}
