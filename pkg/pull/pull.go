// Package pull brings what Keycloak decided about users into the local store
// without waiting for them to log in: disable/enable, deletion, password
// resets made in Keycloak (the local hash becomes stale) and required
// actions. It is the scheduled half of the authority rule: Keycloak is
// authoritative for every decision an administrator or Keycloak itself
// makes, and kcguard must know them before the next outage, when it can no
// longer ask.
//
// Each run reads the realm's admin events (resource type USER) and user
// events (UPDATE_PASSWORD, RESET_PASSWORD, UPDATE_CREDENTIAL, ...) since a
// persisted cursor, and refreshes every user they name from Keycloak's
// current representation, so the order of events and their duplicates do
// not matter. When the events cannot be trusted to be complete (first run,
// events off in the realm, a cursor older than MaxGap, too many events) it
// compares every user page by page instead: never a silent gap.
//
// Nothing here ever queues a sync: the pull only records Keycloak's facts,
// and recording them does not raise a user's Version.
package pull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/userkey"
	"github.com/kcguard/kcguard/pkg/users"
)

// Keycloak is what the pull reads from Keycloak (*keycloak.Client).
type Keycloak interface {
	AdminEvents(ctx context.Context, pkg string, q keycloak.EventQuery) ([]keycloak.AdminEvent, error)
	UserEvents(ctx context.Context, pkg string, q keycloak.EventQuery) ([]keycloak.UserEvent, error)
	ListUsers(ctx context.Context, pkg string, first, max int) ([]keycloak.User, error)
	GetUser(ctx context.Context, pkg, id string) (keycloak.User, error)
	PasswordCredentialCreatedAt(ctx context.Context, pkg, userID string) (time.Time, error)
	ServiceAccountUserID(ctx context.Context, pkg string) (string, error)
	GetEventsConfig(ctx context.Context, pkg string) (keycloak.EventsConfig, error)
}

var _ Keycloak = (*keycloak.Client)(nil)

// Users is the part of the local store the pull changes.
type Users interface {
	Get(ctx context.Context, key userkey.Key) (users.User, error)
	ApplyVerdict(ctx context.Context, key userkey.Key, expectedVersion int64, v users.Verdict) (users.User, error)
	Delete(ctx context.Context, key userkey.Key) error
	List(ctx context.Context, pkg string, f users.Filter, limit int, cursor string) ([]users.User, string, error)
}

// Breaker is the fleet's view of Keycloak's health (*breaker.Breaker).
type Breaker interface {
	State(ctx context.Context) breaker.Status
}

// Sessions ends the sessions of a user Keycloak disabled or deleted, or
// whose password it reset. Optional.
type Sessions interface {
	RevokeAllForUser(ctx context.Context, pkg, username string, now time.Time) (int, error)
}

// CredentialEventTypes are the user events that change a password in
// Keycloak (the user's own account console, a reset e-mail, a required
// action). UPDATE_CREDENTIAL replaces UPDATE_PASSWORD in newer Keycloaks.
var CredentialEventTypes = []string{"UPDATE_PASSWORD", "RESET_PASSWORD", "UPDATE_CREDENTIAL", "REMOVE_CREDENTIAL"}

// UserEventTypes are the user events the pull reads: the credential ones,
// and Keycloak's own permanent brute-force lockout, which disables the user
// without an admin event. (A temporary lockout ends by itself; a login
// asks Keycloak about it.)
var UserEventTypes = append(slices.Clone(CredentialEventTypes), "USER_DISABLED_BY_PERMANENT_LOCKOUT")

// Defaults for Settings; the pull section's defaults (config.Default) are
// these.
const (
	DefaultPageSize       = 100
	DefaultOverlap        = time.Minute
	DefaultMaxGap         = time.Hour
	DefaultCompareEvery   = 24 * time.Hour
	DefaultMaxEvents      = 10_000
	DefaultConcurrency    = 8
	DefaultOwnChangeSlack = 5 * time.Second
)

// Settings bound a run. Zero values take the Default* constants.
type Settings struct {
	// PageSize of event and user pages. Zero means 100.
	PageSize int
	// Overlap re-reads this much before the cursor, so an event stamped
	// just before the previous run but committed after it is not missed.
	// Re-reading is harmless: applying a user's current state is
	// idempotent. Zero means 1 minute.
	Overlap time.Duration
	// MaxGap is the oldest cursor the events are trusted for: older, and
	// events may have expired in Keycloak (adminEventsExpiration), so the
	// run compares every user instead. Keep it below the realm's event
	// expiration. Zero means 1 hour.
	MaxGap time.Duration
	// CompareEvery forces a full page compare this often even when events
	// are complete, which also confirms users no event named. Zero means 24 hours.
	CompareEvery time.Duration
	// MaxEvents per run and package; more than this and the run compares
	// every user instead. Zero means 10,000.
	MaxEvents int
	// Concurrency bounds the users refreshed from Keycloak at once. Zero
	// means 8.
	Concurrency int
	// OwnChangeSlack is how close a Keycloak password's createdDate must be
	// to one of kcguard's own credential admin events to count as kcguard's
	// sync (page compare only). Zero means 5 seconds.
	OwnChangeSlack time.Duration
}

func (s Settings) withDefaults() Settings {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if s.PageSize <= 0 {
		s.PageSize = DefaultPageSize
	}
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.MaxEvents <= 0 {
		s.MaxEvents = DefaultMaxEvents
	}
	def(&s.Overlap, DefaultOverlap)
	def(&s.MaxGap, DefaultMaxGap)
	def(&s.CompareEvery, DefaultCompareEvery)
	def(&s.OwnChangeSlack, DefaultOwnChangeSlack)
	return s
}

// Puller runs the pull for every package.
type Puller struct {
	Keycloak Keycloak
	Users    Users
	Cursors  CursorStore
	Sessions Sessions // optional
	// Breaker, if set, skips the run while it is not closed: Keycloak is
	// down or recovering, and the cursor waits (a long outage ends in a
	// compare, as the cursor is then older than MaxGap).
	Breaker  Breaker
	Packages []string
	Settings Settings
	Log      *slog.Logger
}

// Mode says how a package was pulled.
type Mode string

// Modes.
const (
	ModeEvents  Mode = "events"
	ModeCompare Mode = "compare"
)

// Result is one package's run.
type Result struct {
	Package string `json:"package"`
	Mode    Mode   `json:"mode"` // "" when skipped
	// Reason a compare ran instead of the events, or the run was skipped.
	Reason      string   `json:"reason,omitempty"`
	AdminEvents int      `json:"admin_events"`
	UserEvents  int      `json:"user_events"`
	Checked     int      `json:"checked"`   // local users compared with Keycloak
	Confirmed   int      `json:"confirmed"` // local users whose state was recorded
	Disabled    int      `json:"disabled"`
	Enabled     int      `json:"enabled"`
	Deleted     int      `json:"deleted"`
	Stale       int      `json:"stale"`
	ActionsSet  int      `json:"actions_changed"`
	Revoked     int      `json:"sessions_revoked"`
	Unknown     int      `json:"unknown"` // Keycloak users kcguard does not have (learnt on login)
	Malformed   []string `json:"malformed,omitempty"`
	DurationMS  int64    `json:"duration_ms"`
	Error       string   `json:"error,omitempty"`
}

// Run pulls every package at now. A package that fails does not stop the
// others; the error joins every package's failure.
func (p *Puller) Run(ctx context.Context, now time.Time) ([]Result, error) {
	var errs []error
	out := make([]Result, 0, len(p.Packages))
	for _, pkg := range p.Packages {
		r, err := p.Package(ctx, pkg, now)
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, fmt.Errorf("pull %s: %w", pkg, err))
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func (p *Puller) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return p.Log
}

// Package pulls one package. The cursor moves only when the run succeeded,
// so a failed run is repeated, never skipped.
func (p *Puller) Package(ctx context.Context, pkg string, now time.Time) (r Result, err error) {
	start := time.Now()
	s := p.Settings.withDefaults()
	r.Package = pkg
	defer func() { r.DurationMS = time.Since(start).Milliseconds() }()
	if p.Breaker != nil {
		if st := p.Breaker.State(ctx); st.State != breaker.StateClosed && st.State != breaker.StateDisabled {
			r.Reason = "skipped: breaker " + string(st.State)
			return r, nil
		}
	}
	cur, err := p.Cursors.Get(ctx, pkg)
	if err != nil {
		return r, err
	}
	self, err := p.Keycloak.ServiceAccountUserID(ctx, pkg)
	if err != nil {
		return r, err
	}
	run := &run{p: p, s: s, pkg: pkg, now: now, self: self, r: &r}

	reason := ""
	ec, err := p.Keycloak.GetEventsConfig(ctx, pkg)
	switch {
	case err != nil:
		return r, fmt.Errorf("read events config (the service account needs view-events): %w", err)
	case !ec.AdminEventsEnabled || !ec.AdminEventsDetailsEnabled:
		reason = "admin events (with details) are off in the realm"
	case !ec.EventsEnabled || !coversTypes(ec.EnabledEventTypes):
		reason = "user events for password changes are off in the realm"
	case cur.Through.IsZero():
		reason = "first run"
	case ec.EventsExpiration > 0 && now.Sub(cur.Through) > time.Duration(ec.EventsExpiration)*time.Second:
		reason = fmt.Sprintf("cursor %s is older than the realm keeps user events (%ds)", cur.Through.Format(time.RFC3339), ec.EventsExpiration)
	case now.Sub(cur.Through) > s.MaxGap:
		reason = fmt.Sprintf("cursor %s is older than the %s events are trusted for", cur.Through.Format(time.RFC3339), s.MaxGap)
	case now.Sub(cur.LastCompare) > s.CompareEvery:
		reason = fmt.Sprintf("last full compare over %s ago", s.CompareEvery)
	}
	if reason == "" {
		complete, err := run.events(ctx, cur.Through.Add(-s.Overlap))
		if err != nil {
			return r, err
		}
		if !complete {
			reason = fmt.Sprintf("more than %d events since the cursor", s.MaxEvents)
		}
	}
	next := Cursor{Through: now, LastCompare: cur.LastCompare}
	if reason != "" {
		r.Mode, r.Reason = ModeCompare, reason
		if err := run.compare(ctx, ec.AdminEventsEnabled); err != nil {
			return r, err
		}
		next.LastCompare = now
	} else {
		r.Mode = ModeEvents
	}
	if err := p.Cursors.Put(ctx, pkg, next); err != nil {
		return r, err
	}
	p.log().InfoContext(ctx, "keycloak pull", "package", pkg, "mode", r.Mode, "reason", r.Reason,
		"admin_events", r.AdminEvents, "user_events", r.UserEvents, "checked", r.Checked,
		"disabled", r.Disabled, "enabled", r.Enabled, "deleted", r.Deleted, "stale", r.Stale,
		"malformed", len(r.Malformed), "duration_ms", time.Since(start).Milliseconds())
	return r, nil
}

func coversTypes(enabled []string) bool {
	// Keycloak stores an empty list as "every type".
	if len(enabled) == 0 {
		return true
	}
	return slices.Contains(enabled, "UPDATE_PASSWORD") || slices.Contains(enabled, "UPDATE_CREDENTIAL")
}

// run is one package's pull.
type run struct {
	p    *Puller
	s    Settings
	pkg  string
	now  time.Time
	self string // kcguard's service account: its changes are kcguard's own
	r    *Result
	mu   sync.Mutex // guards r

	// By Keycloak user id: when someone other than kcguard last changed
	// the password, and when kcguard's own sync did.
	othersCred map[string]time.Time
	ownCred    map[string][]time.Time
}

// touched is what the events say about one Keycloak user beyond its id.
type touched struct {
	username string // from a DELETE event's representation
}

// events applies the events since from. It reports false, having changed
// nothing, when there are more than MaxEvents of them.
func (x *run) events(ctx context.Context, from time.Time) (bool, error) {
	x.othersCred, x.ownCred = map[string]time.Time{}, map[string][]time.Time{}
	named := map[string]*touched{}
	order := []string{}
	touch := func(id string) *touched {
		t, ok := named[id]
		if !ok {
			t = &touched{}
			named[id] = t
			order = append(order, id)
		}
		return t
	}
	admin, complete, err := pages(ctx, x.s, func(first int) ([]keycloak.AdminEvent, error) {
		return x.p.Keycloak.AdminEvents(ctx, x.pkg, keycloak.EventQuery{From: from, First: first, Max: x.s.PageSize})
	})
	if err != nil || !complete {
		return false, err
	}
	user, complete, err := pages(ctx, x.s, func(first int) ([]keycloak.UserEvent, error) {
		return x.p.Keycloak.UserEvents(ctx, x.pkg, keycloak.EventQuery{From: from, First: first, Max: x.s.PageSize, Types: UserEventTypes})
	})
	if err != nil || !complete {
		return false, err
	}
	x.r.AdminEvents, x.r.UserEvents = len(admin), len(user)
	for _, e := range admin {
		id := e.UserID()
		if id == "" || e.Time.IsZero() || e.OperationType == "" {
			x.malformed("admin event %q: no user, time or operation (resource path %q)", e.ID, e.ResourcePath)
			continue
		}
		t := touch(id)
		if e.OperationType == "DELETE" && e.SubResource() == "" {
			var rep struct {
				Username string `json:"username"`
			}
			if err := json.Unmarshal([]byte(e.Representation), &rep); err == nil {
				t.username = rep.Username
			}
		}
		x.attribute(e)
	}
	for _, e := range user {
		if e.UserID == "" || e.Time.IsZero() {
			x.malformed("user event %q (%s): no user or time", e.ID, e.Type)
			continue
		}
		touch(e.UserID)
		if slices.Contains(CredentialEventTypes, e.Type) {
			// The user acting in Keycloak: never kcguard's sync.
			x.credential(e.UserID, e.UserID, e.Time)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(x.s.Concurrency)
	for _, id := range order {
		t := named[id]
		g.Go(func() error { return x.refresh(gctx, id, t) })
	}
	return true, g.Wait()
}

// pages reads pages until a short one. Past MaxEvents it stops and reports
// false with what it read (Keycloak's newest first).
func pages[T any](ctx context.Context, s Settings, page func(first int) ([]T, error)) ([]T, bool, error) {
	var all []T
	for first := 0; ; first += s.PageSize {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		p, err := page(first)
		if err != nil {
			return nil, false, err
		}
		all = append(all, p...)
		if len(all) > s.MaxEvents {
			return all, false, nil
		}
		if len(p) < s.PageSize {
			return all, true, nil
		}
	}
}

// attribute records who changed a user's password. Keycloak strips
// credentials from the representation of admin events, so a user CREATE or
// UPDATE by kcguard's own service account (its sync imports hashes that
// way) counts as a possible own credential change; an administrator's
// reset is the reset-password action or a change below credentials/.
// Anything else is caught by comparing the password's createdDate.
func (x *run) attribute(e keycloak.AdminEvent) {
	id, sub := e.UserID(), e.SubResource()
	switch {
	case id == "":
	case e.ActorUserID == x.self && sub == "" && (e.OperationType == "CREATE" || e.OperationType == "UPDATE"):
		x.ownCred[id] = append(x.ownCred[id], e.Time)
	case sub == "reset-password", strings.HasPrefix(sub, "credentials"):
		x.credential(id, e.ActorUserID, e.Time)
	}
}

func (x *run) credential(id, actor string, at time.Time) {
	if actor != "" && actor == x.self {
		x.ownCred[id] = append(x.ownCred[id], at)
		return
	}
	if at.After(x.othersCred[id]) {
		x.othersCred[id] = at
	}
}

// verdict is Keycloak's state of a user as the pull records it.
func verdict(kc keycloak.User, stale bool, now time.Time) users.Verdict {
	actions := kc.RequiredActions
	if actions == nil {
		actions = []string{} // none: clear the stored list
	}
	return users.Verdict{Enabled: &kc.Enabled, HashStale: &stale, RequiredActions: actions, ConfirmedAt: now}
}

// count changes the result under the run's lock: users are refreshed
// concurrently.
func (x *run) count(f func(r *Result)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	f(x.r)
}

func (x *run) malformed(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	x.count(func(r *Result) { r.Malformed = append(r.Malformed, msg) })
	x.p.log().Warn("keycloak pull: malformed event skipped", "package", x.pkg, "detail", msg)
}

// refresh brings one user named by events up to Keycloak's current state.
func (x *run) refresh(ctx context.Context, id string, t *touched) error {
	kc, err := x.p.Keycloak.GetUser(ctx, x.pkg, id)
	if errors.Is(err, keycloak.ErrNotFound) {
		return x.deleteByID(ctx, id, t.username)
	}
	if err != nil {
		return err
	}
	return x.apply(ctx, kc)
}

func (x *run) local(ctx context.Context, username string) (users.User, error) {
	key, err := userkey.New(x.pkg, username)
	if err != nil {
		return users.User{}, err
	}
	return x.p.Users.Get(ctx, key)
}

// record stores Keycloak's state of one user, retrying once if a login or
// password change moved the user's version meanwhile.
func (x *run) record(ctx context.Context, local users.User, kc keycloak.User, stale bool) error {
	x.count(func(r *Result) { r.Checked++ })
	for attempt := 0; ; attempt++ {
		_, err := x.p.Users.ApplyVerdict(ctx, local.Key(), local.Version, verdict(kc, stale, x.now))
		if errors.Is(err, users.ErrVersionConflict) && attempt == 0 {
			if local, err = x.p.Users.Get(ctx, local.Key()); err != nil {
				return err
			}
			// A password changed through kcguard after the Keycloak change
			// is kcguard's newer fact: not stale by this pull.
			stale = local.HashStale || (stale && !local.Unsynced())
			continue
		}
		if errors.Is(err, users.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		break
	}
	revoke := false
	x.count(func(r *Result) {
		r.Confirmed++
		if local.Enabled && !kc.Enabled {
			r.Disabled++
			revoke = true
		}
		if !local.Enabled && kc.Enabled {
			r.Enabled++
		}
		if stale && !local.HashStale {
			r.Stale++
			revoke = true
		}
		if !slices.Equal(local.RequiredActions, kc.RequiredActions) {
			r.ActionsSet++
		}
	})
	if revoke {
		x.revoke(ctx, local)
	}
	return nil
}

func (x *run) revoke(ctx context.Context, u users.User) {
	if x.p.Sessions == nil {
		return
	}
	n, err := x.p.Sessions.RevokeAllForUser(ctx, u.Package, u.Username, x.now)
	if err != nil {
		// The user is already refused at login; a session left running
		// ends with its idle timeout. Not worth failing the pull for.
		x.p.log().WarnContext(ctx, "keycloak pull: revoke sessions", "package", u.Package, "username", u.Username, "err", err)
		return
	}
	x.count(func(r *Result) { r.Revoked += n })
}

// deleteByID removes the local user of a Keycloak account that is gone.
// username comes from the DELETE event when there was one; without it the
// package's users are scanned for the id.
func (x *run) deleteByID(ctx context.Context, id, username string) error {
	if username != "" {
		if u, err := x.local(ctx, username); err == nil && (u.KeycloakID == id || u.KeycloakID == "") {
			return x.delete(ctx, u)
		}
	}
	cursor := ""
	for {
		page, next, err := x.p.Users.List(ctx, x.pkg, users.Filter{}, x.s.PageSize, cursor)
		if err != nil {
			return err
		}
		for _, u := range page {
			if u.KeycloakID == id {
				return x.delete(ctx, u)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

func (x *run) delete(ctx context.Context, u users.User) error {
	if err := x.p.Users.Delete(ctx, u.Key()); err != nil && !errors.Is(err, users.ErrNotFound) {
		return err
	}
	x.count(func(r *Result) { r.Deleted++ })
	x.revoke(ctx, u)
	return nil
}

// compare walks every Keycloak user and every local user of the package.
// kcguard's own credential changes are recognised by its admin events,
// when the realm still holds them; a Keycloak password newer than the
// local one that no own event explains marks the hash stale (fail closed:
// the user's next online login learns the password again).
func (x *run) compare(ctx context.Context, adminEvents bool) error {
	x.othersCred, x.ownCred = map[string]time.Time{}, map[string][]time.Time{}
	local, err := x.localUsers(ctx)
	if err != nil {
		return err
	}
	if adminEvents && len(local) > 0 {
		// Attribution only needs the events since the oldest fact the
		// compare weighs them against (newest first; an incomplete list
		// fails closed).
		since := x.now
		for _, u := range local {
			since = minTime(since, maxTime(u.PasswordChangedAt, u.KeycloakConfirmedAt))
		}
		evs, _, err := pages(ctx, x.s, func(first int) ([]keycloak.AdminEvent, error) {
			return x.p.Keycloak.AdminEvents(ctx, x.pkg, keycloak.EventQuery{From: since.Add(-x.s.Overlap), First: first, Max: x.s.PageSize})
		})
		if err != nil {
			return err
		}
		for _, e := range evs {
			x.attribute(e)
		}
	}
	inKeycloak := map[string]bool{}
	for first := 0; ; first += x.s.PageSize {
		page, err := x.p.Keycloak.ListUsers(ctx, x.pkg, first, x.s.PageSize)
		if err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(x.s.Concurrency)
		for _, kc := range page {
			inKeycloak[kc.ID] = true
			if _, known := local[userkey.NormalizeUsername(kc.Username)]; !known {
				x.count(func(r *Result) { r.Unknown++ })
				continue
			}
			g.Go(func() error { return x.apply(gctx, kc) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if len(page) < x.s.PageSize {
			break
		}
	}
	for _, u := range local {
		// Only users Keycloak had: one not provisioned yet is kcguard's
		// pending change, not a deletion.
		if u.KeycloakID == "" || inKeycloak[u.KeycloakID] {
			continue
		}
		// Offset paging over users that change meanwhile can skip one:
		// only Keycloak's own 404 for the id deletes.
		_, err := x.p.Keycloak.GetUser(ctx, x.pkg, u.KeycloakID)
		switch {
		case errors.Is(err, keycloak.ErrNotFound):
			if err := x.delete(ctx, u); err != nil {
				return err
			}
		case err != nil:
			return err
		}
	}
	return nil
}

// localUsers reads the package's local users, by username.
func (x *run) localUsers(ctx context.Context) (map[string]users.User, error) {
	out := map[string]users.User{}
	cursor := ""
	for {
		page, next, err := x.p.Users.List(ctx, x.pkg, users.Filter{}, x.s.PageSize, cursor)
		if err != nil {
			return nil, err
		}
		for _, u := range page {
			out[u.Username] = u
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// apply records Keycloak's state of one user kcguard knows; Keycloak users
// kcguard does not know are left to learn-on-login.
func (x *run) apply(ctx context.Context, kc keycloak.User) error {
	local, err := x.local(ctx, kc.Username)
	if errors.Is(err, users.ErrNotFound) || errors.Is(err, userkey.ErrInvalid) {
		x.count(func(r *Result) { r.Unknown++ })
		return nil
	}
	if err != nil {
		return err
	}
	stale, err := x.stale(ctx, local, kc.ID)
	if err != nil {
		return err
	}
	return x.record(ctx, local, kc, stale)
}

// stale decides whether the local hash may still be used offline. A
// kcguard change Keycloak has not received yet is kcguard's to keep (the
// authority rule); otherwise a password set in Keycloak by anyone but
// kcguard's own sync since the local one, or since the pull last confirmed
// the user, makes it stale. Once stale, only a verified login clears it.
func (x *run) stale(ctx context.Context, local users.User, id string) (bool, error) {
	if local.HashStale {
		return true, nil
	}
	if local.Unsynced() {
		return false, nil
	}
	if local.KeycloakID != "" && local.KeycloakID != id {
		// Same username, another Keycloak account (deleted and created
		// again): the password kcguard has belongs to the old one.
		return true, nil
	}
	if at, ok := x.othersCred[id]; ok && at.After(local.PasswordChangedAt) {
		return true, nil
	}
	created, err := x.p.Keycloak.PasswordCredentialCreatedAt(ctx, x.pkg, id)
	switch {
	case errors.Is(err, keycloak.ErrNotFound):
		return true, nil // an administrator removed the password
	case err != nil:
		return false, err
	}
	since := local.PasswordChangedAt
	if local.KeycloakConfirmedAt.After(since) {
		since = local.KeycloakConfirmedAt
	}
	return created.After(since.Add(time.Second)) && !x.ownAt(id, created), nil
}

func (x *run) ownAt(id string, at time.Time) bool {
	for _, t := range x.ownCred[id] {
		if d := at.Sub(t); d < x.s.OwnChangeSlack && d > -x.s.OwnChangeSlack {
			return true
		}
	}
	return false
}
