package syncjob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kcguard/kcguard/pkg/breaker"
	"github.com/kcguard/kcguard/pkg/journal"
	"github.com/kcguard/kcguard/pkg/keycloak"
	"github.com/kcguard/kcguard/pkg/userkey"
)

// Worker applies queued jobs. It is the SQS event handler of
// functions/syncworker and the engine of `kcguard sync now|run`.
type Worker struct {
	Applier *Applier
	Breaker Breaker
	DLQ     DeadLetters
	// Journal (nil: none) records what became of each job.
	Journal *JobJournal
	Log     *slog.Logger
	// GroupConcurrency bounds the message groups (users) of one batch
	// worked on at once; 0 means DefaultGroupConcurrency, 1 is sequential.
	GroupConcurrency int
	// Defer, if set, hides a record received while the breaker is open
	// until the breaker's next probe (ChangeMessageVisibility) instead of
	// failing it into the visibility timeout: it costs no Keycloak call and
	// no extra receive. Nil: such records simply fail.
	Defer Deferrer
	// NextProbe says when the breaker may next be probed (zero: unknown).
	NextProbe func(ctx context.Context) time.Time
	// DeferFallback is the deferral when NextProbe is unknown or past (a
	// forced-open breaker). Default 60s.
	DeferFallback time.Duration
	// Now is the clock of deferrals (default time.Now).
	Now func() time.Time
	// RetryBase is the first back-off of a record that failed for an
	// outage-class reason (Keycloak or AWS trouble, not poison) while the
	// breaker was closed: it goes back (Defer) for RetryBase × 2ⁿ⁻¹ after its
	// n-th receive, at most RetryMax, instead of into the visibility timeout
	// at once, so a fleet still counting its failures does not burn the
	// record's receives in seconds. Zero: such records simply fail.
	RetryBase time.Duration
	// RetryMax caps that back-off. Default 15 minutes.
	RetryMax time.Duration
	// MaxReceives is the queue's maxReceiveCount (0: unknown). A record put
	// back on its MaxReceives-th receive, for any reason but poison, would
	// be dead-lettered by its next receive: Resend sends it again as a new
	// message and it is acknowledged instead, so the DLQ holds only poison
	// however long an outage lasts (finding 6 of RELIABILITY.md).
	MaxReceives int
	// Resend, with MaxReceives, re-sends such a record (SQSQueue.Resend).
	Resend Resender
}

// Outcome counts what one batch did.
type Outcome struct {
	Applied, Superseded, DeadLettered, Failed int
	// Deferred counts records put back until the breaker's next probe
	// (they are also reported as batch item failures, so not deleted).
	Deferred int
	// Resent counts records re-sent as new messages on their last allowed
	// receive (and acknowledged).
	Resent int
}

// HandleBatch applies an SQS batch and reports the records to retry. A
// failed record also fails the later records of its message group in the
// batch, so a user's changes are never applied out of order. A job that can
// never succeed (malformed, or refused by Keycloak validation) is moved to
// the DLQ and acknowledged, so it cannot block its group.
func (w *Worker) HandleBatch(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	resp, _ := w.Process(ctx, ev)
	return resp, nil
}

// Process is HandleBatch with counts. Message groups (users) run in
// parallel, up to GroupConcurrency at a time; one group's records run in
// order, one after the other.
func (w *Worker) Process(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, Outcome) {
	var (
		groups [][]events.SQSMessage
		index  = map[string]int{}
	)
	for _, rec := range ev.Records {
		g := rec.Attributes["MessageGroupId"]
		i, ok := index[g]
		if !ok {
			i = len(groups)
			index[g] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], rec)
	}
	var (
		resp events.SQSEventResponse
		out  Outcome
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, w.groupConcurrency())
	)
	for _, recs := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			failures, o := w.group(ctx, recs)
			mu.Lock()
			defer mu.Unlock()
			resp.BatchItemFailures = append(resp.BatchItemFailures, failures...)
			out.Applied += o.Applied
			out.Superseded += o.Superseded
			out.DeadLettered += o.DeadLettered
			out.Failed += o.Failed
			out.Deferred += o.Deferred
			out.Resent += o.Resent
		}()
	}
	wg.Wait()
	// Report failures in batch order (Lambda does not need it; people do).
	pos := map[string]int{}
	for i, rec := range ev.Records {
		pos[rec.MessageId] = i
	}
	sort.Slice(resp.BatchItemFailures, func(i, j int) bool {
		return pos[resp.BatchItemFailures[i].ItemIdentifier] < pos[resp.BatchItemFailures[j].ItemIdentifier]
	})
	w.log().InfoContext(ctx, "sync batch", "event", "sync_batch", "records", len(ev.Records), "groups", len(groups),
		"applied", out.Applied, "superseded", out.Superseded, "dead_lettered", out.DeadLettered, "failed", out.Failed,
		"deferred", out.Deferred, "resent", out.Resent)
	return resp, out
}

// group handles one message group's records in order; after a failure the
// rest of the group fails too, so a user's changes never overtake each other.
func (w *Worker) group(ctx context.Context, recs []events.SQSMessage) ([]events.SQSBatchItemFailure, Outcome) {
	var (
		failures []events.SQSBatchItemFailure
		out      Outcome
		failed   bool
		paused   time.Duration        // > 0: the breaker is open, defer the rest of the group this long
		known    = map[string]int64{} // per user: a version Keycloak has, learnt in this batch
	)
	// putBack returns rec to the queue for d: deferred (the breaker is
	// open) or failed (backed off when d > 0, else the visibility timeout).
	putBack := func(rec events.SQSMessage, d time.Duration, failure bool) {
		if w.resent(ctx, rec, &out) {
			return // acknowledged: a fresh copy is queued
		}
		failures = append(failures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		switch {
		case !failure:
			w.deferRecord(ctx, rec, d, &out)
		case d > 0 && w.Defer != nil:
			out.Failed++
			if err := w.Defer.Defer(ctx, rec.ReceiptHandle, d); err != nil {
				w.log().WarnContext(ctx, "failed sync job not backed off; it returns after the visibility timeout", "message", rec.MessageId, "err", err)
			}
		default:
			out.Failed++
		}
	}
	for _, rec := range recs {
		if paused > 0 {
			putBack(rec, paused, false)
			continue
		}
		if failed {
			putBack(rec, w.retryDelay(rec), true)
			continue
		}
		res, err := w.handle(ctx, rec, known)
		switch {
		case errors.Is(err, breaker.ErrOpen) && w.Defer != nil:
			paused = w.untilProbe(ctx)
			putBack(rec, paused, false)
		case err != nil:
			failed = true
			putBack(rec, w.retryDelay(rec), true)
		case res == deadLettered:
			out.DeadLettered++
		case res == Superseded:
			out.Superseded++
		default:
			out.Applied++
		}
	}
	return failures, out
}

// untilProbe is how long a record received while the breaker is open is
// put back: until the next probe, when the breaker may close.
func (w *Worker) untilProbe(ctx context.Context) time.Duration {
	fallback := w.DeferFallback
	if fallback <= 0 {
		fallback = time.Minute
	}
	if w.NextProbe == nil {
		return fallback
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	if d := w.NextProbe(ctx).Sub(now()); d >= time.Second {
		return d
	}
	return fallback
}

// retryDelay is the back-off of a record that failed for an outage-class
// reason: RetryBase × 2ⁿ⁻¹ after its n-th receive, at most RetryMax; zero
// (fail into the visibility timeout) without RetryBase.
func (w *Worker) retryDelay(rec events.SQSMessage) time.Duration {
	if w.RetryBase <= 0 {
		return 0
	}
	limit := w.RetryMax
	if limit <= 0 {
		limit = 15 * time.Minute
	}
	d := w.RetryBase
	for n := receiveCount(rec); n > 1 && d < limit; n-- {
		d *= 2
	}
	return min(d, limit)
}

// resent re-sends rec as a new message when this receive is the last one
// maxReceiveCount allows: put back, it would be dead-lettered by its next
// receive although nothing is wrong with it. False if it need not or
// could not be re-sent (then it is put back; the redrive policy may move
// it to the DLQ, the only way left).
func (w *Worker) resent(ctx context.Context, rec events.SQSMessage, out *Outcome) bool {
	if w.Resend == nil || w.MaxReceives <= 0 || receiveCount(rec) < w.MaxReceives {
		return false
	}
	if err := w.Resend.Resend(ctx, rec); err != nil {
		w.log().WarnContext(ctx, "sync job not re-sent; its next receive may dead-letter it", "message", rec.MessageId,
			"receive_count", receiveCount(rec), "err", err)
		return false
	}
	w.log().InfoContext(ctx, "sync job re-sent before its receives ran out", "event", "sync_resent", "message", rec.MessageId,
		"receive_count", receiveCount(rec))
	out.Resent++
	return true
}

// deferRecord puts rec back for d. If that fails the record is just a
// failure: it returns after the visibility timeout, costing one receive.
func (w *Worker) deferRecord(ctx context.Context, rec events.SQSMessage, d time.Duration, out *Outcome) {
	if err := w.Defer.Defer(ctx, rec.ReceiptHandle, d); err != nil {
		w.log().WarnContext(ctx, "sync job not deferred; it returns after the visibility timeout", "message", rec.MessageId, "err", err)
		out.Failed++
		return
	}
	out.Deferred++
}

// DefaultGroupConcurrency is how many message groups a batch works on at once.
const DefaultGroupConcurrency = 4

func (w *Worker) groupConcurrency() int {
	if w.GroupConcurrency <= 0 {
		return DefaultGroupConcurrency
	}
	return w.GroupConcurrency
}

const deadLettered Result = "dead_lettered"

func (w *Worker) handle(ctx context.Context, rec events.SQSMessage, known map[string]int64) (Result, error) {
	job, err := Parse([]byte(rec.Body))
	if err != nil {
		return w.deadLetter(ctx, rec, job, err)
	}
	user := job.Package + "#" + userkey.NormalizeUsername(job.Username)
	if have := known[user]; job.Type != LogoutUser && job.Version <= have {
		// An earlier record of this group already brought Keycloak to a
		// version at least this new (it applies the newest local state):
		// settled without reading the user again. A user's usual outage
		// backlog, several changes in one batch, costs one apply.
		rep := Report{Result: Superseded, Version: have, Reason: fmt.Sprintf("keycloak already has version %d", have)}
		w.Journal.Write(ctx, job, journalEntry(job, rep))
		return Superseded, nil
	}
	done, err := w.Breaker.Allow(ctx)
	if err != nil {
		// Fail fast: no Keycloak call while the fleet knows it is down.
		// The job stays pending in the journal: nothing was tried.
		return "", err
	}
	rep, err := w.Applier.Sync(ctx, job)
	done(err)
	switch {
	case err == nil:
		if job.Type != LogoutUser && rep.Conflict != KeycloakWins {
			known[user] = max(known[user], rep.Version)
		}
		w.Journal.Write(ctx, job, journalEntry(job, rep))
		if rep.Result == Superseded {
			w.log().InfoContext(ctx, "sync job superseded", "event", "sync_superseded", "job", job.ID,
				"package", job.Package, "username", job.Username, "version", job.Version, "reason", rep.Reason)
		}
		return rep.Result, nil
	case errors.Is(err, ErrMalformed), errors.Is(err, keycloak.ErrRejected):
		return w.deadLetter(ctx, rec, job, err)
	default:
		w.log().WarnContext(ctx, "sync job failed; will retry", "event", "sync_retry", "job", job.ID, "type", job.Type,
			"package", job.Package, "username", job.Username, "version", job.Version,
			"receive_count", receiveCount(rec), "err", err)
		w.Journal.Write(ctx, job, journal.Entry{Status: journal.Failed, Reason: "will retry: " + err.Error()})
		return "", err
	}
}

func (w *Worker) deadLetter(ctx context.Context, rec events.SQSMessage, job Job, why error) (Result, error) {
	w.log().ErrorContext(ctx, "sync job dead-lettered", "event", "sync_dead_letter", "message", rec.MessageId,
		"group", rec.Attributes["MessageGroupId"], "job", job.ID, "type", job.Type, "reason", why.Error())
	if err := w.DLQ.DeadLetter(ctx, rec, why.Error()); err != nil {
		// Could not park it: retry it instead, the redrive policy will.
		return "", fmt.Errorf("dead-letter %s: %w", rec.MessageId, err)
	}
	w.Journal.Write(ctx, job, journal.Entry{Status: journal.Failed, Reason: "dead-lettered: " + why.Error()})
	return deadLettered, nil
}

// journalEntry maps what Sync did onto the job's journal status. Because
// Sync applies the user's newest local state, the job that carried that
// state is the applied one, whichever job of the group ran first: with
// jobs v2, v3, v4 queued, v2's run pushes v4 (v2 and v3 superseded) and
// v4's run finds Keycloak already at v4 (v4 applied).
func journalEntry(j Job, r Report) journal.Entry {
	e := journal.Entry{Status: journal.Superseded, Reason: r.Reason, Conflict: string(r.Conflict)}
	switch {
	case r.Conflict == KeycloakWins:
	case j.Type == LogoutUser:
		if r.Result == Applied {
			e.Status, e.Reason = journal.Applied, ""
		}
	case r.Version == j.Version:
		e.Status = journal.Applied
		if r.Result == Superseded {
			e.Reason = "applied by an earlier job of the same user"
		}
	case r.Version > j.Version && r.Result == Applied:
		e.Reason = fmt.Sprintf("newer version %d applied in its place", r.Version)
	}
	return e
}

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

func receiveCount(msg events.SQSMessage) int {
	n, _ := strconv.Atoi(msg.Attributes["ApproximateReceiveCount"])
	return n
}
