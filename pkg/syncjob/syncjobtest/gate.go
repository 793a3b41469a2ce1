// Package syncjobtest holds test helpers for the sync path: a Keycloak
// admin whose password import can be held back, to force the interleavings
// of issue 11 (finding 2) against the fake and the real Keycloak alike.
package syncjobtest

import (
	"context"
	"sync"

	"github.com/kcguard/kcguard/pkg/credential"
	"github.com/kcguard/kcguard/pkg/syncjob"
)

// GatedAdmin holds back the import of one chosen hash until Release: the
// import has been decided (the sync read the user) but lands only later,
// after a newer sync finished.
type GatedAdmin struct {
	syncjob.KeycloakAdmin

	mu       sync.Mutex
	hold     string // SecretData of the hash to hold back; anyHash: the next import
	arrived  chan struct{}
	release  chan struct{}
	imported []string // SecretData of every import, in landing order
}

// Gate wraps next.
func Gate(next syncjob.KeycloakAdmin) *GatedAdmin { return &GatedAdmin{KeycloakAdmin: next} }

// Hold makes the next import of h wait for Release. Arrived is closed when
// that import has reached the gate.
func (g *GatedAdmin) Hold(h credential.Hash) (arrived <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.arrived, g.release = h.SecretData(), make(chan struct{}), make(chan struct{})
	return g.arrived
}

// HoldNext is Hold for whatever import comes next.
func (g *GatedAdmin) HoldNext() (arrived <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.arrived, g.release = anyHash, make(chan struct{}), make(chan struct{})
	return g.arrived
}

const anyHash = "*"

// Release lets the held import through.
func (g *GatedAdmin) Release() { close(g.release) }

// Imported lists the SecretData of the hashes imported so far, in order.
func (g *GatedAdmin) Imported() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.imported...)
}

// ImportPasswordHash implements syncjob.KeycloakAdmin.
func (g *GatedAdmin) ImportPasswordHash(ctx context.Context, pkg, id string, h credential.Hash) error {
	g.mu.Lock()
	held := g.hold == anyHash || g.hold != "" && h.SecretData() == g.hold
	if held {
		g.hold = ""
		close(g.arrived)
	}
	release := g.release
	g.mu.Unlock()
	if held {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := g.KeycloakAdmin.ImportPasswordHash(ctx, pkg, id, h)
	if err == nil {
		g.mu.Lock()
		g.imported = append(g.imported, h.SecretData())
		g.mu.Unlock()
	}
	return err
}
