package chaos

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// motoGate stands between the run's moto proxy and moto, and gives
// DynamoDB's TransactWriteItems the isolation DynamoDB gives it and moto
// does not (finding 12 of RELIABILITY.md): moto copies the tables for a
// transaction while other threads write them and answers HTTP 500
// ("dictionary changed size during iteration"), sometimes to all three
// attempts of a login's transaction, when transactions overlap. Here
// transactions run one at a time; every other call passes untouched
// (holding reads and writes behind a transaction, an RWMutex, was tried:
// moto's slow table copies then stalled every login past its budget).
// Every answer is still moto's, and the faults are toxiproxy's in front of
// the gate, so the run measures kcguard, not moto's race.
func motoGate(t *testing.T, motoAddr string) string {
	t.Helper()
	target, err := url.Parse("http://" + motoAddr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client gone in a cut is not news
	var transactions sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.TransactWriteItems" {
			transactions.Lock()
			defer transactions.Unlock()
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
