// Package supervise keeps a misbehaving actor from taking the process down.
//
// hollywood restarts an actor whose Receive panics and, past its restart limit, lets the
// panic crash the whole process. Recover catches the panic inside Receive instead: the
// message that caused it is dropped and logged with its stack, and the actor goes on with
// the next message. Every Herald actor is spawned with it.
//
// It wraps the actor's receiver, not its Receive function as a hollywood middleware
// would: hollywood composes the middleware of an actor again for every message, two
// allocations a message on every actor of the hot path.
//
// It starts nothing: it runs inside each actor's own goroutine, and stops with it.
package supervise

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/anthdm/hollywood/actor"
)

// Recover returns a producer of the receivers produce makes, each of which recovers a
// panic in its Receive and logs it to log. onPanic, when not nil, is called after
// logging (a metric, say).
func Recover(log *slog.Logger, onPanic func(), produce actor.Producer) actor.Producer {
	return func() actor.Receiver {
		return &recovering{inner: produce(), log: log, onPanic: onPanic}
	}
}

type recovering struct {
	inner   actor.Receiver
	log     *slog.Logger
	onPanic func()
}

func (r *recovering) Receive(c *actor.Context) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("actor panicked; message dropped",
				"pid", c.PID().String(), "message", fmt.Sprintf("%T", c.Message()),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if r.onPanic != nil {
				r.onPanic()
			}
		}
	}()
	r.inner.Receive(c)
}
