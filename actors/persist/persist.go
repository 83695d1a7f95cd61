package persist

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// DefaultCommitTimeout bounds one commit (Options.CommitTimeout) unless told otherwise.
const DefaultCommitTimeout = 10 * time.Second

// DefaultWriteTimeout is how long the node's callers (a REST request, a socket's
// mark-read) give a write: more than a commit, so that a write whose commit starts is
// answered with the commit's outcome, not with the caller's own deadline. The difference
// (5 s) is how long a write may wait for its batch to leave; one that waited longer is
// answered unavailable, nothing written (see Write).
const DefaultWriteTimeout = DefaultCommitTimeout + 5*time.Second

// Write asks the actor to apply Op. Reply must have room for one value (buffered): the
// actor never blocks on it.
//
// Ctx, when not nil, keeps a write from starting when its caller can no longer be
// answered: the batch leaves without it, and Reply gets an unavailable error (nothing
// was written), when Ctx has ended, or when Ctx's deadline allowed for a whole commit
// (Options.CommitTimeout) on arrival but no longer does when the batch leaves. A
// deadline shorter than a commit from the start is the caller's choice: such a write is
// started while Ctx lasts, and its caller may stop waiting before the answer. Deadline,
// when set, is a deadline of the caller's besides Ctx's (Client.WriteBy): the earlier of
// the two counts.
type Write struct {
	Ctx      context.Context
	Deadline time.Time
	Op       persistence.Op
	Reply    chan<- Reply

	claim   *atomic.Uint32 // Client's: which of the caller and the commit had the write first
	startBy time.Time      // when set, the write must leave by then (Ctx's deadline less a commit)
	arrived time.Time      // when the actor received it (herald_store_commit_wait_seconds)
}

// The states of Write.claim: the caller that stops waiting and the commit that starts
// the write race for it, and one of them wins.
const (
	queued    uint32 = iota
	sent             // the commit took it: the outcome is the store's
	abandoned        // the caller or the actor gave up on it: never written
)

// Reply answers a Write. Err is set when the whole batch failed: unavailable when
// nothing was written, outcome_unknown when the store took the batch and did not answer
// (it may be stored); otherwise Result holds the op's own outcome, including a per-op
// error in Result.Err.
type Reply struct {
	Result persistence.Result
	Err    error
}

// Drain asks the actor to flush what is pending; Done is closed once nothing is pending
// or in flight.
type Drain struct {
	Done chan<- struct{}
}

// Options tune the actor. The zero value means the defaults.
type Options struct {
	// MaxBatch caps the notifications, delivery outcomes and other ops in one
	// transaction (persistence.Op.Size). Default 1,000.
	MaxBatch int
	// FlushDelay is how long a first write waits for company when the store is idle.
	// Default 0: commit at once; batches still form while a commit is in flight.
	FlushDelay time.Duration
	// InFlight is how many commits may run at once. Default 1. More helps a store
	// whose commit waits on a disk flush (PostgreSQL): the next batch is written while
	// the previous one is being flushed. A write that arrives while fewer than
	// InFlight commits run starts one at once; batches grow only while all are busy.
	// (On PostgreSQL with 2, single creates from 64 publishers went 13-23% faster
	// than when a second commit waited for a full batch, and batches of 100 were
	// unchanged.) Seq stays 1..N per user whatever the value (a
	// store serialises the batches that share a user), but with more than one, a user's
	// entries may reach OnCommit out of seq order, by a batch: the consumer puts them
	// back in order (the inbox does).
	InFlight int
	// CommitTimeout bounds one Applier.Apply. Default DefaultCommitTimeout (10 s).
	// Callers should give a write more (DefaultWriteTimeout): see Write.
	CommitTimeout time.Duration
	// OnCommit receives the entries of each committed batch, before the callers are
	// answered; with one commit in flight, in commit (and so per-user seq) order. It runs on the commit goroutine and
	// must not block: it hands the entries on (to the router) and returns.
	OnCommit func([]herald.Entry)
	// OnUncertain receives the users of a batch whose commit went unanswered
	// (outcome_unknown), once the store has answered for them again: their entries
	// may have been stored without reaching OnCommit, and the receiver re-reads them
	// (the node has the router check those users' heads). The actor finds out that the
	// store answers by writing a probe that takes the same users' locks and changes
	// nothing (a mark-read of no notification for each), every ProbeInterval until one
	// is answered. It runs on a goroutine of the actor's and must not block.
	OnUncertain func(users []string)
	// ProbeInterval is how long a failed probe waits before the next. Default 1 s.
	ProbeInterval time.Duration
	// Metrics, when not nil, records batches, stored notifications and store errors.
	Metrics *Metrics
	// Log receives commit failures. Default slog.Default().
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.InFlight <= 0 {
		o.InFlight = 1
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = DefaultCommitTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// New returns the producer of a persistence actor writing to store. The actor is the
// one holder of the store's Applier: give everything else a persistence.Reader and a
// Client.
func New(store persistence.Applier, opts Options) actor.Producer {
	opts.defaults()
	return func() actor.Receiver {
		return &writer{store: store, opts: opts}
	}
}

// answerMargin is the time a caller's deadline must leave after a commit's, for the
// commit's answer to reach it.
const answerMargin = 50 * time.Millisecond

type flushTick struct{}

// committed tells the actor that a commit ended; uncertain holds the users of a batch
// whose outcome is unknown.
type committed struct{ uncertain []string }

// count asks the actor how many writes wait and how many commits run.
type count chan<- left

// left is what the actor has not done: writes waiting for a batch, commits running.
type left struct{ waiting, committing int }

// probed tells the actor that the store answered a probe for the users it was given.
type probed struct{}

type writer struct {
	store    persistence.Applier
	opts     Options
	engine   *actor.Engine
	self     *actor.PID
	pending  []Write
	size     int  // notifications and ops in pending
	inflight int  // commits running
	armed    bool // a flushTick is scheduled
	drains   []chan<- struct{}

	unsure  map[string]struct{} // users of unanswered commits, not yet probed
	probing bool                // a probe goroutine runs
	stop    context.CancelFunc  // ends the probe goroutine when the actor stops
	stopped context.Context
}

func opSize(op *persistence.Op) int { return op.Size() }

func (w *writer) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		w.engine, w.self = c.Engine(), c.PID()
		w.stopped, w.stop = context.WithCancel(context.Background())
	case actor.Stopped:
		if w.stop != nil {
			w.stop()
		}
	case Write:
		if cap(m.Reply) == 0 {
			// An unbuffered reply would stall the commit goroutine; refuse it loudly.
			w.opts.Log.Error("persist: Write with an unbuffered Reply channel dropped", "op", m.Op.Kind)
			return
		}
		m.arrived = time.Now()
		d := m.Deadline
		if m.Ctx != nil {
			if cd, ok := m.Ctx.Deadline(); ok && (d.IsZero() || cd.Before(d)) {
				d = cd
			}
		}
		if !d.IsZero() {
			if by := d.Add(-w.opts.CommitTimeout - answerMargin); m.arrived.Before(by) {
				m.startBy = by
			}
		}
		w.pending = append(w.pending, m)
		w.size += opSize(&m.Op)
		switch {
		case w.inflight >= w.opts.InFlight:
			// The batch leaves when a commit in flight ends.
		case w.size >= w.opts.MaxBatch:
			w.flush()
		case w.opts.FlushDelay <= 0:
			w.flush()
		case !w.armed:
			w.armed = true
			time.AfterFunc(w.opts.FlushDelay, func() { w.engine.Send(w.self, flushTick{}) })
		}
	case flushTick:
		w.armed = false
		if w.inflight == 0 {
			w.flush()
		}
	case committed:
		if len(m.uncertain) > 0 {
			w.doubt(m.uncertain)
		}
		w.inflight--
		if w.inflight == 0 && len(w.pending) == 0 {
			w.flush() // answers the drains
		}
		// The next batches, while writes wait and commits may start.
		for len(w.pending) > 0 && w.inflight < w.opts.InFlight {
			w.flush()
		}
	case Drain:
		w.drains = append(w.drains, m.Done)
		if w.inflight == 0 {
			w.flush()
		}
	case count:
		m <- left{len(w.pending), w.inflight}
	case probed:
		w.probing = false
		if len(w.unsure) > 0 {
			w.probe()
		}
	}
}

// doubt takes in the users of an unanswered commit and has them probed.
func (w *writer) doubt(users []string) {
	if w.opts.OnUncertain == nil {
		return
	}
	if w.unsure == nil {
		w.unsure = make(map[string]struct{}, len(users))
	}
	for _, u := range users {
		w.unsure[u] = struct{}{}
	}
	if !w.probing {
		w.probe()
	}
}

// probe starts the goroutine that writes a probe for the unsure users until the store
// answers it, then hands them to OnUncertain. The probe is one mark-read of no
// notification per user, through the actor like any write: it takes the users' locks
// (on PostgreSQL it waits for a transaction of the unanswered batch that still holds
// them), and writes nothing.
func (w *writer) probe() {
	users := make([]string, 0, len(w.unsure))
	for u := range w.unsure {
		users = append(users, u)
	}
	w.unsure = nil
	w.probing = true
	go func() {
		defer w.engine.Send(w.self, probed{})
		for {
			if w.probeOnce(users) {
				w.opts.OnUncertain(users)
				return
			}
			select {
			case <-w.stopped.Done():
				return
			case <-time.After(w.opts.ProbeInterval):
			}
		}
	}()
}

// probeOnce writes the probe of users and reports whether the store answered it.
func (w *writer) probeOnce(users []string) bool {
	replies := make(chan Reply, len(users))
	for _, u := range users {
		w.engine.Send(w.self, Write{Op: persistence.Op{Kind: persistence.OpMarkRead, UserID: u}, Reply: replies})
	}
	ok := true
	for range users {
		select {
		case r := <-replies:
			ok = ok && r.Err == nil
		case <-w.stopped.Done():
			return false
		}
	}
	return ok
}

// flush starts a commit of up to MaxBatch pending writes, or, with nothing pending,
// answers the drains waiting for quiet.
func (w *writer) flush() {
	if len(w.pending) == 0 {
		if w.inflight > 0 {
			return // the drains are answered when the last commit ends
		}
		for _, d := range w.drains {
			close(d)
		}
		w.drains = nil
		return
	}
	n, size := 0, 0
	for n < len(w.pending) && (n == 0 || size+opSize(&w.pending[n].Op) <= w.opts.MaxBatch) {
		size += opSize(&w.pending[n].Op)
		n++
	}
	batch := make([]Write, n)
	copy(batch, w.pending[:n])
	rest := copy(w.pending, w.pending[n:])
	clear(w.pending[rest:])
	w.pending = w.pending[:rest]
	w.size -= size
	w.inflight++
	go w.commit(batch)
}

// commit runs on its own goroutine, up to Options.InFlight at a time; it tells the
// actor when it is done.
func (w *writer) commit(batch []Write) {
	var done committed
	defer func() { w.engine.Send(w.self, done) }()
	live := batch[:0] // the writes taken, filtered in place (range copies each one first)
	ops := make([]persistence.Op, 0, len(batch))
	now := time.Now()
	for _, b := range batch {
		if !w.take(b, now) {
			continue
		}
		live = append(live, b)
		ops = append(ops, b.Op)
		w.opts.Metrics.waited(now.Sub(b.arrived))
	}
	if len(ops) == 0 {
		return
	}
	results, err := w.apply(ops, now)
	if err != nil {
		e := herald.AsError(err)
		switch e.Code {
		case herald.CodeUnavailable:
			w.opts.Log.Error("commit failed; batch not written", "ops", len(ops), "err", err)
		case herald.CodeOutcomeUnknown:
			done.uncertain = persistence.KeysOf(ops).Users
			w.opts.Log.Error("commit not confirmed; the batch may or may not be written, its users are re-checked once storage answers",
				"ops", len(ops), "users", len(done.uncertain), "err", err)
		default: // a store that broke its contract (a panic, a bad count): written or not
			e = herald.OutcomeUnknown(err)
			done.uncertain = persistence.KeysOf(ops).Users
			w.opts.Log.Error("commit failed; the batch may or may not be written, its users are re-checked once storage answers",
				"ops", len(ops), "users", len(done.uncertain), "err", err)
		}
		for _, b := range live {
			w.reply(b, Reply{Err: e})
		}
		w.opts.Metrics.storeError()
		return
	}
	w.opts.Metrics.batch(ops, results)
	w.deliver(results)
	for i, b := range live {
		w.reply(b, Reply{Result: results[i]})
	}
}

// take decides, as its batch leaves at now, whether b is written: not when its caller
// stopped waiting (Ctx ended, Deadline passed), nor when its caller's deadline no longer
// leaves room for a commit (startBy): then b is answered unavailable, nothing written,
// or, when its caller is gone (claim lost), not at all.
func (w *writer) take(b Write, now time.Time) bool {
	late := (b.Ctx != nil && b.Ctx.Err() != nil) || (!b.Deadline.IsZero() && !now.Before(b.Deadline))
	tooLate := !late && !b.startBy.IsZero() && now.After(b.startBy)
	if b.claim != nil {
		next := sent
		if late || tooLate {
			next = abandoned
		}
		if !b.claim.CompareAndSwap(queued, next) {
			return false // the caller gave up first and has its answer
		}
	}
	switch {
	case late:
		w.reply(b, Reply{Err: herald.Errorf(herald.CodeUnavailable, "the request ended before its change went to storage; nothing was written")})
		return false
	case tooLate:
		w.reply(b, Reply{Err: herald.Errorf(herald.CodeUnavailable,
			"storage is slow: the change waited too long to be written within the request's deadline; nothing was written, retry")})
		return false
	}
	return true
}

// deliver hands the committed entries to OnCommit. A panic there is logged: the batch
// is durable and its callers are still answered.
func (w *writer) deliver(results []persistence.Result) {
	if w.opts.OnCommit == nil {
		return
	}
	n := 0
	for i := range results {
		n += len(results[i].Entries)
	}
	if n == 0 {
		return
	}
	entries := make([]herald.Entry, 0, n)
	for i := range results {
		entries = append(entries, results[i].Entries...)
	}
	defer func() {
		if v := recover(); v != nil {
			w.opts.Log.Error("persist: OnCommit panicked; entries not delivered", "entries", len(entries), "panic", fmt.Sprint(v))
		}
	}()
	w.opts.OnCommit(entries)
}

// reply answers one caller without ever blocking the commit goroutine.
func (w *writer) reply(b Write, r Reply) {
	select {
	case b.Reply <- r:
	default:
		w.opts.Log.Error("persist: reply channel full; answer dropped", "op", b.Op.Kind)
	}
}

// apply commits ops, within CommitTimeout of now: the time by which the batch's callers
// were found to have room for the commit.
func (w *writer) apply(ops []persistence.Op, now time.Time) (results []persistence.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("store panicked: %v", v)
		}
	}()
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(w.opts.CommitTimeout))
	defer cancel()
	start := time.Now()
	results, err = w.store.Apply(ctx, persistence.Now(), ops)
	w.opts.Metrics.commitTook(time.Since(start))
	if err == nil && len(results) != len(ops) {
		err = fmt.Errorf("store returned %d results for %d ops", len(results), len(ops))
	}
	return results, err
}
