package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// RealmProbe checks that each package's realm answers: a GET of its public
// OpenID discovery document, the same cheap call the breaker's probe makes,
// but for every package, and without touching the breaker (a status read
// must not count as a Keycloak failure or success).
type RealmProbe struct {
	BaseURL string
	// Realms maps package → realm.
	Realms  map[string]string
	Timeout time.Duration // default 2s
	Client  *http.Client  // default http.DefaultClient
}

var _ Prober = (*RealmProbe)(nil)

// Probe checks every package in parallel, sorted by package.
func (p *RealmProbe) Probe(ctx context.Context) []Reachability {
	out := make([]Reachability, 0, len(p.Realms))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for pkg, realm := range p.Realms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := p.one(ctx, pkg, realm)
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}

func (p *RealmProbe) one(ctx context.Context, pkg, realm string) Reachability {
	r := Reachability{Package: pkg, Realm: realm}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		p.BaseURL+"/realms/"+url.PathEscape(realm)+"/.well-known/openid-configuration", nil)
	if err != nil {
		r.Error = "bad keycloak url"
		return r
	}
	resp, err := client.Do(req)
	r.LatencyMS = time.Since(start).Milliseconds()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		r.Error = fmt.Sprintf("no answer within %s", timeout)
	case err != nil:
		r.Error = "unreachable (connection failed)"
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			r.Reachable = true
		} else {
			r.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
	}
	return r
}
