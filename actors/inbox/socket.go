package inbox

import (
	"context"
	"time"

	"github.com/heraldhq/herald/api/ws/wire"
)

// Socket is one connection of a user, as the inbox sees it. The WebSocket gateway
// implements it; every method but WaitRoom must return at once.
type Socket interface {
	// Send queues f for writing, in order. It returns false when the socket is closing
	// (its queue overflowed, its writer failed): the inbox then forgets it.
	Send(f Frame) bool
	// Close closes the connection with code and reason, in the background.
	Close(code wire.CloseCode, reason string)
	// Room reports how many frames Send would take now without overflowing.
	Room() int
	// WaitRoom blocks until the socket can take min(n, its capacity) frames, and
	// returns how many it can take; it fails when ctx ends first or the socket closes.
	// It is for goroutines of the inbox's, never for the actor itself.
	WaitRoom(ctx context.Context, n int) (int, error)
}

// Frame is one encoded server→client message. Data is shared between the sockets of a
// user and must not be modified.
type Frame struct {
	Data []byte
	// Stored is when the entry was committed, for log entries delivered live; zero for
	// other frames. The socket writer measures store→socket latency from it.
	Stored time.Time
}
