package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kcguard/kcguard/internal/stacktest"
)

// op is one kind of request in the mix.
type op string

const (
	opLogin  op = "login"          // the user's current password
	opWrong  op = "wrong password" // always refused locally, never reaches Keycloak
	opChange op = "password change"
	opList   op = "session list"
	opLogout op = "logout"
)

// sample is one request's outcome as the client saw it.
type sample struct {
	Op       op
	User     int
	Name     string
	Start    time.Time
	Took     time.Duration
	Status   int    // 0: no HTTP answer (transport error or client timeout)
	Code     string // error code of a 4xx/5xx answer
	AuthMode string // login: keycloak, cached, local
	KCStatus string // login: available, unavailable, circuit_open
	Sync     string // password change: applied, queued
}

// simUser is one simulated person: their passwords in the order they set
// them, and a session when they hold one. Only its own goroutine touches it.
type simUser struct {
	stacktest.User
	// History is every password the user set, oldest first; the last one
	// is current unless Pending says a change's fate is unknown.
	History []string
	// Pending is a new password whose change got no clear answer (a 503 or
	// no answer while moto was down): the next login finds out which holds.
	Pending string
	Token   string
	N       int // index in the run
	// client connects from the user's own loopback address (127.1.x.y),
	// as people come from their own addresses: kcguard's per-address
	// throttle must see 200 people, not one address failing for all.
	client  *http.Client
	Changes int // password changes answered 200 (or found in effect)
	// Unclear counts changes answered 503 or not at all that were found in
	// effect at the next login.
	Unclear int
	// Wrongs counts wrong passwords since the last good login, kept below
	// lockout.max_failures: the mix must not lock its own users out.
	Wrongs int
}

func (u *simUser) current() string { return u.History[len(u.History)-1] }

// loadGen drives the mix against the fleet until its context ends.
type loadGen struct {
	urls  []string
	think time.Duration

	mu      sync.Mutex
	samples []sample
}

func newLoadGen(urls []string, think time.Duration) *loadGen {
	return &loadGen{urls: urls, think: think}
}

// clientFrom is an HTTP client whose connections come from 127.1.x.y for
// user n. API Gateway gives up at 30s: a request without an answer by
// then is recorded as status 0.
func clientFrom(n int) *http.Client {
	src := &net.TCPAddr{IP: net.IPv4(127, 1, byte(n/250), byte(n%250+1))}
	d := &net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func (g *loadGen) record(s sample) {
	g.mu.Lock()
	g.samples = append(g.samples, s)
	g.mu.Unlock()
}

// Samples returns everything recorded so far.
func (g *loadGen) Samples() []sample {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]sample(nil), g.samples...)
}

// do sends one request to a random instance of the fleet.
func (g *loadGen) do(ctx context.Context, o op, u *simUser, method, path, bearer string, body any) (sample, map[string]any) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, g.urls[mrand.IntN(len(g.urls))]+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	s := sample{Op: o, User: u.N, Name: u.Name, Start: time.Now()}
	if u.client == nil {
		u.client = clientFrom(u.N)
	}
	resp, err := u.client.Do(req)
	s.Took = time.Since(s.Start)
	if err != nil {
		return s, nil
	}
	defer resp.Body.Close()
	s.Status = resp.StatusCode
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if e, ok := out["error"].(map[string]any); ok {
		s.Code, _ = e["code"].(string)
	}
	s.AuthMode, _ = out["auth_mode"].(string)
	s.KCStatus, _ = out["keycloak_status"].(string)
	s.Sync, _ = out["sync"].(string)
	return s, out
}

// run drives one user until ctx ends. The stop context is separate from the
// requests' context so a request in flight at the end still gets its answer.
func (g *loadGen) run(stop context.Context, u *simUser) {
	ctx := context.Background()
	for {
		select {
		case <-stop.Done():
			return
		case <-time.After(g.think/2 + mrand.N(g.think)):
		}
		r := mrand.Float64()
		switch {
		case u.Token == "" || u.Pending != "" || r < 0.40:
			g.login(ctx, u)
		case r < 0.50 && u.Wrongs < 3:
			u.Wrongs++
			s, _ := g.do(ctx, opWrong, u, "POST", "/login", "", map[string]string{
				"username": u.Name, "password": randomPassword(), "package": u.Package})
			g.record(s)
		case r < 0.62:
			g.change(ctx, u)
		case r < 0.85:
			s, _ := g.do(ctx, opList, u, "GET", "/sessions", u.Token, nil)
			g.record(s)
		default:
			s, _ := g.do(ctx, opLogout, u, "POST", "/logout", u.Token, nil)
			g.record(s)
			u.Token = "" // ended, or its fate unknown: log in again

		}
	}
}

// login logs in with the current password, first finding out whether a
// change without a clear answer took effect (trying the new password
// first, as a person would).
func (g *loadGen) login(ctx context.Context, u *simUser) {
	try := func(pw string) (sample, map[string]any) {
		return g.do(ctx, opLogin, u, "POST", "/login", "", map[string]string{
			"username": u.Name, "password": pw, "package": u.Package})
	}
	if u.Pending != "" {
		s, out := try(u.Pending)
		if s.Status == http.StatusOK {
			u.History, u.Pending = append(u.History, u.Pending), ""
			u.Changes++
			u.Unclear++
			u.Token, _ = out["session_token"].(string)
			u.Wrongs = 0
			g.record(s)
			return
		}
		if s.Status != http.StatusUnauthorized {
			g.record(s) // moto still down: the login failed either way
			return
		}
		u.Pending = "" // the change did not take: the old password holds
		u.Wrongs++
	}
	s, out := try(u.current())
	g.record(s)
	if s.Status == http.StatusOK {
		u.Token, _ = out["session_token"].(string)
		u.Wrongs = 0
	}
}

// change sets a new password. A 200 makes it current; an answer that
// leaves its fate unknown (503, none) makes it pending.
func (g *loadGen) change(ctx context.Context, u *simUser) {
	next := randomPassword()
	s, _ := g.do(ctx, opChange, u, "POST", "/password", "", map[string]string{
		"username": u.Name, "old_password": u.current(), "new_password": next, "package": u.Package})
	g.record(s)
	switch {
	case s.Status == http.StatusOK:
		u.History = append(u.History, next)
		u.Changes++
		u.Token = "" // revoke_other_sessions ends the user's sessions
	case s.Status == 0 || s.Status >= 500:
		u.Pending, u.Token = next, ""
	}
}

func randomPassword() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "Chaos-" + hex.EncodeToString(b)
}
