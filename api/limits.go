package api

import (
	"net/http"
	"sync/atomic"

	"github.com/heraldhq/herald"
)

// DefaultBodyBytesInFlight is the default bound on the bytes of large request bodies
// being handled at once (Options.BodyBytesInFlight): about four of the largest batch
// bodies. A body costs a few times its size in memory while it is decoded, stored and
// answered, so this bounds what concurrent large requests can make the node hold.
const DefaultBodyBytesInFlight = 64 << 20

// byteBudget is a weighted semaphore that never waits: a reservation that does not fit
// is refused at once. Lock-free, so the routes it guards share no lock.
type byteBudget struct {
	limit int64 // <= 0: no bound
	used  atomic.Int64
}

func newByteBudget(limit int64) *byteBudget {
	if limit == 0 {
		limit = DefaultBodyBytesInFlight
	}
	return &byteBudget{limit: limit}
}

// reserve takes n bytes, or reports false when they do not fit. A reservation always
// fits when nothing is reserved, so that one request bigger than the whole budget is
// slow, not impossible.
func (b *byteBudget) reserve(n int64) bool {
	if b.limit <= 0 {
		return true
	}
	if used := b.used.Add(n); used > b.limit && used != n {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *byteBudget) release(n int64) {
	if b.limit > 0 {
		b.used.Add(-n)
	}
}

// holdBody takes from the body budget what the body of r may hold, up to limit bytes
// (its declared length, or limit when it declares none), before the body is read, and
// returns how much: the caller gives it back (s.bodies.release) once the answer is
// written. When the node already handles as many
// body bytes as Options.BodyBytesInFlight allows, it answers 503 with Retry-After, and
// nothing is read or written. The routes with large bodies (batch creates, events) call
// it once they have authenticated the caller, so only services ever hold the budget.
func (s *Server) holdBody(w http.ResponseWriter, r *http.Request, limit int64) (int64, error) {
	n := limit
	if r.ContentLength >= 0 && r.ContentLength < limit {
		n = r.ContentLength
	}
	if !s.bodies.reserve(n) {
		s.metrics.bodyRefused()
		w.Header().Set("Retry-After", "1")
		return 0, herald.Errorf(herald.CodeUnavailable, "too many large requests in flight; nothing was written, retry after 1 s")
	}
	return n, nil
}

// maxPageBytes bounds the notifications of one page of a list route, besides its limit:
// a page stops before the notification that would take it over (it always holds one),
// and next continues from there. 500 notifications of 16 KiB would otherwise be 8 MB
// in one answer.
const maxPageBytes = 1 << 20

// pageBytes is about what n takes in an answer.
func pageBytes(n *herald.Notification) int {
	return 192 + len(n.ID) + len(n.Object) + len(n.ReceiverID) + len(n.SenderID) + len(n.Type) + len(n.Payload)
}

// fitPage returns how many of items, from the first, fit in maxPageBytes (at least one).
func fitPage[T any](items []T, note func(*T) *herald.Notification) int {
	total := 0
	for i := range items {
		if n := note(&items[i]); n != nil {
			total += pageBytes(n)
		} else {
			total += 96
		}
		if total > maxPageBytes && i > 0 {
			return i
		}
	}
	return len(items)
}
