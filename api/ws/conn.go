package ws

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws/wire"
)

type closeReq struct {
	code   wire.CloseCode
	reason string
}

// idleQueueCap is the most queue capacity a connection keeps once its writer is idle.
const idleQueueCap = 8

// Conn is one WebSocket connection of a user.
type Conn struct {
	hub  *Hub
	ws   *websocket.Conn
	nc   *NetConn // under ws
	user string

	// mu guards the fields below: Send (on the inbox's goroutine, and the reader's for
	// pong and error frames) and the writer goroutine share them.
	mu      sync.Mutex
	queue   []inbox.Frame
	spare   []inbox.Frame // the writer's last batch, reused as the next queue
	writing bool          // a writer goroutine is running
	closed  bool          // no more frames are accepted, no goroutine is started
	final   *closeReq     // close once the queue is written (shutdown); no more frames are accepted
	drained chan struct{} // closed (and cleared) when the writer empties the queue; nil when nobody waits
	ping    *time.Timer

	wg sync.WaitGroup // the writer, pinger and closer goroutines

	// timedOut is set by the hub's sweep when it drops the connection for a write
	// blocked for longer than the write timeout, for the slow-consumer count.
	timedOut atomic.Bool

	// The reader's (and, while it closes, the library's closing handshake's, never at
	// once): the client's frame allowance, and whether it ran out.
	frames   frameBucket
	overRate bool // closed with 1008: the reader acts on nothing more

	// heard is when the client's last frame arrived (nanotime): a frame after a ping
	// answers it, whatever the frame. pingAt is when the unanswered ping went out, 0
	// when none is (the pinger's alone: one timer, one callback at a time).
	heard  atomic.Int64
	pingAt int64
}

func newConn(h *Hub, wc *websocket.Conn, nc *NetConn, user string) *Conn {
	wc.SetReadLimit(h.opts.ReadLimit)
	c := &Conn{hub: h, ws: wc, nc: nc, user: user}
	c.frames = newFrameBucket(h.opts.FrameRate, h.opts.FrameBurst)
	nc.frames.seen = c.frameArrived
	return c
}

// frameArrived takes a token for a client frame, from under the library's reader, and
// says whether there was one. The first frame over the rate closes the connection with
// 1008; the library sees neither it nor anything after it (see NetConn.Read), so it
// answers no ping over the rate, and frameArrived is not called again.
func (c *Conn) frameArrived() bool {
	now := nanotime()
	c.heard.Store(now)
	if c.frames.take(now) {
		return true
	}
	c.overRate = true
	// The close handshake runs in the background; the reader acts on nothing more.
	c.Close(wire.CloseTooManyFrames, c.hub.frameReason)
	return false
}

// run reads client frames until the connection ends, then waits for the connection's
// other goroutines.
func (c *Conn) run() {
	c.mu.Lock()
	c.ping = time.AfterFunc(c.hub.opts.PingInterval, c.pingPeer)
	c.mu.Unlock()
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			break
		}
		if c.overRate {
			break
		}
		if typ != websocket.MessageText {
			c.sendError(herald.Errorf(herald.CodeBadFrame, "frames must be text"))
			continue
		}
		c.handle(data)
	}
	c.mu.Lock()
	c.closed = true
	c.queue, c.spare = nil, nil
	c.wakeLocked()
	c.ping.Stop()
	c.mu.Unlock()
	if !c.overRate {
		// Ends a write in flight; a no-op after a close handshake. After one of its
		// own, the reader leaves it to end the connection (within its timeouts): this
		// could win the race to the connection and drop it without the close frame.
		_ = c.ws.CloseNow()
	}
	c.wg.Wait()
}

// handle acts on one client frame without waiting for anything: a ping is answered
// here, a frame that does not parse gets its error frame here, and every other frame
// goes to the user's inbox (through the router), which answers it in the order this
// connection sent its frames: writes go from there to the persistence actor, and the
// reader reads on while they commit.
func (c *Conn) handle(data []byte) {
	c.hub.opts.Metrics.clientFrame()
	f, err := wire.ParseClientFrame(data)
	if err != nil {
		c.Send(inbox.Frame{Data: wire.EncodeErrorRef(err, f.Ref)})
		return
	}
	if f.Event == wire.EventPing {
		c.Send(inbox.Frame{Data: wire.Pong})
		return
	}
	o := &c.hub.opts
	o.Engine.Send(o.Router, inbox.Client{User: c.user, Socket: c, Frame: f})
}

func (c *Conn) sendError(err error) {
	c.Send(inbox.Frame{Data: wire.EncodeError(err)})
}

// Send implements inbox.Socket: it queues f and starts the writer if it is not running.
// A full queue closes the connection with 4008.
func (c *Conn) Send(f inbox.Frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.final != nil {
		return false
	}
	if len(c.queue) >= c.hub.opts.QueueSize {
		c.closeLocked(wire.CloseSlowConsumer, "too slow: outbound queue full")
		return false
	}
	c.queue = append(c.queue, f)
	if !c.writing {
		c.writing = true
		c.wg.Add(1)
		go c.writeQueued()
	}
	return true
}

// Close implements inbox.Socket: it closes the connection with code and reason, the
// closing handshake running in the background.
func (c *Conn) Close(code wire.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// Room implements inbox.Socket.
func (c *Conn) Room() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	return c.hub.opts.QueueSize - len(c.queue)
}

// WaitRoom implements inbox.Socket.
func (c *Conn) WaitRoom(ctx context.Context, n int) (int, error) {
	n = max(1, min(n, c.hub.opts.QueueSize))
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if room := c.hub.opts.QueueSize - len(c.queue); room >= n {
			c.mu.Unlock()
			return room, nil
		}
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		drained := c.drained
		c.mu.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// wakeLocked wakes the WaitRoom calls.
func (c *Conn) wakeLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// CloseAfterFlush closes the connection with code and reason once what is queued has
// been written (within the write timeout); nothing more is queued meanwhile.
func (c *Conn) CloseAfterFlush(code wire.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.final != nil {
		return
	}
	if !c.writing {
		c.closeLocked(code, reason)
		return
	}
	c.final = &closeReq{code, reason} // the writer closes when the queue is empty
}

func (c *Conn) closeLocked(code wire.CloseCode, reason string) {
	if c.closed {
		return
	}
	switch code {
	case wire.CloseSlowConsumer:
		c.hub.opts.Metrics.slowConsumer()
	case wire.CloseTooManyFrames:
		c.hub.opts.Metrics.tooManyFrames()
	}
	c.closed = true
	c.queue = nil
	c.wakeLocked()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if code == wire.CloseTooManySockets || code == wire.CloseTooManyFrames {
			// A refusal: the close frame goes out at once, and a peer that does not
			// answer it gets refusalGrace, not the library's 5 s, to hold the
			// connection (and its place under the node's connection cap).
			// (CloseNow would wait for the Close in progress: close the connection under it.)
			t := time.AfterFunc(refusalGrace, func() { _ = c.nc.Close() })
			defer t.Stop()
		}
		_ = c.ws.Close(websocket.StatusCode(code), reason)
	}()
}

// refusalGrace is how long a refused connection (4029, 1008) may take to answer the
// close frame before it is dropped.
const refusalGrace = 500 * time.Millisecond

// writeQueued writes what is queued until the queue is empty, then ends.
func (c *Conn) writeQueued() {
	defer c.wg.Done()
	m := c.hub.opts.Metrics
	for {
		c.mu.Lock()
		if c.closed || len(c.queue) == 0 {
			c.writing = false
			if f := c.final; f != nil && !c.closed {
				c.closeLocked(f.code, f.reason)
			}
			// An idle connection keeps no arrays sized for a past burst.
			if cap(c.queue) > idleQueueCap {
				c.queue = nil
			}
			if cap(c.spare) > idleQueueCap {
				c.spare = nil
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.wakeLocked()
		c.mu.Unlock()

		err := c.nc.writeText(batch, c.hub.opts.WriteTimeout)
		if errors.Is(err, errNoRoom) {
			// The peer stopped reading, and the send buffer has room for the close
			// frame: it sees every frame written so far, then 4008.
			c.mu.Lock()
			c.writing = false
			c.closeLocked(wire.CloseSlowConsumer, "too slow: made no room to write within the write timeout")
			c.mu.Unlock()
			return
		}
		if err != nil {
			c.mu.Lock()
			c.closed, c.writing, c.queue = true, false, nil
			c.wakeLocked()
			c.mu.Unlock()
			if c.timedOut.Load() {
				m.slowConsumer()
			}
			_ = c.ws.CloseNow()
			return
		}
		for i := range batch {
			m.sent(batch[i].Stored)
		}
		clear(batch)
		c.mu.Lock()
		if c.spare == nil && cap(batch) <= 2*c.hub.opts.QueueSize {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// pingPeer runs from the connection's timer: every PingInterval it sends a protocol
// ping, and PingTimeout later it drops the peer unless a frame of the client's (its
// pong, or any other) has arrived since. The ping is two bytes written through the
// NetConn, and the answer is the frame counter's mark: no goroutine waits for the pong,
// and nothing is allocated (the library's Ping takes a goroutine, a channel, a context
// with its timer and a payload per ping, which on 100,000 idle sockets was half a core
// and most of their garbage).
func (c *Conn) pingPeer() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	o := &c.hub.opts
	now := nanotime()
	if c.pingAt != 0 {
		since := time.Duration(now - c.pingAt)
		answered := c.heard.Load() >= c.pingAt
		switch {
		case !answered && since >= o.PingTimeout:
			_ = c.ws.CloseNow()
			return
		case !answered: // wait until it is due
			c.resetPing(o.PingTimeout - since)
			return
		case since < o.PingInterval: // answered: the next one is due PingInterval after it
			c.resetPing(o.PingInterval - since)
			return
		}
	}
	c.pingAt = now
	if err := c.nc.ping(); err != nil {
		_ = c.ws.CloseNow()
		return
	}
	c.resetPing(min(o.PingInterval, o.PingTimeout))
}

// resetPing arms the ping timer for d, unless the connection has closed.
func (c *Conn) resetPing(d time.Duration) {
	c.mu.Lock()
	if !c.closed {
		c.ping.Reset(d)
	}
	c.mu.Unlock()
}

// frameBucket is a connection's allowance of client frames: a token bucket that only
// the connection's reader touches, so it needs no lock.
type frameBucket struct {
	rate   float64 // tokens per nanosecond; 0: no limit
	burst  float64
	tokens float64
	at     int64 // nanotime of the last take
}

func newFrameBucket(perSecond float64, burst int) frameBucket {
	if perSecond <= 0 {
		return frameBucket{}
	}
	return frameBucket{rate: perSecond / 1e9, burst: float64(burst), tokens: float64(burst), at: nanotime()}
}

// take spends one token, refilled up to now; false when none is left.
func (b *frameBucket) take(now int64) bool {
	if b.rate == 0 {
		return true
	}
	b.tokens = min(b.burst, b.tokens+float64(now-b.at)*b.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
