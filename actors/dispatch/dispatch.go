package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch/deliver"
	"github.com/heraldhq/herald/persistence"
)

// Sender delivers one delivery through its channel, once. Its error says whether a
// retry can help when it is, or wraps, a *deliver.Error: a permanent one goes straight
// to the dead letters, and its RetryAfter asks for a later retry than the backoff would
// give. Any other error is retried.
type Sender interface {
	Send(ctx context.Context, d persistence.Delivery) error
}

// Options configure the dispatcher. Zero fields mean the defaults.
type Options struct {
	// Claimer leases due deliveries: the one write to the store that does not go
	// through the persistence actor (see the package doc). Required.
	Claimer persistence.Claimer
	// Writer records the outcomes of attempts (persistence.OpFinishDeliveries) and
	// flushes due digests (persistence.OpFlushDigest) through the persistence actor.
	// Required.
	Writer persistence.Writer
	// Outbox is read for the queue depth and age metrics. Nil: not refreshed.
	Outbox persistence.OutboxReader
	// Senders by channel. A delivery for a channel without one is a dead letter saying
	// the channel is not configured.
	Senders map[herald.Channel]Sender
	// Poll is how often the outbox is checked when nothing woke the dispatcher. Default 1 s.
	Poll time.Duration
	// Batch is how many deliveries one claim takes at most. Default 100.
	Batch int
	// Concurrency is how many sends may be in flight. Default 16.
	Concurrency int
	// SendTimeout bounds one attempt. Default 30 s.
	SendTimeout time.Duration
	// Lease is how long a claimed delivery is held before it is due again. It must be
	// longer than SendTimeout. Default 2 × SendTimeout.
	Lease time.Duration
	// MaxAttempts is how many failed attempts make a dead letter. Default 8.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delays. Defaults 5 s and 1 h.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Digests is where due digests are found; each is flushed (an OpFlushDigest through
	// Writer: stored as one notification) at the next poll. Nil: digests are not looked
	// at.
	Digests persistence.DigestReader
	// StatsEvery is how often the queue depth and age metrics are refreshed. Default 10 s.
	StatsEvery time.Duration
	// Metrics, when not nil, counts attempts and queue depth.
	Metrics *Metrics
	// Log receives failures. Default slog.Default().
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.Lease <= o.SendTimeout {
		o.Lease = 2 * o.SendTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 5 * time.Second
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = max(time.Hour, o.BackoffBase)
	}
	if o.StatsEvery <= 0 {
		o.StatsEvery = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// New returns the producer of the dispatcher actor.
func New(opts Options) actor.Producer {
	opts.defaults()
	return func() actor.Receiver { return &dispatcher{opts: opts} }
}

// Wake asks the dispatcher to look at the outbox now rather than at the next poll.
type Wake struct{}

// Drain stops claiming; Done is closed once no send is in flight and every outcome is
// recorded.
type Drain struct{ Done chan<- struct{} }

type (
	tick    struct{}
	claimed struct {
		ds    []persistence.Delivery
		limit int
		err   error
	}
	attempted struct {
		d   persistence.Delivery
		err error
	}
	finished struct{ err error }
	flushed  struct{ err error }
	stats    struct {
		s   []persistence.ChannelStats
		err error
	}
)

type dispatcher struct {
	opts   Options
	engine *actor.Engine
	self   *actor.PID
	ctx    context.Context // ends when the actor stops: cancels sends in flight
	cancel context.CancelFunc

	claiming  bool                   // a claim is in flight
	again     bool                   // something may be due: claim once the claim in flight ends
	inflight  int                    // sends in flight
	queue     []persistence.Delivery // claimed, waiting for room to be sent
	outcomes  []persistence.Outcome
	finishing bool // an OpFinishDeliveries is in flight
	draining  bool
	drains    []chan<- struct{}
	poll      actor.SendRepeater // the tick every Options.Poll
	lastStats time.Time
	statsBusy bool
	flushing  bool // a round of digest flushes is in flight
}

func (d *dispatcher) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		d.engine, d.self = c.Engine(), c.PID()
		d.ctx, d.cancel = context.WithCancel(context.Background())
		d.poll = c.SendRepeat(d.self, tick{}, d.opts.Poll) // stopped in Stopped
		d.claim()
	case actor.Stopped:
		d.poll.Stop()
		d.cancel()
	case tick:
		d.claim()
		d.refreshStats()
		d.flushDigests()
	case flushed:
		d.flushing = false
		if m.err != nil && !errors.Is(m.err, context.Canceled) {
			d.opts.Log.Warn("flushing due digests failed; retrying at the next poll", "err", m.err)
		}
	case Wake:
		d.claim()
	case claimed:
		d.claiming = false
		if m.err != nil {
			if !errors.Is(m.err, context.Canceled) {
				d.opts.Log.Warn("outbox claim failed; retrying at the next poll", "err", m.err)
			}
			break
		}
		d.queue = append(d.queue, m.ds...)
		d.pump()
		if len(m.ds) == m.limit || d.again {
			d.again = false
			d.claim()
		}
	case attempted:
		d.inflight--
		d.outcomes = append(d.outcomes, d.outcome(m.d, m.err))
		d.finish()
		d.pump()
		d.claim() // room for more
	case finished:
		d.finishing = false
		if m.err != nil {
			// The outcomes are lost; their deliveries come back after the lease and are
			// attempted again (at least once).
			d.opts.Log.Warn("recording delivery outcomes failed; they will be retried after their lease", "err", m.err)
		}
		d.finish()
	case stats:
		d.statsBusy = false
		if m.err == nil {
			d.opts.Metrics.queue(m.s, d.opts.Now())
		}
	case Drain:
		d.draining = true
		d.drains = append(d.drains, m.Done)
	}
	d.checkDrained()
}

// claim takes due deliveries when there is room for them.
func (d *dispatcher) claim() {
	if d.draining {
		return
	}
	if d.claiming {
		d.again = true
		return
	}
	// Claim ahead, up to twice the sends allowed in flight: fewer, bigger claims (one
	// transaction each), while what waits here stays well within its lease.
	room := 2*d.opts.Concurrency - d.inflight - len(d.queue)
	if room <= 0 {
		return
	}
	d.claiming = true
	ctx, claimer, now, lease, n, engine, self := d.ctx, d.opts.Claimer, d.opts.Now(), d.opts.Lease, min(room, d.opts.Batch), d.engine, d.self
	go func() {
		ds, err := claimer.ClaimDeliveries(ctx, now, lease, n)
		engine.Send(self, claimed{ds: ds, limit: n, err: err})
	}()
}

// pump starts the claimed deliveries the concurrency allows.
func (d *dispatcher) pump() {
	for d.inflight < d.opts.Concurrency && len(d.queue) > 0 {
		dl := d.queue[0]
		d.queue[0] = persistence.Delivery{}
		d.queue = d.queue[1:]
		d.start(dl)
	}
	if len(d.queue) == 0 {
		d.queue = nil
	}
}

// start sends one delivery on a goroutine of its own.
func (d *dispatcher) start(dl persistence.Delivery) {
	d.inflight++
	sender := d.opts.Senders[dl.Channel]
	ctx, timeout, engine, self := d.ctx, d.opts.SendTimeout, d.engine, d.self
	go func() {
		var err error
		if sender == nil {
			err = permanent("the " + string(dl.Channel) + " channel is not configured")
		} else {
			sctx, cancel := context.WithTimeout(ctx, timeout)
			err = sender.Send(sctx, dl)
			cancel()
		}
		engine.Send(self, attempted{d: dl, err: err})
	}()
}

// outcome decides what an attempt leads to.
func (d *dispatcher) outcome(dl persistence.Delivery, err error) persistence.Outcome {
	m, ch := d.opts.Metrics, dl.Channel
	if err == nil {
		m.attempt(ch, "sent")
		return persistence.Outcome{ID: dl.ID, Sent: true}
	}
	o := persistence.Outcome{ID: dl.ID, Error: herald.Truncate(err.Error(), 1000)}
	var f *deliver.Error
	perm := errors.As(err, &f) && f.Permanent
	if perm || dl.Attempts+1 >= d.opts.MaxAttempts {
		m.attempt(ch, "dead")
		d.opts.Log.Warn("delivery failed for good; kept as a dead letter", "delivery", dl.ID, "channel", ch,
			"notification", dl.NotificationID, "attempts", dl.Attempts+1, "err", err)
		o.Dead = true
		return o
	}
	m.attempt(ch, "retried")
	delay := backoff(dl.Attempts, d.opts.BackoffBase, d.opts.BackoffMax)
	if f != nil && f.RetryAfter > delay {
		delay = min(f.RetryAfter, d.opts.BackoffMax)
	}
	o.Retry = d.opts.Now().Add(delay)
	return o
}

// backoff is the delay after the attempts+1-th failure: base·2^attempts capped at max,
// then a random point in its upper half, so that retries of a burst spread out.
func backoff(attempts int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < attempts && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}

// finish records the outcomes gathered so far, one op at a time, through the
// persistence actor: they join the group commit of whatever else is being written.
func (d *dispatcher) finish() {
	if d.finishing || len(d.outcomes) == 0 {
		return
	}
	d.finishing = true
	op := persistence.Op{Kind: persistence.OpFinishDeliveries, Outcomes: d.outcomes}
	d.outcomes = nil
	writer, engine, self := d.opts.Writer, d.engine, d.self
	go func() {
		// Not d.ctx: outcomes of finished sends are recorded even while stopping.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := writer.Write(ctx, op)
		engine.Send(self, finished{err: err})
	}()
}

func (d *dispatcher) refreshStats() {
	if d.opts.Metrics == nil || d.opts.Outbox == nil || d.statsBusy || d.opts.Now().Sub(d.lastStats) < d.opts.StatsEvery {
		return
	}
	d.statsBusy, d.lastStats = true, d.opts.Now()
	ctx, outbox, engine, self := d.ctx, d.opts.Outbox, d.engine, d.self
	go func() {
		s, err := outbox.OutboxStats(ctx)
		engine.Send(self, stats{s: s, err: err})
	}()
}

// flushDigests stores the due digests, at most 100 per poll, all at once so that the
// persistence actor commits them together.
func (d *dispatcher) flushDigests() {
	if d.opts.Digests == nil || d.flushing || d.draining {
		return
	}
	d.flushing = true
	ctx, store, writer, now, engine, self := d.ctx, d.opts.Digests, d.opts.Writer, d.opts.Now(), d.engine, d.self
	flush := func(ctx context.Context, k persistence.DigestKey) error {
		_, err := writer.Write(ctx, persistence.Op{Kind: persistence.OpFlushDigest, Digest: k})
		return err
	}
	go func() {
		keys, err := store.DueDigests(ctx, now, 100)
		if err != nil {
			engine.Send(self, flushed{err: err})
			return
		}
		errs := make(chan error, len(keys))
		for _, k := range keys {
			go func() { errs <- flush(ctx, k) }()
		}
		var first error
		for range keys {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		engine.Send(self, flushed{err: first})
	}()
}

func (d *dispatcher) checkDrained() {
	if !d.draining || d.claiming || d.inflight > 0 || len(d.queue) > 0 || d.finishing || len(d.outcomes) > 0 || d.statsBusy || d.flushing {
		return
	}
	for _, done := range d.drains {
		close(done)
	}
	d.drains = nil
}

// permanent is a failure of the dispatcher's own, found before any sender ran.
func permanent(msg string) error { return &deliver.Error{Permanent: true, Err: errors.New(msg)} }
