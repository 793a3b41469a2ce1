package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"
)

// motoGate stands between the run's moto proxy and moto and gives
// DynamoDB's TransactWriteItems the isolation DynamoDB gives it and moto
// does not (findings 9, 12 and 17 of RELIABILITY.md). moto backs up every
// table a transaction touches (copy.deepcopy) before applying it, and when
// the transaction is cancelled (a condition failed) it puts the backups
// back, erasing every write other clients made to those tables meanwhile:
// sessions other logins had just created vanished (answered 401 with
// nobody ending them), and a password change answered 200 was rolled back
// under the sync, which then pushed the old hash to Keycloak. The copy
// also races concurrent writes and answers HTTP 500 ("dictionary changed
// size during iteration").
//
// Here a transaction waits up to overlapWait for the one before it to
// finish, which removes nearly all overlaps (every login and failed login
// is a transaction) without queueing logins past their budget: moto's
// table copies take seconds on a loaded machine, and holding transactions
// (or writes) for as long as it takes was tried and stalled every login of
// a burst past its call budget. The copy can still meet a single-item
// write (moto's 500 comes before it applies anything), so a transaction
// moto answers 500 is sent again, up to twice, as DynamoDB would not have
// failed it. And the gate keeps DynamoDB's idempotency, which moto
// ignores: an SDK retry (same ClientRequestToken) of a transaction still
// running waits for it and gets its answer, never overlapping it. Without
// that, the retry backed up the tables before the first attempt committed,
// was cancelled by the session the first attempt had just written, and its
// rollback erased that session: a login answered 200 with a session that
// was gone (401) a moment later. Single-item writes, reads,
// SQS, SNS and KMS pass untouched. Every answer is still moto's, and the
// faults are toxiproxy's in front of the gate, so the run measures kcguard,
// not moto.
// overlapWait is how long a transaction waits for the one before it.
const overlapWait = 1500 * time.Millisecond

func motoGate(t *testing.T, motoAddr string) string {
	t.Helper()
	target, err := url.Parse("http://" + motoAddr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client gone in a cut is not news
	g := &gate{moto: "http://" + motoAddr, turn: make(chan struct{}, 1), sent: map[string]*txAnswer{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.TransactWriteItems" {
			g.transaction(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

type gate struct {
	moto string
	turn chan struct{} // the transaction running, if any
	mu   sync.Mutex
	sent map[string]*txAnswer // by ClientRequestToken
}

// txAnswer is moto's answer to one transaction, once done is closed.
type txAnswer struct {
	done   chan struct{}
	status int
	header http.Header
	body   []byte
}

func (g *gate) transaction(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var in struct{ ClientRequestToken string }
	_ = json.Unmarshal(body, &in)
	a := &txAnswer{done: make(chan struct{})}
	if tok := in.ClientRequestToken; tok != "" {
		g.mu.Lock()
		prev := g.sent[tok]
		if prev == nil || prev.finishedWithout200() {
			g.sent[tok] = a
			prev = nil
		}
		g.mu.Unlock()
		if prev != nil { // a retry of a transaction sent or being sent
			select {
			case <-prev.done:
				if prev.status == http.StatusOK {
					prev.write(w)
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}
	select {
	case g.turn <- struct{}{}:
		defer func() { <-g.turn }()
	case <-time.After(overlapWait):
	case <-r.Context().Done():
		close(a.done) // never sent: a retry sends it
		return
	}
	// Sent to the end whether or not the client waits: its retry gets the
	// answer.
	ctx := context.WithoutCancel(r.Context())
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.Method, g.moto+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			close(a.done)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			a.status = http.StatusBadGateway
			break
		}
		a.status, a.header = resp.StatusCode, resp.Header
		a.body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if a.status != http.StatusInternalServerError || attempt == 2 {
			break
		}
	}
	close(a.done)
	a.write(w)
}

func (a *txAnswer) finishedWithout200() bool {
	select {
	case <-a.done:
		return a.status != http.StatusOK
	default:
		return false
	}
}

func (a *txAnswer) write(w http.ResponseWriter) {
	if a.status == 0 {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	for k, v := range a.header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
