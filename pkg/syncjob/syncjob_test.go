package syncjob

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/keycloak/keycloaktest"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

const pkg = "homechoice"

var (
	t0     = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	hasher *credential.Hasher
)

func init() {
	hasher, _ = credential.NewHasher(credential.Params{Iterations: 1, Argon2MemoryKiB: 64})
}

func stored(t *testing.T, pw string) (users.Hash, credential.Hash) {
	t.Helper()
	h, err := hasher.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return users.Hash{Algorithm: string(h.Algorithm), SecretData: h.SecretData(), CredentialData: h.CredentialData()}, h
}

// changeTo sets the local password and returns the job a password change makes.
func changeTo(t *testing.T, st *users.Memory, name, pw string) Job {
	t.Helper()
	ctx := context.Background()
	sh, ch := stored(t, pw)
	k := userkey.Key{Package: pkg, Username: name}
	u, err := st.Get(ctx, k)
	if errors.Is(err, users.ErrNotFound) {
		u, err = st.Create(ctx, users.User{Package: pkg, Username: name, Enabled: true, Hash: sh}, t0)
	} else if err == nil {
		u, err = st.UpdatePassword(ctx, k, u.Version, sh, t0)
	}
	if err != nil {
		t.Fatal(err)
	}
	j := New(SetPassword, pkg, name, u.Version, t0)
	j.Hash = &ch
	return j
}

func grantOK(kc *keycloaktest.Fake, name, pw string) bool {
	_, err := kc.PasswordGrant(context.Background(), pkg, name, pw)
	return err == nil
}

func TestApplyCreatesMissingUserWithHash(t *testing.T) {
	st, kc := users.NewMemory(), keycloaktest.New()
	a := &Applier{Keycloak: kc, Users: st}
	j := changeTo(t, st, "alice", "first-password-1")
	res, err := a.Apply(context.Background(), j)
	if err != nil || res != Applied {
		t.Fatalf("%s %v", res, err)
	}
	if !grantOK(kc, "alice", "first-password-1") {
		t.Fatal("Keycloak must accept the password whose hash was imported")
	}
	u, _ := st.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"})
	if u.KeycloakSyncedVersion != 1 || u.KeycloakID == "" {
		t.Fatalf("synced %d, id %q", u.KeycloakSyncedVersion, u.KeycloakID)
	}
}

func TestApplyCollapsesQueuedChanges(t *testing.T) {
	st, kc := users.NewMemory(), keycloaktest.New()
	a := &Applier{Keycloak: kc, Users: st}
	kc.AddUser(pkg, "alice", "keycloak-old-password")
	var jobs []Job
	for _, pw := range []string{"outage-password-1", "outage-password-2", "outage-password-3"} {
		jobs = append(jobs, changeTo(t, st, "alice", pw))
	}
	var results []string
	for _, j := range jobs {
		res, err := a.Apply(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, string(res))
	}
	if strings.Join(results, ",") != "applied,superseded,superseded" {
		t.Fatalf("results %v", results)
	}
	if n := kc.Calls(keycloaktest.ImportPasswordHash); n != 1 {
		t.Fatalf("three queued changes cost %d Keycloak writes, want 1", n)
	}
	if !grantOK(kc, "alice", "outage-password-3") || grantOK(kc, "alice", "outage-password-1") {
		t.Fatal("Keycloak must have the latest password only")
	}
	// A duplicate delivery of the applied job changes nothing.
	if res, _ := a.Apply(context.Background(), jobs[0]); res != Superseded || kc.Calls(keycloaktest.ImportPasswordHash) != 1 {
		t.Fatalf("duplicate: %s", res)
	}
}

func TestApplyErrors(t *testing.T) {
	st, kc := users.NewMemory(), keycloaktest.New()
	a := &Applier{Keycloak: kc, Users: st}
	j := changeTo(t, st, "alice", "first-password-1")
	kc.Fail(keycloaktest.All, keycloak.NewError("find user", pkg, keycloak.ErrUnavailable, 503, ""), 1)
	if _, err := a.Apply(context.Background(), j); !keycloak.IsOutage(err) {
		t.Fatalf("outage must surface for retry: %v", err)
	}
	u, _ := st.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"})
	if u.KeycloakSyncedVersion != 0 {
		t.Fatal("a failed apply must not mark the user synced")
	}
	bad := j
	bad.Type = "rename_user"
	if _, err := a.Apply(context.Background(), bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown type: %v", err)
	}
	gone := New(SetPassword, pkg, "nobody", 3, t0)
	gone.Hash = j.Hash
	if res, err := a.Apply(context.Background(), gone); res != Superseded || err != nil {
		t.Fatalf("a job for a user deleted locally is superseded: %s %v", res, err)
	}
}

func TestParseRejectsMalformedJobs(t *testing.T) {
	for _, body := range []string{
		`not json`,
		`{"schema":2,"id":"x","type":"set_password","package":"p","username":"u","version":1}`,
		`{"schema":1,"id":"x","type":"set_password","package":"p","username":"u","version":1}`,
		`{"schema":1,"id":"x","type":"logout_user","package":"p","username":"","version":1}`,
		`{"schema":1,"id":"x","type":"provision_user","package":"p","username":"u","version":0}`,
	} {
		if _, err := Parse([]byte(body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestIDsFitSQS(t *testing.T) {
	j := New(SetPassword, pkg, strings.Repeat("ü", 100), 7, t0)
	for _, id := range []string{j.GroupID(), j.DeduplicationID()} {
		if len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r < '!' || r > '~' }) {
			t.Fatalf("id %q does not fit SQS", id)
		}
	}
	a, b := New(SetPassword, pkg, "alice", 2, t0), New(SetPassword, pkg, "alice", 2, t0.Add(time.Hour))
	if a.DeduplicationID() != b.DeduplicationID() || a.ID == b.ID {
		t.Fatal("the same change must deduplicate; ids must differ")
	}
}

type fakeBreaker struct{ open bool }

func (b fakeBreaker) Allow(context.Context) (func(error), error) {
	if b.open {
		return nil, breaker.ErrOpen
	}
	return func(error) {}, nil
}

type memQueue struct {
	jobs []Job
	err  error
}

func (q *memQueue) Enqueue(_ context.Context, j Job) error {
	if q.err != nil {
		return q.err
	}
	q.jobs = append(q.jobs, j)
	return nil
}

func TestDispatch(t *testing.T) {
	cases := []struct {
		name     string
		open     bool
		kcDown   bool
		queueErr error
		want     Result
		queued   int
		kcCalls  bool
	}{
		{"breaker closed, keycloak up", false, false, nil, Applied, 0, true},
		{"breaker open", true, false, nil, Queued, 1, false},
		{"keycloak fails", false, true, nil, Queued, 1, true},
		{"queue down too", true, false, errors.New("sqs down"), Queued, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, kc := users.NewMemory(), keycloaktest.New()
			q := &memQueue{err: tc.queueErr}
			d := &Dispatcher{Applier: &Applier{Keycloak: kc, Users: st}, Queue: q, Breaker: fakeBreaker{open: tc.open}}
			j := changeTo(t, st, "alice", "first-password-1")
			if tc.kcDown {
				kc.Fail(keycloaktest.All, keycloak.NewError("find user", pkg, keycloak.ErrUnavailable, 0, ""), 10)
			}
			if got := d.Dispatch(context.Background(), j); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if len(q.jobs) != tc.queued {
				t.Fatalf("queued %d, want %d", len(q.jobs), tc.queued)
			}
			if called := kc.Calls(keycloaktest.FindUser) > 0; called != tc.kcCalls {
				t.Fatalf("keycloak called = %v", called)
			}
			u, _ := st.Get(context.Background(), userkey.Key{Package: pkg, Username: "alice"})
			if u.Unsynced() == (tc.want == Applied) {
				t.Fatalf("unsynced=%v after %s: reconciliation must see every change Keycloak lacks", u.Unsynced(), tc.want)
			}
		})
	}
}

func TestReconcileRequeuesWhatKeycloakLacks(t *testing.T) {
	st := users.NewMemory()
	changeTo(t, st, "alice", "alice-password-1")
	changeTo(t, st, "bob", "bob-password-1")
	synced := changeTo(t, st, "carol", "carol-password-1")
	st.MarkSynced(context.Background(), userkey.Key{Package: pkg, Username: "carol"}, synced.Version)
	q := &memQueue{}
	r, err := Reconcile(context.Background(), st, q, []string{pkg}, 0, t0)
	if err != nil || r.Found != 2 || r.Queued != 2 || !r.Done {
		t.Fatalf("%+v %v", r, err)
	}
	for _, j := range q.jobs {
		if j.Username == "carol" || j.Hash == nil || j.Validate() != nil {
			t.Fatalf("job %+v", j)
		}
	}
	if r, _ := Reconcile(context.Background(), st, &memQueue{}, []string{pkg}, 1, t0); r.Found != 1 || r.Done {
		t.Fatalf("a limited run stops and says so: %+v", r)
	}
}
