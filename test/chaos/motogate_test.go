package chaos

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
// failed it; a retry that finds its first attempt landed is refused by the
// transaction's own conditions, as on DynamoDB. Single-item writes, reads,
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
	rp.Transport = retryMoto500{http.DefaultTransport}
	turn := make(chan struct{}, 1) // the transaction running, if any
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.TransactWriteItems" {
			select {
			case turn <- struct{}{}:
				defer func() { <-turn }()
			case <-time.After(overlapWait):
			case <-r.Context().Done():
				return
			}
		}
		if r.Context().Err() != nil {
			return // the client gave up while it waited: do not let it land late
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

// retryMoto500 sends a TransactWriteItems again when moto answers it 500.
type retryMoto500 struct{ next http.RoundTripper }

func (rt retryMoto500) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "DynamoDB_20120810.TransactWriteItems" || r.Body == nil {
		return rt.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req := r.Clone(r.Context())
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		resp, err := rt.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusInternalServerError || attempt == 2 || r.Context().Err() != nil {
			return resp, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
