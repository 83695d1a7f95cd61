package persist

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// Client writes through the persistence actor from outside any actor (an HTTP handler,
// an embedding application, a goroutine of the dispatcher): it is the
// persistence.Writer every other part of the node is handed. Inside an actor, send a Write with a reply channel that a
// goroutine of your own drains, or wait for it with a message to self: never block in
// Receive.
type Client struct {
	Engine *actor.Engine
	PID    *actor.PID
}

var _ persistence.Writer = Client{}

// Write applies op and waits until it is durable or ctx ends. The error is the op's own
// failure (not_found, idempotency_conflict) or the batch's; all are *herald.Error. Only
// unavailable means that nothing was written: when ctx ends before op's batch left, op
// is never written and the error is unavailable; when it ends after, the store has op,
// and the error is outcome_unknown (it may be stored). Give ctx more than the actor's
// CommitTimeout (DefaultWriteTimeout), so that a write that starts is answered with its
// commit's outcome.
func (c Client) Write(ctx context.Context, op persistence.Op) (persistence.Result, error) {
	return c.WriteBy(ctx, op, time.Time{})
}

// WriteBy is Write with a deadline of its own besides ctx's (zero: none): the caller
// stops waiting at the earlier of the two, and the actor reads both. It is Write for a
// caller that would otherwise derive a context with a timeout for each write (the
// API's handlers): a context's timer, its cancel machinery and its place among its
// parent's children are allocations of every request; here a write costs its waiter
// (reply channel and claim) and, with a deadline, a timer. (Waiters are not pooled: a
// channel or timer made in one testing/synctest bubble may not be used in another.)
func (c Client) WriteBy(ctx context.Context, op persistence.Op, deadline time.Time) (persistence.Result, error) {
	wt := &waiter{reply: make(chan Reply, 1)}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	c.Engine.Send(c.PID, Write{Ctx: ctx, Deadline: deadline, Op: op, Reply: wt.reply, claim: &wt.claim})
	var err error
	select {
	case r := <-wt.reply:
		return answer(r)
	case <-ctx.Done():
		err = ctx.Err()
	case <-expired:
		err = context.DeadlineExceeded
	}
	if wt.claim.CompareAndSwap(queued, abandoned) {
		return persistence.Result{}, &herald.Error{Code: herald.CodeUnavailable,
			Message: "timed out waiting for storage; the change was not sent, nothing was written", Err: err}
	}
	select {
	case r := <-wt.reply: // answered as the wait ended
		return answer(r)
	default:
	}
	if wt.claim.Load() == abandoned { // the actor refused it: its answer is on its way
		return answer(<-wt.reply)
	}
	return persistence.Result{}, herald.OutcomeUnknown(err)
}

// waiter is what one write of a Client waits with: the actor's one answer comes on
// reply, and claim settles which of the caller and the commit had the write first.
type waiter struct {
	reply chan Reply
	claim atomic.Uint32
}

func answer(r Reply) (persistence.Result, error) {
	if r.Err != nil {
		return persistence.Result{}, r.Err
	}
	return r.Result, r.Result.Err
}

// Drain flushes everything pending and returns once nothing is in flight or ctx ends.
// When ctx ends first, the error is a *DrainError saying what was left.
func (c Client) Drain(ctx context.Context) error {
	done := make(chan struct{})
	c.Engine.Send(c.PID, Drain{Done: done})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	e := &DrainError{Err: ctx.Err()}
	answer := make(chan left, 1)
	c.Engine.Send(c.PID, count(answer))
	select { // the actor never waits on the store: it answers at once
	case n := <-answer:
		e.Waiting, e.Committing, e.Known = n.waiting, n.committing, true
	case <-time.After(100 * time.Millisecond):
	}
	return e
}

// DrainError is what a Drain that ran out of time left behind. None of it was
// acknowledged: a caller is answered only once its write is durable.
type DrainError struct {
	Waiting    int  // writes that never went to the store: not written
	Committing int  // commits the store had not answered: they may or may not be stored
	Known      bool // the actor gave the counts
	Err        error
}

func (e *DrainError) Error() string {
	if !e.Known {
		return fmt.Sprintf("writes still pending (%v), none of them acknowledged", e.Err)
	}
	return fmt.Sprintf("writes left (%v), none of them acknowledged: %d never sent to storage (not written), %d commit(s) unanswered (may or may not be stored)",
		e.Err, e.Waiting, e.Committing)
}

func (e *DrainError) Unwrap() error { return e.Err }
