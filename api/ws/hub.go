package ws

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/coder/websocket"

	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws/wire"
)

// Options configure a Hub. Zero fields mean the defaults.
type Options struct {
	// Engine and Router are the actor engine and the inbox router. Required.
	Engine *actor.Engine
	Router *actor.PID
	// ReadLimit is the largest client frame in bytes; a bigger one closes the connection
	// with 1009. Default 4 KiB.
	ReadLimit int64
	// QueueSize is how many frames may wait for one connection's writer. Default 256.
	QueueSize int
	// WriteTimeout bounds how long a peer may make no room for the frames written to
	// it: a writer that waited that long for room in the send buffer closes the
	// connection with 4008 (Linux; see NetConn), and one blocked that long in a write is
	// dropped without a close frame. Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often a protocol ping is sent; PingTimeout how long its pong
	// may take before the peer is taken for dead. Defaults 25 s and 20 s.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// FrameRate caps the client data frames (text or binary, valid or not) one
	// connection may send per second, FrameBurst of them saved up; the frame that finds
	// none left closes the connection with wire.CloseTooManyFrames (1008) before it is
	// parsed. Defaults 50 and 100; a negative FrameRate means no limit.
	FrameRate  float64
	FrameBurst int
	// Metrics, when not nil, records connections and frames.
	Metrics *Metrics
	// Log receives unexpected failures. Default slog.Default().
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.ReadLimit <= 0 {
		o.ReadLimit = 4 << 10
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.FrameRate == 0 {
		o.FrameRate = 50
	}
	if o.FrameBurst <= 0 {
		o.FrameBurst = 100
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Hub tracks every open connection so that Shutdown can close them.
type Hub struct {
	opts Options
	// frameReason is the reason of a CloseTooManyFrames close, made once.
	frameReason string

	mu      sync.Mutex // guards conns, closing and sweeper
	conns   map[*Conn]struct{}
	closing bool
	sweeper *time.Timer   // runs sweep while there are connections; nil otherwise
	done    chan struct{} // closed when closing and the last connection has ended
}

// NewHub returns a Hub.
func NewHub(opts Options) *Hub {
	opts.defaults()
	return &Hub{opts: opts, conns: map[*Conn]struct{}{}, done: make(chan struct{}),
		frameReason: "too many frames: at most " + strconv.FormatFloat(opts.FrameRate, 'g', -1, 64) + "/s"}
}

// Closing reports whether Shutdown has begun: new connections are refused.
func (h *Hub) Closing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// Start runs an accepted connection of user, wc over nc, on a goroutine of its own,
// the connection's reader, until it ends. With hasSince the connection resumes after since;
// otherwise it starts with the unread snapshot. After Shutdown has begun, the
// connection is closed with 1001 instead.
func (h *Hub) Start(wc *websocket.Conn, nc *NetConn, user string, since int64, hasSince bool) {
	c := newConn(h, wc, nc, user)
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		_ = wc.Close(websocket.StatusCode(wire.CloseGoingAway), "server shutting down")
		return
	}
	h.conns[c] = struct{}{} // before Start returns: Shutdown waits for it
	if h.sweeper == nil {
		h.sweeper = time.AfterFunc(h.sweepEvery(), h.sweep)
	}
	h.mu.Unlock()
	h.opts.Metrics.connected(1)
	go h.serve(c, user, since, hasSince)
}

func (h *Hub) serve(c *Conn, user string, since int64, hasSince bool) {
	h.opts.Engine.Send(h.opts.Router, inbox.Attach{User: user, Socket: c, Since: since, HasSince: hasSince})
	c.run()
	h.opts.Engine.Send(h.opts.Router, inbox.Detach{User: user, Socket: c})

	h.opts.Metrics.connected(-1)
	h.mu.Lock()
	delete(h.conns, c)
	if h.closing && len(h.conns) == 0 {
		close(h.done)
	}
	h.mu.Unlock()
}

// sweepEvery is how often sweep runs: a quarter of the write timeout, from 10 ms to a
// second.
func (h *Hub) sweepEvery() time.Duration {
	return max(10*time.Millisecond, min(time.Second, h.opts.WriteTimeout/4))
}

// sweep drops the connections whose writer has been blocked in one write for longer
// than the write timeout: a peer that stopped reading where the writer cannot keep
// clear of the kernel's buffer (see NetConn), so the close frame cannot follow and the
// peer sees 1006. One timer for the whole hub costs less than a deadline per write. It
// runs again while connections remain.
func (h *Hub) sweep() {
	now := nanotime()
	limit := int64(h.opts.WriteTimeout)
	var stuck []*Conn
	h.mu.Lock()
	for c := range h.conns {
		if start := c.nc.blockedSince.Load(); start != 0 && now-start > limit {
			stuck = append(stuck, c)
		}
	}
	if len(h.conns) > 0 {
		h.sweeper.Reset(h.sweepEvery())
	} else {
		h.sweeper = nil
	}
	h.mu.Unlock()
	for _, c := range stuck {
		c.mu.Lock()
		closing := c.closed
		c.mu.Unlock()
		if closing {
			// Closed already: by the reader (whose CloseNow ends the write) or with a
			// closing handshake (4008, shutdown) whose own timeout ends it. CloseNow
			// would wait for that handshake here, on the hub's timer.
			continue
		}
		c.timedOut.Store(true)
		_ = c.ws.CloseNow() // the blocked write returns
	}
}

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()

// Shutdown refuses new connections, closes the open ones with 1001 and waits until they
// have ended or ctx is done; then it drops the rest without a handshake.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	if len(h.conns) == 0 {
		close(h.done)
	}
	h.mu.Unlock()

	for _, c := range conns {
		c.CloseAfterFlush(wire.CloseGoingAway, "server shutting down")
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.ws.CloseNow()
		}
		<-h.done
		return ctx.Err()
	}
}
