// Package load measures what one `kcguard serve` sustains during a Keycloak
// outage: logins in local mode (breaker forced open, Keycloak blackholed),
// every one an argon2id check at Keycloak 26's default parameters plus the
// login's three DynamoDB round trips, driven by a closed-loop load
// generator on loopback. BENCHMARKS.md, "Capacity during an outage".
package load

import (
	"bytes"
	"context"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcguard/kcguard/internal/benchstat"
	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/internal/testenv"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/users"
)

// server is one `kcguard serve` process started for the benchmark.
type server struct {
	url string
	cmd *exec.Cmd
}

// cpu is the process's user+system CPU time so far (Linux /proc).
func (s *server) cpu(tb testing.TB) time.Duration { return processCPU(tb, s.cmd.Process.Pid) }

func processCPU(tb testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ")".
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ = 100
}

// storePID is the moto server behind AWS_ENDPOINT_URL (0 if not found):
// it runs on the same two cores, so its CPU per login is part of the figure.
func storePID() int {
	port := os.Getenv("AWS_ENDPOINT_URL")
	port = port[strings.LastIndexByte(port, ':')+1:]
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		args := strings.Split(string(cmd), "\x00")
		if len(args) > 1 && strings.Contains(string(cmd), "moto_server") && slices.Contains(args, port) {
			return pid
		}
	}
	return 0
}

// startServe builds cmd/kcguard and runs `kcguard serve` on a free loopback
// port against the Env's tables, queue, KMS key and Keycloak proxy.
func startServe(tb testing.TB, e *stacktest.Env) *server {
	tb.Helper()
	root := testenv.RepoRoot(tb)
	bin := filepath.Join(tb.TempDir(), "kcguard")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kcguard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build kcguard: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cfg := e.Config
	packages := map[string]map[string]string{}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL=" + os.Getenv("AWS_ENDPOINT_URL"),
		"KCGUARD_KEYCLOAK_URL=" + cfg.Keycloak.URL,
		"KCGUARD_TABLE_USERS=" + cfg.Tables.Users, "KCGUARD_TABLE_SESSIONS=" + cfg.Tables.Sessions,
		"KCGUARD_TABLE_TOKENS=" + cfg.Tables.Tokens, "KCGUARD_TABLE_BREAKER=" + cfg.Tables.Breaker,
		"KCGUARD_TABLE_AUDIT=" + cfg.Tables.Audit, "KCGUARD_TABLE_JOURNAL=" + cfg.Tables.Journal,
		"KCGUARD_SYNC_QUEUE=" + cfg.Sync.Queue, "KCGUARD_SYNC_DLQ=" + cfg.Sync.DLQ,
		"KCGUARD_KMS_KEY_ID=" + cfg.KMSKeyID, "KCGUARD_LOG_LEVEL=warn",
		"KCGUARD_AUDIT_USERNAME_HMAC_KEY=" + testenv.Unique("bench-hmac"),
	}
	for name, p := range cfg.Keycloak.Packages {
		packages[name] = map[string]string{"realm": p.Realm, "client_id": p.ClientID}
		env = append(env, config.SecretEnvName(name)+"="+p.ClientSecret)
	}
	pj, _ := json.Marshal(packages)
	env = append(env, "KCGUARD_PACKAGES="+string(pj))

	cmd := exec.Command(bin, "serve", "--addr", addr)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &server{url: "http://" + addr, cmd: cmd}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("kcguard serve output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kcguard serve did not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seedUsers creates n local users sharing one password hash (one argon2
// hash at the configured parameters; each login still verifies it).
func seedUsers(tb testing.TB, e *stacktest.Env, n int) ([]string, string) {
	tb.Helper()
	password := testenv.Unique("Pw-capacity")
	h := e.Hash(tb, password)
	names := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		names[i] = fmt.Sprintf("perf-cap-%04d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := e.RT.Users.Create(context.Background(), users.User{Package: "homechoice", Username: names[i],
				Enabled: true, Hash: users.NewHash(h)}, time.Now())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return names, password
}

// level is what one concurrency level of the load saw.
type level struct {
	workers        int
	ok, failed     int
	elapsed        time.Duration
	lat            []float64 // ms
	serverCPU      time.Duration
	storeCPU       time.Duration // moto's, when found
	firstFailure   string
	modesOtherThan int
}

func (l level) rate() float64 { return float64(l.ok) / l.elapsed.Seconds() }

// drive runs workers closed-loop clients for d (at most limit logins in
// all), each logging in its own users in turn.
func drive(tb testing.TB, s *server, names []string, password string, workers int, d time.Duration, limit int64) level {
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	var (
		mu    sync.Mutex
		lv    = level{workers: workers}
		count atomic.Int64
		wg    sync.WaitGroup
	)
	cpu0 := s.cpu(tb)
	moto := storePID()
	var moto0 time.Duration
	if moto != 0 {
		moto0 = processCPU(tb, moto)
	}
	start := time.Now()
	stop := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(stop) && count.Add(1) <= limit; i += workers {
				u := names[i%len(names)]
				body, _ := json.Marshal(map[string]string{"username": u, "password": password, "package": "homechoice"})
				t0 := time.Now()
				resp, err := client.Post(s.url+"/login", "application/json", bytes.NewReader(body))
				var data []byte
				if err == nil {
					data, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				ms := benchstat.Ms(time.Since(t0))
				var out struct {
					AuthMode string `json:"auth_mode"`
				}
				mu.Lock()
				switch {
				case err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil:
					lv.failed++
					if lv.firstFailure == "" {
						lv.firstFailure = fmt.Sprintf("%v %.200s", err, data)
					}
				default:
					lv.ok++
					lv.lat = append(lv.lat, ms)
					if out.AuthMode != "local" {
						lv.modesOtherThan++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	lv.elapsed = time.Since(start)
	lv.serverCPU = s.cpu(tb) - cpu0
	if moto != 0 {
		lv.storeCPU = processCPU(tb, moto) - moto0
	}
	return lv
}

// BenchmarkOutageCapacity: logins/s and latency of one `kcguard serve` in
// local mode at rising concurrency. Knobs: KCGUARD_BENCH_CAPACITY_SECONDS
// (per level, default 15), KCGUARD_BENCH_CAPACITY_WORKERS (comma-separated
// levels, default 1,2,4,8,16), KCGUARD_BENCH_CAPACITY_USERS (default 200).
func BenchmarkOutageCapacity(b *testing.B) {
	secs := benchstat.Int(b, "KCGUARD_BENCH_CAPACITY_SECONDS", 15)
	nusers := benchstat.Int(b, "KCGUARD_BENCH_CAPACITY_USERS", 200)
	levels := []int{1, 2, 4, 8, 16}
	if v := os.Getenv("KCGUARD_BENCH_CAPACITY_WORKERS"); v != "" {
		levels = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("KCGUARD_BENCH_CAPACITY_WORKERS=%q", v)
			}
			levels = append(levels, n)
		}
	}
	// A moto of its own: moto's transactions copy everything it stores, so
	// the shared one's load and size (every other test's tables) would be
	// measured instead of kcguard.
	b.Setenv("AWS_ENDPOINT_URL", testenv.PrivateMoto(b))
	e := stacktest.New(b, func(c *config.Config) { c.Log.Level = "error" })
	if p := credential.DefaultArgon2MemoryKiB; e.Config.Password.Algorithm != "argon2" || p != 7168 {
		b.Fatalf("not argon2 at Keycloak's defaults: %s, m=%d", e.Config.Password.Algorithm, p)
	}
	names, password := seedUsers(b, e, nusers)
	e.Proxy.Blackhole()
	b.Cleanup(e.Proxy.Heal)
	if _, err := e.RT.Breaker.ForceOpen(context.Background()); err != nil {
		b.Fatal(err)
	}
	s := startServe(b, e)
	// Warm up: connections, the first hash.
	drive(b, s, names, password, 2, 2*time.Second, 20)

	var best level
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n%8s %10s %9s %9s %9s %8s %16s %16s\n", "workers", "logins/s", "p50 ms", "p99 ms", "failed", "ok",
		"serve CPU/login", "moto CPU/login")
	for b.Loop() {
		for _, w := range levels {
			lv := drive(b, s, names, password, w, time.Duration(secs)*time.Second, 1<<20)
			if lv.modesOtherThan > 0 {
				b.Fatalf("%d workers: %d logins not in local mode", w, lv.modesOtherThan)
			}
			if lv.failed > 0 { // an overloaded server's answer is part of the figure
				fmt.Printf("%d workers: %d failed, the first: %s\n", w, lv.failed, lv.firstFailure)
			}
			fmt.Fprintf(&tbl, "%8d %10.1f %9.1f %9.1f %9d %8d %13.1f ms %13.1f ms\n", w, lv.rate(), benchstat.Percentile(lv.lat, 0.5),
				benchstat.Percentile(lv.lat, 0.99), lv.failed, lv.ok, benchstat.Ms(lv.serverCPU)/float64(max(lv.ok, 1)),
				benchstat.Ms(lv.storeCPU)/float64(max(lv.ok, 1)))
			if best.ok == 0 || lv.rate() > best.rate() {
				best = lv
			}
		}
	}
	b.ReportMetric(best.rate(), "logins/s")
	b.ReportMetric(benchstat.Percentile(best.lat, 0.99), "p99_ms")
	b.ReportMetric(float64(best.workers), "workers")
	fmt.Printf("BenchmarkOutageCapacity: one kcguard serve, breaker forced open, local mode, argon2id m=7168 t=5 p=1, %d users, %d s per level%s",
		nusers, secs, tbl.String())
}

// TestOutageCapacityHarness is the quick correctness run of the harness:
// the server starts, answers local-mode logins under concurrency, and the
// counts add up.
func TestOutageCapacityHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local stack")
	}
	e := stacktest.New(t, func(c *config.Config) { c.Log.Level = "error" })
	names, password := seedUsers(t, e, 8)
	e.Proxy.Blackhole()
	t.Cleanup(e.Proxy.Heal)
	if _, err := e.RT.Breaker.ForceOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, e)
	lv := drive(t, s, names, password, 4, 30*time.Second, 16)
	if lv.failed != 0 || lv.ok != 16 || lv.modesOtherThan != 0 || len(lv.lat) != 16 {
		t.Fatalf("%+v (first failure: %s)", lv, lv.firstFailure)
	}
	if lv.serverCPU <= 0 {
		t.Fatalf("no CPU time read for the server: %v", lv.serverCPU)
	}
}
