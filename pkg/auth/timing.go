package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/credential"
)

// checkCosts learns what one password check costs for each kind of stored
// hash (algorithm and parameters) and pads every failed check up to the
// dearest kind seen, so a wrong password costs the same whether the user
// exists and whatever algorithm their hash uses: after an algorithm change
// or an import, pbkdf2-sha512 210k users (~220 ms) and unknown usernames
// (the configured argon2 dummy, ~22 ms) are otherwise told apart by time.
//
// Costs are moving averages, so one stall (GC, a noisy neighbour) does not
// set the pace for good. Successful checks are not padded: their timing
// tells nothing an attacker does not already learn from the answer.
type checkCosts struct {
	mu   sync.Mutex
	cost map[string]time.Duration
}

// costWeight is the moving average's weight of a new observation (1/8).
const costWeight = 8

func (c *checkCosts) observe(kind string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cost == nil {
		c.cost = map[string]time.Duration{}
	}
	old, ok := c.cost[kind]
	if !ok {
		c.cost[kind] = d
		return
	}
	c.cost[kind] = old + (d-old)/costWeight
}

// padding is how long a failed check that took elapsed must still wait.
func (c *checkCosts) padding(elapsed time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dearest time.Duration
	for _, d := range c.cost {
		dearest = max(dearest, d)
	}
	return max(dearest-elapsed, 0)
}

// hashKind names a stored hash's cost class; paramsKind the same class for
// the hasher's own parameters (the dummy check of unknown users).
func hashKind(h credential.Hash) string {
	return fmt.Sprintf("%s/%d/%d/%d", h.Algorithm, h.Iterations, h.Argon2MemoryKiB, h.Argon2Parallelism)
}

func paramsKind(p credential.Params) string {
	return fmt.Sprintf("%s/%d/%d/%d", p.Algorithm, p.Iterations, p.Argon2MemoryKiB, p.Argon2Parallelism)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
