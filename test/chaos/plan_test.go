package chaos

import (
	"os"
	"time"

	"github.com/kcguard/kcguard/internal/testenv"
)

// fault is what toxiproxy does to one path during a phase.
type fault string

const (
	healthy       fault = "healthy"
	kcCut         fault = "keycloak cut"       // proxy disabled: connection refused
	kcBlackhole   fault = "keycloak blackhole" // timeout toxic: connects, never answers
	kcSlow        fault = "keycloak slow"      // latency toxic past keycloak.timeout
	kcFlap        fault = "keycloak flapping"  // up one second, down the next
	kcReset       fault = "keycloak reset"     // reset_peer toxic: every connection reset
	kcLong        fault = "keycloak long outage"
	motoCut       fault = "moto cut"       // DynamoDB/SQS/KMS/SNS refuse connections
	motoBlackhole fault = "moto blackhole" // DynamoDB/SQS/... accept and never answer
)

// onMoto says which proxy a fault acts on.
func (f fault) onMoto() bool { return f == motoCut || f == motoBlackhole }

// phase is one stretch of the run: a fault (or none) for a while.
type phase struct {
	Fault fault
	Dur   time.Duration
	// Outage numbers the faults in order (1, 2, ...); 0 for healthy phases.
	Outage int
	// Start and End are set when the phase runs.
	Start, End time.Time
}

// plan is the fixed schedule of one run and the scaled timers it runs with.
type plan struct {
	Name   string
	Users  int
	Phases []phase
	// Think is the pause between two requests of one simulated user.
	Think time.Duration
	// Flap is the half-period of the flapping fault.
	Flap time.Duration
}

// planOf picks the run: the short one inside `make test`, the full five
// minutes with KCGUARD_CHAOS=full (`make chaos`). Every fault is followed by
// a healthy stretch, so "before", "during" and "after" each outage are
// measured; the long outage lasts several times visibility timeout ×
// max_receive_count, which dead-letters every queued change unless the
// sync pauses while the breaker is open.
func planOf() plan {
	type step struct {
		f            fault
		dur, recover float64 // seconds
	}
	// A blackhole or slow Keycloak fails a grant only after keycloak.timeout
	// (3s), so those faults last two timeouts for the fleet to count
	// failure_threshold failures in a row. The long outage comes last: after it the breaker's probe back-off
	// (cooldown × 2ⁿ) is longest, and the drain that follows the load is
	// its recovery.
	short := []step{
		{kcCut, 3, 5}, {kcBlackhole, 6, 5}, {kcSlow, 5, 5}, {kcFlap, 4, 5}, {kcReset, 3, 5},
		{motoCut, 3, 4}, {motoBlackhole, 3, 4}, {kcLong, 8, 5},
	}
	// Think times keep the fleet, Keycloak and moto below saturation on a
	// shared 2-core machine: the run measures faults, not CPU starvation.
	p := plan{Name: "short", Users: 40, Think: 2 * time.Second, Flap: time.Second}
	baseline, scale := 3.0, 1.0
	if os.Getenv("KCGUARD_CHAOS") == "full" {
		// 200 users at ten requests a second in all (RELIABILITY.md, finding 11).
		p = plan{Name: "full", Users: 200, Think: 20 * time.Second, Flap: time.Second}
		baseline, scale = 15, 4.0
	}
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	p.Phases = append(p.Phases, phase{Fault: healthy, Dur: sec(baseline)})
	for i, s := range short {
		p.Phases = append(p.Phases,
			phase{Fault: s.f, Dur: sec(s.dur * scale), Outage: i + 1},
			phase{Fault: healthy, Dur: sec(s.recover * scale)})
	}
	return p
}

// Duration is the length of the load run.
func (p plan) Duration() time.Duration {
	var d time.Duration
	for _, ph := range p.Phases {
		d += ph.Dur
	}
	return d
}

// apply puts f on the proxies; heal removes it. Both run on the test's
// goroutine (toxiproxy errors fail the test).
func apply(f fault, kc, moto *testenv.Proxy) {
	switch f {
	case kcCut, kcLong:
		kc.Disable()
	case kcBlackhole:
		kc.Blackhole()
	case kcSlow:
		kc.Latency(6000) // past keycloak.timeout (3s in the run)
	case kcReset:
		kc.ResetPeer()
	case kcFlap:
		kc.Disable() // the schedule toggles it every plan.Flap
	case motoCut:
		moto.Disable()
	case motoBlackhole:
		moto.Blackhole()
	}
}

// run plays the schedule on the test goroutine, recording when each phase
// started and ended.
func (p *plan) run(kc, moto *testenv.Proxy) {
	for i := range p.Phases {
		ph := &p.Phases[i]
		ph.Start = time.Now()
		apply(ph.Fault, kc, moto)
		end := ph.Start.Add(ph.Dur)
		if ph.Fault == kcFlap {
			up := false
			for t := ph.Start.Add(p.Flap); t.Before(end); t = t.Add(p.Flap) {
				time.Sleep(time.Until(t))
				if up = !up; up {
					kc.Enable()
				} else {
					kc.Disable()
				}
			}
		}
		time.Sleep(time.Until(end))
		if ph.Fault.onMoto() {
			moto.Heal()
		} else if ph.Fault != healthy {
			kc.Heal()
		}
		ph.End = time.Now()
	}
}

// phaseAt is the index of the phase running at t (-1 outside the run).
func (p plan) phaseAt(t time.Time) int {
	for i, ph := range p.Phases {
		if !t.Before(ph.Start) && t.Before(ph.End) {
			return i
		}
	}
	return -1
}
