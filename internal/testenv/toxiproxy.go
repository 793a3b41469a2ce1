package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// Proxy is one toxiproxy proxy owned by a test. It talks to toxiproxy's admin
// HTTP API directly; the few calls tests need do not justify the client
// module's dependencies.
type Proxy struct {
	t      testing.TB
	Name   string
	Listen string // host:port tests connect to
}

// NewProxy creates a proxy on a free loopback port in front of upstream and
// deletes it when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	Need(t, "toxiproxy")
	p := &Proxy{t: t, Name: Unique("test")}
	var out struct {
		Listen string `json:"listen"`
	}
	p.call("POST", "/proxies", map[string]any{
		"name": p.Name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true,
	}, &out)
	p.Listen = out.Listen
	t.Cleanup(func() { p.call("DELETE", "/proxies/"+p.Name, nil, nil) })
	return p
}

// Disable cuts the path: new connections are refused and open ones closed.
func (p *Proxy) Disable() { p.setEnabled(false) }

// Enable restores the path.
func (p *Proxy) Enable() { p.setEnabled(true) }

func (p *Proxy) setEnabled(on bool) {
	p.call("POST", "/proxies/"+p.Name, map[string]any{"enabled": on}, nil)
}

// Latency delays every response from upstream by ms milliseconds.
func (p *Proxy) Latency(ms int) {
	p.call("POST", "/proxies/"+p.Name+"/toxics", map[string]any{
		"name": "latency", "type": "latency", "stream": "downstream",
		"attributes": map[string]int{"latency": ms},
	}, nil)
}

// Blackhole accepts connections but never answers (timeout toxic, 0 = forever).
func (p *Proxy) Blackhole() {
	p.call("POST", "/proxies/"+p.Name+"/toxics", map[string]any{
		"name": "blackhole", "type": "timeout", "stream": "upstream",
		"attributes": map[string]int{"timeout": 0},
	}, nil)
}

// ResetPeer answers every connection with a TCP reset (reset_peer toxic).
func (p *Proxy) ResetPeer() {
	p.call("POST", "/proxies/"+p.Name+"/toxics", map[string]any{
		"name": "reset", "type": "reset_peer", "stream": "upstream",
		"attributes": map[string]int{"timeout": 0},
	}, nil)
}

// Heal removes every toxic and enables the proxy.
func (p *Proxy) Heal() {
	var toxics []struct {
		Name string `json:"name"`
	}
	p.call("GET", "/proxies/"+p.Name+"/toxics", nil, &toxics)
	for _, tx := range toxics {
		p.call("DELETE", "/proxies/"+p.Name+"/toxics/"+tx.Name, nil, nil)
	}
	p.Enable()
}

func (p *Proxy) call(method, path string, body any, out any) {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, ToxiproxyAdmin+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 && !(method == "DELETE" && resp.StatusCode == 404) {
		p.t.Fatalf("toxiproxy %s %s: %s", method, path, fmt.Sprint(resp.Status, " ", string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			p.t.Fatalf("toxiproxy %s %s: decode: %v", method, path, err)
		}
	}
}
