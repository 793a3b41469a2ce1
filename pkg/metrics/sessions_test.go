package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/kcguard/kcguard/pkg/audit"
	"github.com/kcguard/kcguard/pkg/sessions"
)

func TestSessionReport(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)
	a, s := audit.NewMemory(), sessions.NewMemory()
	login := func(pkg, user, mode string, at time.Time, outcome audit.Outcome, live bool) {
		t.Helper()
		if err := a.Record(ctx, audit.Event{Package: pkg, Username: user, Action: audit.ActionLogin, AuthMode: mode, Outcome: outcome, At: at}); err != nil {
			t.Fatal(err)
		}
		if outcome != audit.OutcomeSuccess {
			return
		}
		exp := at.Add(12 * time.Hour)
		if !live {
			exp = now.Add(-time.Minute)
		}
		_, _, err := s.Create(ctx, sessions.Record{Package: pkg, Username: user, AuthMode: sessions.AuthMode(mode), CreatedAt: at, ExpiresAt: exp,
			LastSeenAt: at, IdleExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
	}
	login("homechoice", "alice", "keycloak", now.Add(-10*time.Minute), audit.OutcomeSuccess, true)
	login("homechoice", "alice", "local", now.Add(-70*time.Minute), audit.OutcomeSuccess, true)
	login("homechoice", "bob", "cached", now.Add(-5*time.Hour), audit.OutcomeSuccess, true)
	login("homechoice", "carol", "local", now.Add(-2*time.Hour), audit.OutcomeSuccess, false) // expired since
	login("homechoice", "dave", "", now.Add(-time.Minute), audit.OutcomeInvalidCredentials, false)
	login("homechoice", "erin", "keycloak", now.Add(-30*time.Hour), audit.OutcomeSuccess, false) // outside the day
	login("janee", "frank", "keycloak", now.Add(-time.Minute), audit.OutcomeSuccess, true)       // other package

	rep, err := SessionReporter{Audit: a, Sessions: s, Lifetime: 12 * time.Hour}.Report(ctx, "homechoice", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LoginsPerHour) != 24 || !rep.LoginsPerHour[23].Hour.Equal(now.Truncate(time.Hour)) {
		t.Fatalf("hours %v", rep.LoginsPerHour)
	}
	want := map[int]map[string]int{23: {"keycloak": 1}, 22: {"local": 1}, 21: {"local": 1}, 18: {"cached": 1}}
	for i, h := range rep.LoginsPerHour {
		total := 0
		for mode, n := range h.ByAuthMode {
			total += n
			if want[i][mode] != n {
				t.Errorf("hour %d (%s): %s=%d, want %d", i, h.Hour, mode, n, want[i][mode])
			}
		}
		if total == 0 && want[i] != nil {
			t.Errorf("hour %d: no logins, want %v", i, want[i])
		}
	}
	if got := rep.ActiveSessions; got["keycloak"] != 1 || got["local"] != 1 || got["cached"] != 1 || len(got) != 3 {
		t.Fatalf("active %v", got)
	}
}
