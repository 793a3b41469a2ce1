package chaos

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/config"
)

// latency summarises the answered valid logins of a stretch of the run.
type latency struct {
	N        int
	P50, P99 time.Duration
}

func latencyOf(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return latency{N: len(ds), P50: at(0.50), P99: at(0.99)}
}

func (l latency) String() string {
	if l.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s", ms(l.P50), ms(l.P99))
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// outage is one fault and the healthy stretches around it.
type outage struct {
	N                     int
	Fault                 fault
	Start, Healed, Until  time.Time // fault start, fault end, end of the recovery after it
	Before, During, After latency
	Logins                int            // valid logins started during the fault
	Modes                 map[string]int // their auth modes (answered 200)
	InVain                latency        // valid logins, fault or recovery, that waited for Keycloak in vain (keycloak_status unavailable)
	Queued                int            // password changes answered "queued"
	Unavailable           int            // requests answered 503 unavailable (moto faults)
	SlowestRefusal        time.Duration  // the slowest answer that was not 200
	Opened, Closed        int            // breaker alerts
	// FlapPairs bounds the opened/closed pairs of a flap: each re-open
	// after a close doubles the back-off (cooldown × 2ⁿ, less up to 20%
	// jitter), so k pairs need about cooldown × (2ᵏ − 1) × 0.8 of flapping;
	// one more may open just before the heal.
	FlapPairs     int
	BreakerClosed time.Duration // heal → breaker closed (-1: not seen)
	Equal         time.Duration // heal → breaker closed, no unsynced user, empty queue (-1: not seen)
}

// alertProblem says what is wrong with the outage's alerts ("" if
// nothing): a Keycloak outage alerts exactly one "opened" and one "closed";
// a moto fault, which Keycloak is not part of, none; a flap pairs that
// the back-off bounds (FlapPairs), not one per probe.
func (o outage) alertProblem() string {
	want := 1
	switch {
	case o.Fault.onMoto():
		want = 0
	case o.Fault == kcFlap:
		if o.Opened != o.Closed || o.Opened > o.FlapPairs {
			return fmt.Sprintf("a flap of %s may alert at most %d opened/closed pairs (back-off), got %d opened, %d closed",
				o.Healed.Sub(o.Start).Round(time.Second), o.FlapPairs, o.Opened, o.Closed)
		}
		return ""
	}
	if o.Opened != want || o.Closed != want {
		return fmt.Sprintf("want %d opened and %d closed alert(s), got %d opened, %d closed", want, want, o.Opened, o.Closed)
	}
	return ""
}

// report is everything the run measured.
type report struct {
	Plan          plan
	Config        config.Config
	Samples       int
	Outages       []outage
	LoginFailures []string // valid logins that failed outside the moto faults, or failed badly inside
	OtherFailures []string // other requests answered unexpectedly
	ValidLogins   int
	StrayAlerts   int // opened outside every fault and its recovery (Keycloak slow by itself)
	AlertsOpened  int
	AlertsClosed  int
	Unpaired      string // alerts that do not pair up opened → closed
	Changes       int    // password changes made (answered 200 or found in effect)
	Unclear       int    // of which answered 503 or not at all, yet in effect
	Lost          []string
	// KeycloakLocked counts users whose newest password Keycloak refused
	// at the end because its brute-force detector had locked them during
	// the run (checked again after the lock: see Lost).
	KeycloakLocked int
	DLQ            int
	Drained        bool
	DrainTook      time.Duration
	LoadEnd        time.Time
}

func newReport(p plan, cfg config.Config, samples []sample, states []state, alerts []alert) *report {
	r := &report{Plan: p, Config: cfg, Samples: len(samples)}
	var motoFaults [][2]time.Time
	for _, ph := range p.Phases {
		if ph.Fault.onMoto() {
			motoFaults = append(motoFaults, [2]time.Time{ph.Start, ph.End})
		}
	}
	inMoto := func(s sample) bool {
		end := s.Start.Add(s.Took)
		for _, w := range motoFaults {
			if s.Start.Before(w[1]) && end.After(w[0]) {
				return true
			}
		}
		return false
	}
	start := p.Phases[0].Start
	for _, s := range samples {
		clear503 := s.Status == http.StatusServiceUnavailable && s.Code == "unavailable" && s.Took <= budget503(cfg)
		if s.Op == opLogin {
			r.ValidLogins++
		}
		if ok := expected(s); ok || (inMoto(s) && clear503) {
			continue
		}
		what := fmt.Sprintf("%s of %s at +%.1fs (%s): %s after %s", s.Op, s.Name,
			s.Start.Sub(start).Seconds(), phaseName(p, s.Start), answer(s), ms(s.Took))
		if s.Op == opLogin {
			r.LoginFailures = append(r.LoginFailures, what)
		} else {
			r.OtherFailures = append(r.OtherFailures, what)
		}
	}
	for i, ph := range p.Phases {
		if ph.Fault == healthy {
			continue
		}
		o := outage{N: ph.Outage, Fault: ph.Fault, Start: ph.Start, Healed: ph.End, Until: p.Phases[i+1].End,
			Modes: map[string]int{}, BreakerClosed: -1, Equal: -1}
		for span := 0.8 * cfg.Keycloak.Resilience.Cooldown().Seconds(); span*float64(int(1)<<o.FlapPairs-1) <= ph.Dur.Seconds(); {
			o.FlapPairs++
		}
		var before, during, after, inVain []time.Duration
		for _, s := range samples {
			in := func(a, b time.Time) bool { return !s.Start.Before(a) && s.Start.Before(b) }
			if s.Op == opChange && s.Sync == "queued" && in(o.Start, o.Until) {
				o.Queued++
			}
			if s.Status == http.StatusServiceUnavailable && in(o.Start, o.Until) {
				o.Unavailable++
			}
			if s.Status != http.StatusOK && in(o.Start, o.Until) && s.Took > o.SlowestRefusal {
				o.SlowestRefusal = s.Took
			}
			if s.Op != opLogin {
				continue
			}
			if in(o.Start, o.Until) && s.KCStatus == "unavailable" {
				inVain = append(inVain, s.Took)
			}
			if s.Status != http.StatusOK {
				continue
			}
			switch {
			case in(p.Phases[i-1].Start, p.Phases[i-1].End):
				before = append(before, s.Took)
			case in(o.Start, o.Healed):
				during = append(during, s.Took)
				o.Logins++
				o.Modes[s.AuthMode]++
			case in(o.Healed, o.Until):
				after = append(after, s.Took)
			}
		}
		o.Before, o.During, o.After, o.InVain = latencyOf(before), latencyOf(during), latencyOf(after), latencyOf(inVain)
		for _, st := range states {
			if st.At.Before(o.Healed) || st.Err != nil {
				continue
			}
			if o.BreakerClosed < 0 && st.Breaker == breaker.StateClosed {
				o.BreakerClosed = st.At.Sub(o.Healed)
			}
			if o.Equal < 0 && st.Breaker == breaker.StateClosed && st.Unsynced == 0 && st.Queued == 0 {
				o.Equal = st.At.Sub(o.Healed)
			}
		}
		r.Outages = append(r.Outages, o)
	}
	// Alerts pair up, opened then closed, and each pair belongs to the
	// stretch of the run in which the breaker opened.
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].At.Before(alerts[j].At) })
	var open *alert
	for i := range alerts {
		a := &alerts[i]
		switch a.kind() {
		case "opened":
			r.AlertsOpened++
			if open != nil {
				r.Unpaired += fmt.Sprintf("opened at +%.1fs and again at +%.1fs without a closed; ", open.At.Sub(start).Seconds(), a.At.Sub(start).Seconds())
			}
			open = a
			if o := r.outageAt(a.At); o != nil {
				o.Opened++
			} else {
				r.StrayAlerts++
			}
		case "closed":
			r.AlertsClosed++
			if open == nil {
				r.Unpaired += fmt.Sprintf("closed at +%.1fs without an opened; ", a.At.Sub(start).Seconds())
				continue
			}
			if o := r.outageAt(open.At); o != nil {
				o.Closed++
			}
			open = nil
		}
	}
	if open != nil {
		r.Unpaired += fmt.Sprintf("opened at +%.1fs and never closed; ", open.At.Sub(start).Seconds())
	}
	return r
}

// outageAt is the outage whose fault or recovery runs at t (the last one
// extends past the load, through the drain).
func (r *report) outageAt(t time.Time) *outage {
	for i := range r.Outages {
		o := &r.Outages[i]
		if !t.Before(o.Start) && (t.Before(o.Until) || i == len(r.Outages)-1) {
			return o
		}
	}
	return nil
}

// expected says whether s got the answer its request should get from a
// healthy system.
func expected(s sample) bool {
	switch s.Op {
	case opLogin, opChange, opList:
		return s.Status == http.StatusOK
	case opWrong:
		return s.Status == http.StatusUnauthorized && s.Code == "invalid_credentials"
	case opLogout:
		return s.Status/100 == 2
	}
	return false
}

func answer(s sample) string {
	if s.Status == 0 {
		return "no answer"
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", s.Status, s.Code))
}

func phaseName(p plan, t time.Time) string {
	i := p.phaseAt(t)
	switch {
	case i < 0:
		return "after the run"
	case p.Phases[i].Fault == healthy && i > 0:
		return "recovery after " + string(p.Phases[i-1].Fault)
	}
	return string(p.Phases[i].Fault)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "not seen"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// markdown is the report as RELIABILITY.md shows it.
func (r *report) markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "Chaos run %q: %d users, %d `kcguard serve` instances + `sync run` + `cleanup run --schedule`, %s of load, %d requests.\n",
		r.Plan.Name, r.Plan.Users, fleetSize, r.Plan.Duration().Round(time.Second), r.Samples)
	fmt.Fprintf(&b, "Scaled timers: keycloak.timeout %s, failure_threshold %d, cooldown %ds, health cache %ds, visibility timeout %ds, max_receive_count %d.\n\n",
		c.Keycloak.Timeout, c.Keycloak.Resilience.FailureThreshold, c.Keycloak.Resilience.CooldownSeconds,
		c.Keycloak.Resilience.HealthCheckCacheSeconds, c.Sync.VisibilityTimeoutSeconds, c.Sync.MaxReceiveCount)
	b.WriteString("Schedule (seconds from the start of the load): ")
	for i, ph := range r.Plan.Phases {
		if ph.Fault != healthy {
			fmt.Fprintf(&b, "%s %.0f–%.0f", ph.Fault, ph.Start.Sub(r.Plan.Phases[0].Start).Seconds(), ph.End.Sub(r.Plan.Phases[0].Start).Seconds())
			if i < len(r.Plan.Phases)-2 {
				b.WriteString(", ")
			}
		}
	}
	b.WriteString("; healthy in between.\n\n")
	fmt.Fprintf(&b, "| # | fault | for | valid logins during (keycloak/cached/local) | waited for Keycloak in vain (n, p50) | changes queued | 503 answers | slowest non-200 | p50/p99 before | p50/p99 during | p50/p99 after | alerts opened/closed | heal → breaker closed | heal → Keycloak == local |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range r.Outages {
		fmt.Fprintf(&b, "| %d | %s | %.0f s | %d (%d/%d/%d) | %d, %s | %d | %d | %s | %s | %s | %s | %d/%d | %s | %s |\n",
			o.N, o.Fault, o.Healed.Sub(o.Start).Seconds(), o.Logins, o.Modes["keycloak"], o.Modes["cached"], o.Modes["local"],
			o.InVain.N, ms(o.InVain.P50), o.Queued, o.Unavailable, ms(o.SlowestRefusal), o.Before, o.During, o.After,
			o.Opened, o.Closed, dur(o.BreakerClosed), dur(o.Equal))
	}
	fmt.Fprintf(&b, "\n| assertion | result |\n|---|---|\n")
	fmt.Fprintf(&b, "| valid logins that failed (outside the moto faults; inside: not a 503 `unavailable` within %s) | %d of %d |\n",
		budget503(c), len(r.LoginFailures), r.ValidLogins)
	fmt.Fprintf(&b, "| other requests answered unexpectedly | %d |\n", len(r.OtherFailures))
	fmt.Fprintf(&b, "| password changes lost (Keycloak's direct grant after the drain) | %d of %d |\n", len(r.Lost), r.Changes)
	fmt.Fprintf(&b, "| users Keycloak's brute-force detector had locked at the end (re-checked after the lock) | %d |\n", r.KeycloakLocked)
	fmt.Fprintf(&b, "| password changes answered 503 / not at all that had taken effect | %d |\n", r.Unclear)
	fmt.Fprintf(&b, "| DLQ messages after the run | %d |\n", r.DLQ)
	fmt.Fprintf(&b, "| breaker alerts opened / closed (SNS → SQS subscription) | %d / %d |\n", r.AlertsOpened, r.AlertsClosed)
	fmt.Fprintf(&b, "| breaker opened outside every fault (Keycloak slow by itself) | %d |\n", r.StrayAlerts)
	fmt.Fprintf(&b, "| end of load → Keycloak == local | %s%s |\n", dur(r.DrainTook), map[bool]string{true: "", false: " (not reached)"}[r.Drained])
	return b.String()
}
