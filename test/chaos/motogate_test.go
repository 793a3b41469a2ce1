package chaos

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// motoGate stands between the run's moto proxy and moto, and gives
// DynamoDB's TransactWriteItems the isolation DynamoDB gives it and moto
// does not (finding 12 of RELIABILITY.md): moto copies the tables for a
// transaction while other threads write them and answers HTTP 500
// ("dictionary changed size during iteration"), sometimes to all three
// attempts of a login's transaction. Here a transaction runs alone among
// DynamoDB calls; other DynamoDB calls run in parallel with each other, and
// SQS, SNS and KMS pass untouched (an SQS long poll must never hold up a
// login). Every answer is still moto's, and the faults are toxiproxy's in
// front of the gate, so the run measures kcguard, not moto's race.
func motoGate(t *testing.T, motoAddr string) string {
	t.Helper()
	target, err := url.Parse("http://" + motoAddr)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a client gone in a cut is not news
	var tables sync.RWMutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		switch {
		case op == "DynamoDB_20120810.TransactWriteItems":
			tables.Lock()
			defer tables.Unlock()
		case strings.HasPrefix(op, "DynamoDB_"):
			tables.RLock()
			defer tables.RUnlock()
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
