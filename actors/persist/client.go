package persist

import (
	"context"

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
// failure (not_found, idempotency_conflict) or the batch's (unavailable); both are
// *herald.Error. When ctx ends first the write may still commit later, unless its batch
// had not left yet.
func (c Client) Write(ctx context.Context, op persistence.Op) (persistence.Result, error) {
	reply := make(chan Reply, 1)
	c.Engine.Send(c.PID, Write{Ctx: ctx, Op: op, Reply: reply})
	select {
	case r := <-reply:
		if r.Err != nil {
			return persistence.Result{}, r.Err
		}
		return r.Result, r.Result.Err
	case <-ctx.Done():
		return persistence.Result{}, &herald.Error{Code: herald.CodeUnavailable,
			Message: "timed out waiting for storage; the change may or may not have been written", Err: ctx.Err()}
	}
}

// Drain flushes everything pending and returns once nothing is in flight or ctx ends.
func (c Client) Drain(ctx context.Context) error {
	done := make(chan struct{})
	c.Engine.Send(c.PID, Drain{Done: done})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
