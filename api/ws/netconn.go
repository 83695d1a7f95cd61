package ws

import (
	"net"
	"sync"
)

// NetConn is the network connection under an accepted WebSocket, as the WebSocket
// library writes to it. It lets the connection's writer put a batch of frames on the
// wire in one write: one system call instead of one per frame.
//
// While corked, writes are kept in memory, in order, and written out by uncork (or
// sooner, once corkLimit bytes are held). Writes and the flush are serialised, so frames
// written meanwhile by the library (pongs, a close) keep their place in the stream.
type NetConn struct {
	net.Conn

	mu     sync.Mutex
	corked bool
	buf    []byte
}

// corkLimit bounds the bytes a corked connection holds before writing them out.
const corkLimit = 64 << 10

// bufPool holds the buffers of corked batches, so that an idle connection keeps none.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// NewNetConn wraps c.
func NewNetConn(c net.Conn) *NetConn { return &NetConn{Conn: c} }

// Write writes p, or keeps it while the connection is corked.
func (c *NetConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = (*bufPool.Get().(*[]byte))[:0]
	}
	if len(c.buf)+len(p) > corkLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > corkLimit {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// cork holds writes in memory until uncork.
func (c *NetConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes out what cork held and writes through again.
func (c *NetConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	if c.buf != nil {
		if cap(c.buf) <= corkLimit {
			b := c.buf[:0]
			bufPool.Put(&b)
		}
		c.buf = nil
	}
	return err
}

func (c *NetConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}
