package dashboard_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kcguard/kcguard/internal/stacktest"
	"github.com/kcguard/kcguard/pkg/auth"
	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
	"github.com/kcguard/kcguard/pkg/httpapi"
)

const adminKey = "operators-browser-test-key"

// chromium finds the browser `make install` (local/stack.sh install) puts
// there; the test fails loudly without it.
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("KCGUARD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium not found: run `make install` (local/stack.sh install installs the Debian package) or set KCGUARD_CHROMIUM")
	return ""
}

// consoleErrors collects every console error, uncaught exception and
// browser log entry of level error of the tab.
type consoleErrors struct {
	mu   sync.Mutex
	list []string
}

func (c *consoleErrors) collect(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.mu.Lock()
				c.list = append(c.list, m.String()+" "+m.URL)
				c.mu.Unlock()
			}
		}
	}()
}

func (c *consoleErrors) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.list...)
}

// TestDashboardShowsAnOutage loads the dashboard in headless Chromium,
// signs in with the admin key, cuts Keycloak (this test's own toxiproxy
// proxy) until the breaker opens, sees the breaker box turn red, restores
// Keycloak and sees it turn green, with no console error on the way.
func TestDashboardShowsAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local stack and chromium")
	}
	exe := chromium(t)
	env := stacktest.New(t, func(c *config.Config) {
		c.API.AdminKey = adminKey
		// The cut is a refused connection, so the timeout only bounds the
		// logins that must reach a loaded Keycloak.
		c.Keycloak.Timeout = 5 * time.Second
		c.Keycloak.Resilience.CooldownSeconds = 1
		c.Keycloak.Resilience.HealthCheckCacheSeconds = 1
	})
	user := env.NewUser(t, "homechoice")
	if r, err := env.Login(user, user.Password); err != nil || r.Mode != auth.ModeKeycloak {
		t.Fatalf("first login: %+v %v", r, err)
	}
	srv := httptest.NewServer(&httpapi.Server{Routes: env.RT.Routes(), Log: env.RT.Log})
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Headless, chromedp.WindowSize(1280, 1100))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	errs := &consoleErrors{}
	errs.collect(ctx)

	color := func(state string) string {
		return map[string]string{"closed": "rgb(30, 142, 62)", "open": "rgb(217, 48, 37)"}[state]
	}
	waitFor := func(state string) {
		t.Helper()
		sel := fmt.Sprintf(`#breaker[data-state=%q]`, state)
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			t.Fatalf("breaker never shown %s: %v", state, err)
		}
		bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("breaker")).backgroundColor`))
		if err != nil {
			t.Fatal(err)
		}
		if bg != color(state) {
			t.Errorf("breaker %s shown in %s, want %s", state, bg, color(state))
		}
	}

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/dashboard?refresh=1"),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), adminKey),
		chromedp.Submit(chromedp.ID("key")),
		chromedp.WaitVisible(chromedp.ID("breaker")),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	waitFor("closed")
	count := func(sel string) (int, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
	}
	if rows, err := count("#keycloak tbody tr .up"); err != nil || rows != 2 {
		t.Errorf("keycloak rows reachable = %d (%v), want 2", rows, err)
	}

	env.Proxy.Disable()
	for i := 0; i < 10; i++ {
		if st, _ := env.RT.Breaker.Status(context.Background()); st.State == breaker.StateOpen {
			break
		}
		if _, err := env.Login(user, user.Password); err != nil {
			t.Fatalf("login during the outage: %v", err)
		}
	}
	waitFor("open")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#keycloak tbody tr .down`))); err != nil {
		t.Errorf("keycloak not shown unreachable: %v", err)
	}
	if path := os.Getenv("KCGUARD_DASHBOARD_SCREENSHOT"); path != "" {
		time.Sleep(1500 * time.Millisecond) // a second refresh fills the backlog line
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	env.Proxy.Enable()
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(1100 * time.Millisecond) // the cooldown: the next login is the probe
		if _, err := env.Login(user, user.Password); err != nil {
			t.Fatalf("login after the outage: %v", err)
		}
		if st, _ := env.RT.Breaker.Status(context.Background()); st.State == breaker.StateClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close after Keycloak came back")
		}
	}
	waitFor("closed")
	if history, err := count("#outages tbody tr"); err != nil || history < 3 {
		t.Errorf("outage history rows = %d (%v), want closed, open, closed", history, err)
	}
	if bars, err := count("#modes rect"); err != nil || bars == 0 {
		t.Errorf("auth-mode chart has no bars (%v)", err)
	}
	if e := errs.get(); len(e) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(e, "\n"))
	}
}
