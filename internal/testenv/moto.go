package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// PrivateMoto starts a moto server of its own on a free loopback port and
// returns its endpoint; it is stopped when the test ends. Use it where a test
// needs an empty AWS (e.g. `config fix` from nothing) without disturbing the
// shared moto other packages' tests are using.
func PrivateMoto(t testing.TB) string {
	t.Helper()
	Need(t, "moto")                 // the shared one proves moto is installed
	cache := os.Getenv("KCG_CACHE") // where local/stack.sh installed the stack, if not .cache/
	if cache == "" {
		cache = filepath.Join(RepoRoot(t), ".cache")
	}
	python := filepath.Join(cache, "venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("moto not installed at %s: run `make install`", python)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// Through the launcher local/stack.sh uses: moto with DynamoDB's per-item atomicity.
	cmd := exec.Command(python, filepath.Join(RepoRoot(t), "local", "moto_server.py"), "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start private moto: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
			resp.Body.Close()
			return endpoint
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("private moto did not start on %s", endpoint)
	return ""
}

// RepoRoot is the repository's top folder.
func RepoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
