package persist

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// Write asks the actor to apply Op. Reply must have room for one value (buffered): the
// actor never blocks on it. Ctx, when not nil, lets a caller that gave up before its batch
// left be dropped with the context's error instead of written.
type Write struct {
	Ctx   context.Context
	Op    persistence.Op
	Reply chan<- Reply
}

// Reply answers a Write. Err is set when the whole batch failed (code unavailable);
// otherwise Result holds the op's own outcome, including a per-op error in Result.Err.
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
	// the previous one is being flushed. A commit beyond the first starts only for a
	// full batch (MaxBatch): below that load, batches grow while one commit runs. Seq stays 1..N per user whatever the value (a
	// store serialises the batches that share a user), but with more than one, a user's
	// entries may reach OnCommit out of seq order, by a batch: the consumer puts them
	// back in order (the inbox does).
	InFlight int
	// CommitTimeout bounds one Applier.Apply. Default 10 s.
	CommitTimeout time.Duration
	// OnCommit receives the entries of each committed batch, before the callers are
	// answered; with one commit in flight, in commit (and so per-user seq) order. It runs on the commit goroutine and
	// must not block: it hands the entries on (to the router) and returns.
	OnCommit func([]herald.Entry)
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
		o.CommitTimeout = 10 * time.Second
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

type flushTick struct{}

type committed struct{}

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
}

func opSize(op *persistence.Op) int { return op.Size() }

func (w *writer) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		w.engine, w.self = c.Engine(), c.PID()
	case Write:
		if cap(m.Reply) == 0 {
			// An unbuffered reply would stall the commit goroutine; refuse it loudly.
			w.opts.Log.Error("persist: Write with an unbuffered Reply channel dropped", "op", m.Op.Kind)
			return
		}
		w.pending = append(w.pending, m)
		w.size += opSize(&m.Op)
		switch {
		case w.inflight >= w.opts.InFlight:
			// The batch leaves when a commit in flight ends.
		case w.size >= w.opts.MaxBatch:
			w.flush()
		case w.inflight > 0:
			// Another commit only pays with a backlog (a full batch waiting): otherwise
			// the batch grows until the commit in flight ends, as group commit wants.
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
		w.inflight--
		if w.inflight == 0 && len(w.pending) == 0 {
			w.flush() // answers the drains
		}
		// The next batch, and more while full ones wait and commits may start.
		for len(w.pending) > 0 && w.inflight < w.opts.InFlight && (w.inflight == 0 || w.size >= w.opts.MaxBatch) {
			w.flush()
		}
	case Drain:
		w.drains = append(w.drains, m.Done)
		if w.inflight == 0 {
			w.flush()
		}
	}
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
	defer w.engine.Send(w.self, committed{})
	live := batch[:0:0]
	ops := make([]persistence.Op, 0, len(batch))
	for _, b := range batch {
		if b.Ctx != nil && b.Ctx.Err() != nil {
			w.reply(b, Reply{Err: herald.Errorf(herald.CodeUnavailable, "request gave up before it was written")})
			continue
		}
		live = append(live, b)
		ops = append(ops, b.Op)
	}
	if len(ops) == 0 {
		return
	}
	results, err := w.apply(ops)
	if err != nil {
		w.opts.Log.Error("commit failed; batch not written", "ops", len(ops), "err", err)
		e := herald.AsError(err)
		if e.Code != herald.CodeUnavailable {
			e = herald.Unavailable(err)
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

// deliver hands the committed entries to OnCommit. A panic there is logged: the batch
// is durable and its callers are still answered.
func (w *writer) deliver(results []persistence.Result) {
	if w.opts.OnCommit == nil {
		return
	}
	var entries []herald.Entry
	for i := range results {
		entries = append(entries, results[i].Entries...)
	}
	if len(entries) == 0 {
		return
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

func (w *writer) apply(ops []persistence.Op) (results []persistence.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("store panicked: %v", v)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.CommitTimeout)
	defer cancel()
	start := time.Now()
	results, err = w.store.Apply(ctx, persistence.Now(), ops)
	w.opts.Metrics.commitTook(time.Since(start))
	if err == nil && len(results) != len(ops) {
		err = fmt.Errorf("store returned %d results for %d ops", len(results), len(ops))
	}
	return results, err
}
