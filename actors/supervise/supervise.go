// Package supervise keeps a misbehaving actor from taking the process down.
//
// hollywood restarts an actor whose Receive panics and, past its restart limit, lets the
// panic crash the whole process. Recover catches the panic inside Receive instead: the
// message that caused it is dropped and logged with its stack, and the actor goes on with
// the next message. Every Herald actor is spawned with it.
//
// It starts nothing: it runs inside each actor's own goroutine, and stops with it.
package supervise

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/anthdm/hollywood/actor"
)

// Recover returns a middleware that recovers a panic in Receive and logs it to log.
// onPanic, when not nil, is called after logging (a metric, say).
func Recover(log *slog.Logger, onPanic func()) actor.MiddlewareFunc {
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			defer func() {
				if v := recover(); v != nil {
					log.Error("actor panicked; message dropped",
						"pid", c.PID().String(), "message", fmt.Sprintf("%T", c.Message()),
						"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
					if onPanic != nil {
						onPanic()
					}
				}
			}()
			next(c)
		}
	}
}
