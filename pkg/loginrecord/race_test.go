package loginrecord_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/loginrecord"
	"github.com/kcguard/kcguard/pkg/platform"
	"github.com/kcguard/kcguard/pkg/sessions"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/tokencache"
	"github.com/kcguard/kcguard/pkg/users"
)

// backend is one set of stores with its login record.
type backend struct {
	users    users.Store
	sessions sessions.Store
	recorder auth.Recorder
}

func memoryBackend(*testing.T) backend {
	m := memoryRecorder()
	return backend{users: m.Users, sessions: m.Sessions, recorder: m.Recorder.(auth.Recorder)}
}

func dynamoBackend(t *testing.T) backend {
	s := dynamoStores(t)
	return backend{users: s.users, sessions: s.sessions, recorder: s.recorder(s.db)}
}

// gate holds the first login at the login record: before it stores the session,
// or just after, until released.
type gate struct {
	auth.Recorder
	after   bool
	held    atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (g *gate) LoginSucceeded(ctx context.Context, s loginrecord.Success) (string, sessions.Record, error) {
	if g.held.Swap(true) {
		return g.Recorder.LoginSucceeded(ctx, s)
	}
	if g.after {
		tok, rec, err := g.Recorder.LoginSucceeded(ctx, s)
		close(g.reached)
		<-g.release
		return tok, rec, err
	}
	close(g.reached)
	<-g.release
	return g.Recorder.LoginSucceeded(ctx, s)
}

type noSync struct{}

func (noSync) Dispatch(context.Context, syncjob.Job) syncjob.Result { return syncjob.Queued }
func (noSync) Enqueue(context.Context, syncjob.Job) error           { return nil }

// TestSlowLoginRacingPasswordChange: a login whose password check passed
// is held at the login record while the password changes; whichever side of its
// session write the change lands, no session of the old password lives.
// Memory and DynamoDB (moto) alike.
func TestSlowLoginRacingPasswordChange(t *testing.T) {
	for name, newBackend := range map[string]func(*testing.T) backend{"memory": memoryBackend, "dynamo": dynamoBackend} {
		for _, c := range []struct {
			name          string
			after         bool // the change lands after the session is stored
			revokeOnStore bool // password.revoke_other_sessions
		}{
			{"change lands before the session write", false, true},
			{"change lands after the session write", true, true},
			// Without the revocation only the version check stands between
			// the old password and a session.
			{"change without revocation lands before the session write", false, false},
		} {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				raceLoginAndChange(t, newBackend(t), c.after, c.revokeOnStore)
			})
		}
	}
}

func raceLoginAndChange(t *testing.T, b backend, after, revoke bool) {
	ctx := context.Background()
	hasher, err := credential.NewHasher(credential.Params{Algorithm: credential.Argon2, Iterations: 1, Argon2MemoryKiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	const oldPW, newPW = "old-password-123", "new-password-456"
	h, _ := hasher.Hash(oldPW)
	if _, err := b.users.Create(ctx, users.User{Package: "homechoice", Username: "racer", Enabled: true, Hash: users.NewHash(h)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	g := &gate{Recorder: b.recorder, after: after, reached: make(chan struct{}), release: make(chan struct{})}
	svc, err := auth.New(auth.Deps{Users: b.users, Hasher: hasher, Tokens: platform.CachedTokens{Store: tokencache.NewMemory()},
		Recorder: g, Sessions: b.sessions, Sync: noSync{}, Packages: []string{"homechoice"}},
		auth.Settings{AllowOfflineMode: true, RevokeOtherSessions: revoke})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res auth.LoginResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := svc.Login(ctx, auth.LoginInput{Package: "homechoice", Username: "racer", Password: oldPW})
		done <- result{res, err}
	}()
	<-g.reached
	if _, err := svc.ChangePassword(ctx, auth.PasswordChangeInput{Package: "homechoice", Username: "racer",
		OldPassword: oldPW, NewPassword: newPW}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	r := <-done
	switch {
	case after && r.err != nil:
		t.Fatalf("login stored before the change: %v", r.err)
	case after:
		if _, err := b.sessions.GetByToken(ctx, r.res.SessionToken, time.Now()); !errors.Is(err, sessions.ErrRevoked) {
			t.Fatalf("session of the old password after the change: %v, want ErrRevoked", err)
		}
	case !errors.Is(r.err, auth.ErrLoginSuperseded):
		t.Fatalf("login overtaken by the change: %+v %v, want ErrLoginSuperseded", r.res, r.err)
	}
	live := 0
	list, err := b.sessions.ListByUser(ctx, "homechoice", "racer")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Active(time.Now()) {
			live++
		}
	}
	if live != 0 {
		t.Fatalf("%d live sessions of the old password", live)
	}
	// The new password logs in, to a live session.
	res, err := svc.Login(ctx, auth.LoginInput{Package: "homechoice", Username: "racer", Password: newPW})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.sessions.GetByToken(ctx, res.SessionToken, time.Now()); err != nil {
		t.Fatalf("session of the new password: %v", err)
	}
}

// TestCapThroughLogins: 12 logins of one user keep the newest 10 sessions
// (sessions.DefaultMaxPerUser), with the DynamoDB login record reading the
// session count in the login's one read (ReadLogin) or asking the store.
func TestCapThroughLogins(t *testing.T) {
	for _, c := range []struct {
		name   string
		new    func(*testing.T) backend
		reader bool
	}{
		{"memory", memoryBackend, false},
		{"dynamo", dynamoBackend, false},
		{"dynamo with ReadLogin", dynamoBackend, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			b := c.new(t)
			hasher, err := credential.NewHasher(credential.Params{Algorithm: credential.Argon2, Iterations: 1, Argon2MemoryKiB: 64})
			if err != nil {
				t.Fatal(err)
			}
			h, _ := hasher.Hash("cap-password-123")
			if _, err := b.users.Create(ctx, users.User{Package: "homechoice", Username: "capped", Enabled: true, Hash: users.NewHash(h)}, time.Now()); err != nil {
				t.Fatal(err)
			}
			deps := auth.Deps{Users: b.users, Hasher: hasher, Tokens: platform.CachedTokens{Store: tokencache.NewMemory()},
				Recorder: b.recorder, Sessions: b.sessions, Sync: noSync{}, Packages: []string{"homechoice"}}
			if c.reader {
				deps.Reads = b.recorder.(auth.LoginReader)
			}
			svc, err := auth.New(deps, auth.Settings{AllowOfflineMode: true})
			if err != nil {
				t.Fatal(err)
			}
			var toks []string
			for range sessions.DefaultMaxPerUser + 2 {
				res, err := svc.Login(ctx, auth.LoginInput{Package: "homechoice", Username: "capped", Password: "cap-password-123"})
				if err != nil {
					t.Fatal(err)
				}
				toks = append(toks, res.SessionToken)
			}
			for i, tok := range toks {
				_, err := b.sessions.GetByToken(ctx, tok, time.Now())
				if evicted := i < 2; evicted != errors.Is(err, sessions.ErrRevoked) || !evicted && err != nil {
					t.Errorf("session %d of %d: %v (evicted: %v)", i+1, len(toks), err, evicted)
				}
			}
		})
	}
}
