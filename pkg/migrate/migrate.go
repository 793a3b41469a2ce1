// Package migrate provisions local users into Keycloak: in pages, with
// bounded concurrency and a rate limit, importing their password hashes (no
// plaintext), idempotently. Each user goes through the sync's own Applier,
// so a migrated user is created if missing, updated if present (never
// duplicated) and marked synced; a second run finds nothing to do.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/syncjob"
	"github.com/kcguard/kcguard/pkg/users"
)

// Users lists the local users of a package.
type Users interface {
	List(ctx context.Context, pkg string, f users.Filter, limit int, cursor string) ([]users.User, string, error)
}

// Applier brings Keycloak to a user's local state (*syncjob.Applier).
type Applier interface {
	Sync(ctx context.Context, j syncjob.Job) (syncjob.Report, error)
}

// Finder looks users up in Keycloak (dry runs only read).
type Finder interface {
	FindUser(ctx context.Context, pkg, username string) (keycloak.User, error)
}

// Result is what happened to one user.
type Result string

const (
	Created Result = "created"
	Updated Result = "updated"
	Skipped Result = "skipped"
	Failed  Result = "failed"
)

// UserResult is one user's outcome, as the CLI prints it.
type UserResult struct {
	Username string `json:"username"`
	Result   Result `json:"result"`
	Reason   string `json:"reason,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
}

// Summary counts a run.
type Summary struct {
	Package  string        `json:"package"`
	DryRun   bool          `json:"dry_run"`
	Where    string        `json:"where"`
	Total    int           `json:"total"`
	Created  int           `json:"created"`
	Updated  int           `json:"updated"`
	Skipped  int           `json:"skipped"`
	Failed   int           `json:"failed"`
	Duration time.Duration `json:"duration_ns"`
}

func (s *Summary) add(r Result) {
	s.Total++
	switch r {
	case Created:
		s.Created++
	case Updated:
		s.Updated++
	case Skipped:
		s.Skipped++
	default:
		s.Failed++
	}
}

// Defaults for Settings (also the defaults of `kcguard migrate`'s flags).
const (
	DefaultPageSize    = 100
	DefaultConcurrency = 4
)

// Settings tune a run. Zero values take the defaults noted.
type Settings struct {
	// PageSize is how many users one List call reads (default
	// DefaultPageSize).
	PageSize int
	// Concurrency bounds parallel Keycloak provisioning (default
	// DefaultConcurrency).
	Concurrency int
	// Rate bounds users provisioned per second (default 0: unlimited).
	Rate float64
	// DryRun reads Keycloak to say what would happen and writes nothing.
	DryRun bool
}

// Migrator provisions one package's users.
type Migrator struct {
	Users    Users
	Applier  Applier
	Keycloak Finder
	Settings Settings
	// OnUser, if set, is called after each user (from one goroutine at a time).
	OnUser func(UserResult, Summary)
	Now    func() time.Time
}

// Count counts the users a run would visit (for a progress bar's total).
func (m *Migrator) Count(ctx context.Context, pkg string, w Where) (int, error) {
	n := 0
	err := m.each(ctx, pkg, w, func(users.User) error { n++; return nil })
	return n, err
}

func (m *Migrator) each(ctx context.Context, pkg string, w Where, fn func(users.User) error) error {
	page := m.Settings.PageSize
	if page <= 0 {
		page = DefaultPageSize
	}
	f := w.StoreFilter()
	for cursor := ""; ; {
		us, next, err := m.Users.List(ctx, pkg, f, page, cursor)
		if err != nil {
			return fmt.Errorf("list users of %s: %w", pkg, err)
		}
		for _, u := range us {
			if !w.Match(u) {
				continue
			}
			if err := fn(u); err != nil {
				return err
			}
		}
		if cursor = next; next == "" {
			return nil
		}
	}
}

// Run provisions every matching user of pkg. A user that fails is counted
// and the run goes on; the returned error is for the run itself (listing
// failed, or ctx ended).
func (m *Migrator) Run(ctx context.Context, pkg string, w Where) (Summary, error) {
	start := time.Now()
	sum := Summary{Package: pkg, DryRun: m.Settings.DryRun, Where: w.String()}
	workers := m.Settings.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	var tick <-chan time.Time
	if m.Settings.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / m.Settings.Rate))
		defer t.Stop()
		tick = t.C
	}
	todo := make(chan users.User)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range todo {
				r := m.one(ctx, u)
				mu.Lock()
				sum.add(r.Result)
				if m.OnUser != nil {
					m.OnUser(r, sum)
				}
				mu.Unlock()
			}
		}()
	}
	err := m.each(ctx, pkg, w, func(u users.User) error {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case todo <- u:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(todo)
	wg.Wait()
	sum.Duration = time.Since(start)
	return sum, err
}

func (m *Migrator) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// one provisions (or, in a dry run, assesses) one user.
func (m *Migrator) one(ctx context.Context, u users.User) UserResult {
	r := UserResult{Username: u.Username, DryRun: m.Settings.DryRun}
	hash, err := u.Hash.Verifier()
	if err != nil {
		r.Result, r.Reason = Skipped, "no importable local password hash"
		return r
	}
	if m.Settings.DryRun {
		return m.assess(ctx, u, r)
	}
	j := syncjob.New(syncjob.ProvisionUser, u.Package, u.Username, u.Version, m.now())
	j.Hash = &hash
	rep, err := m.Applier.Sync(ctx, j)
	switch {
	case err != nil:
		r.Result, r.Reason = Failed, err.Error()
	case rep.Result == syncjob.Superseded:
		r.Result, r.Reason = Skipped, rep.Reason
	case rep.Created:
		r.Result = Created
		if u.Email == "" {
			// Keycloak 24+'s default user profile requires an e-mail: such
			// a user gets VERIFY_PROFILE and password grants fail with
			// "Account is not fully set up" until the profile is completed.
			r.Reason = "created without an e-mail; the realm's user profile may require one before password grants work"
		}
	default:
		r.Result = Updated
		if rep.Conflict != "" {
			r.Reason = "keycloak password was newer: " + string(rep.Conflict)
		}
	}
	return r
}

func (m *Migrator) assess(ctx context.Context, u users.User, r UserResult) UserResult {
	if !u.Unsynced() {
		r.Result, r.Reason = Skipped, fmt.Sprintf("keycloak already has version %d", u.KeycloakSyncedVersion)
		return r
	}
	_, err := m.Keycloak.FindUser(ctx, u.Package, u.Username)
	switch {
	case errors.Is(err, keycloak.ErrNotFound):
		r.Result = Created
	case err != nil:
		r.Result, r.Reason = Failed, err.Error()
	default:
		r.Result = Updated
	}
	return r
}

// Status is where a package's migration stands.
type Status struct {
	Package string `json:"package"`
	Where   string `json:"where"`
	// Users is how many local users match; Synced of them Keycloak has at
	// their current version; Pending still need provisioning or a sync.
	Users, Synced, Pending int
	// Unmigrated have never reached Keycloak (no Keycloak id).
	Unmigrated int
}

// StatusOf reads where pkg's migration stands (local data only).
func (m *Migrator) StatusOf(ctx context.Context, pkg string, w Where) (Status, error) {
	st := Status{Package: pkg, Where: w.String()}
	err := m.each(ctx, pkg, w, func(u users.User) error {
		st.Users++
		if u.Unsynced() {
			st.Pending++
		} else {
			st.Synced++
		}
		if u.KeycloakID == "" {
			st.Unmigrated++
		}
		return nil
	})
	return st, err
}
