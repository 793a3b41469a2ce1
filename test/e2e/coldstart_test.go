//go:build rie

package e2e

// Cold start of every function's bootstrap, measured without the RIE (whose
// REPORT line says "Init Duration: 0.02 ms", which measures nothing): a
// fake Lambda runtime API on loopback hands the bootstrap its work and
// times
//
//	init   from process start to its first GET /runtime/invocation/next
//	first  the first invocation (event handed out → response posted)
//	warm   the median of the following invocations
//
// against the local stack, plus the bootstrap's size. BENCHMARKS.md,
// "Cold start"; goals: init ≤ 50 ms, size ≤ 15 MB, first ≤ 1.5 × warm.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/internal/benchstat"
	"github.com/kcguard/kcguard/internal/stacktest"
)

// fakeRuntime is the part of the Lambda runtime API a Go bootstrap uses.
type fakeRuntime struct {
	addr string
	srv  *http.Server

	firstNext chan time.Time // the moment the bootstrap first asked for work
	work      chan []byte    // events to hand out, one per GET next
	done      chan outcome   // each invocation's response or error
	initErr   chan string

	mu     sync.Mutex
	handed map[string]time.Time // request id → when its event was handed out
	seq    int
	once   sync.Once
}

type outcome struct {
	id       string
	body     []byte
	err      bool
	duration time.Duration
}

func newFakeRuntime(tb testing.TB) *fakeRuntime {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &fakeRuntime{addr: l.Addr().String(), firstNext: make(chan time.Time, 1), work: make(chan []byte),
		done: make(chan outcome, 16), initErr: make(chan string, 1), handed: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, false)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, req *http.Request) {
		r.finish(w, req, true)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		select {
		case r.initErr <- string(body):
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	r.srv = &http.Server{Handler: mux}
	go func() { _ = r.srv.Serve(l) }()
	tb.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *fakeRuntime) next(w http.ResponseWriter, req *http.Request) {
	r.once.Do(func() { r.firstNext <- time.Now() })
	var ev []byte
	select {
	case ev = <-r.work:
	case <-req.Context().Done():
		return
	}
	r.mu.Lock()
	r.seq++
	id := fmt.Sprintf("coldstart-%d", r.seq)
	r.handed[id] = time.Now()
	r.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:coldstart")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(ev)
}

func (r *fakeRuntime) finish(w http.ResponseWriter, req *http.Request, failed bool) {
	body, _ := io.ReadAll(req.Body)
	id := req.PathValue("id")
	r.mu.Lock()
	d := time.Since(r.handed[id])
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	r.done <- outcome{id: id, body: body, err: failed, duration: d}
}

// invoke hands out one event and waits for its outcome.
func (r *fakeRuntime) invoke(tb testing.TB, ev []byte) outcome {
	tb.Helper()
	select {
	case r.work <- ev:
	case <-time.After(30 * time.Second):
		tb.Fatal("the bootstrap did not ask for work")
	}
	select {
	case o := <-r.done:
		if o.err {
			tb.Fatalf("invocation %s failed: %s", o.id, o.body)
		}
		return o
	case <-time.After(60 * time.Second):
		tb.Fatal("no response to the invocation")
	}
	return outcome{}
}

// coldStart is one function's measurements.
type coldStart struct {
	name        string
	size        int64
	init        time.Duration
	first, warm time.Duration // zero when the function was not invoked
}

// bootstrapPath is the built amd64 bootstrap of fn.
func (s *stack) bootstrapPath(tb testing.TB, fn string) string {
	tb.Helper()
	p := filepath.Join(s.root, "dist", "lambda", "amd64", fn, "bootstrap")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("%s is not built: run `make lambda-amd64`: %v", p, err)
	}
	return p
}

// startBootstrap runs fn's bootstrap against a fake runtime API and waits
// for its first request for work.
func (s *stack) startBootstrap(tb testing.TB, fn string) (*fakeRuntime, coldStart) {
	tb.Helper()
	path := s.bootstrapPath(tb, fn)
	st, _ := os.Stat(path)
	rt := newFakeRuntime(tb)
	cmd := exec.Command(path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"AWS_LAMBDA_RUNTIME_API=" + rt.addr, "AWS_LAMBDA_FUNCTION_NAME=" + fn,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST"}
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Measured here is how long things take, not whether Keycloak answers
	// within the 2 s default on a loaded machine (that would be a fallback
	// to local mode, another path).
	cmd.Env = append(cmd.Env, "KCGUARD_KEYCLOAK_TIMEOUT=10s")
	var out stacktest.Logs // a concurrency-safe sink
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if tb.Failed() {
			tb.Logf("%s output:\n%s", fn, out.String())
		}
	})
	select {
	case at := <-rt.firstNext:
		return rt, coldStart{name: fn, size: st.Size(), init: at.Sub(start)}
	case msg := <-rt.initErr:
		tb.Fatalf("%s: init error: %s", fn, msg)
	case err := <-exited:
		tb.Fatalf("%s exited before asking for work: %v\n%s", fn, err, out.String())
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s did not ask for work within 30 s", fn)
	}
	return nil, coldStart{}
}

// measureLogin starts the login bootstrap cold, logs u in once (first) and
// warm more times, each answer checked.
func (s *stack) measureLogin(tb testing.TB, warm int) coldStart {
	tb.Helper()
	u := s.NewUserPrefixed(tb, "homechoice", "perf-cold")
	rt, cs := s.startBootstrap(tb, "login")
	creds := map[string]string{"username": u.Name, "password": u.Password, "package": u.Package}
	ev := event(tb, s.root, "login.json", withBody(creds))
	check := func(o outcome) {
		var resp events.APIGatewayV2HTTPResponse
		var body loginBody
		if err := json.Unmarshal(o.body, &resp); err != nil {
			tb.Fatalf("login: not an API Gateway v2 response: %v", err)
		}
		_ = json.Unmarshal([]byte(resp.Body), &body)
		if resp.StatusCode != 200 || body.AuthMode != "keycloak" {
			tb.Fatalf("login: %d, auth_mode %q, keycloak_status %q; want 200 in keycloak mode", resp.StatusCode, body.AuthMode, body.KeycloakStatus)
		}
	}
	first := rt.invoke(tb, ev)
	check(first)
	cs.first = first.duration
	var ds []time.Duration
	for range warm {
		o := rt.invoke(tb, ev)
		check(o)
		ds = append(ds, o.duration)
	}
	slices.Sort(ds)
	cs.warm = ds[len(ds)/2]
	return cs
}

// coldFunctions are the functions whose init is measured (every one built
// from functions/).
func coldFunctions(tb testing.TB, root string) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		tb.Fatal(err)
	}
	var fns []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, "functions", e.Name(), "main.go")); e.IsDir() && err == nil {
			fns = append(fns, e.Name())
		}
	}
	return fns
}

func BenchmarkColdStart(b *testing.B) {
	s := newStack(b)
	starts := benchstat.Int(b, "KCGUARD_BENCH_COLD_STARTS", 5)
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n%-12s %10s %12s %12s %10s %10s %8s\n", "function", "size MB", "init p50 ms", "init max ms", "first ms", "warm ms", "first/warm")
	for b.Loop() {
		for _, fn := range coldFunctions(b, s.root) {
			var inits []time.Duration
			var cs coldStart
			for range starts {
				var c coldStart
				if fn == "login" {
					c = s.measureLogin(b, 5)
				} else {
					_, c = s.startBootstrap(b, fn)
				}
				inits = append(inits, c.init)
				if c.first > 0 && (cs.first == 0 || c.first < cs.first) {
					cs.first, cs.warm = c.first, c.warm
				}
				cs.size = c.size
			}
			slices.Sort(inits)
			first, warm, ratio := "-", "-", "-"
			if cs.first > 0 {
				first, warm = fmt.Sprintf("%.1f", benchstat.Ms(cs.first)), fmt.Sprintf("%.1f", benchstat.Ms(cs.warm))
				ratio = fmt.Sprintf("%.2f", float64(cs.first)/float64(cs.warm))
				b.ReportMetric(benchstat.Ms(cs.first), fn+"_first_ms")
				b.ReportMetric(benchstat.Ms(cs.warm), fn+"_warm_ms")
			}
			fmt.Fprintf(&tbl, "%-12s %10.1f %12.1f %12.1f %10s %10s %8s\n", fn, float64(cs.size)/(1<<20),
				benchstat.Ms(inits[len(inits)/2]), benchstat.Ms(inits[len(inits)-1]), first, warm, ratio)
			b.ReportMetric(benchstat.Ms(inits[len(inits)/2]), fn+"_init_ms")
		}
	}
	fmt.Printf("BenchmarkColdStart: %d cold starts per function (fake runtime API; first/warm: best of the login starts)%s", starts, tbl.String())
}

// TestColdStartHarness is the quick correctness run: the login bootstrap
// asks for work, answers a first and a warm login, and the timings exist.
func TestColdStartHarness(t *testing.T) {
	s := newStack(t)
	cs := s.measureLogin(t, 1)
	if cs.init <= 0 || cs.first <= 0 || cs.warm <= 0 || cs.size <= 0 {
		t.Fatalf("%+v", cs)
	}
	t.Logf("login: %.1f MB, init %v, first invocation %v, warm %v", float64(cs.size)/(1<<20), cs.init, cs.first, cs.warm)
}
