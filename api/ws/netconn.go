package ws

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/actors/inbox"
)

// NetConn is the network connection under an accepted WebSocket. The WebSocket library
// writes its control frames (pongs, the close) through it, the connection its pings
// (ping); the connection's writer writes the data frames itself, a batch in one
// vectored write (one system call, no copy; a burst in writes of up to 64 KiB),
// without the library's per-message locks and buffering.
//
// Both paths take one mutex, so frames never interleave. The library writes each
// control frame in one Write: its writeFrame flushes the connection's buffer at the end
// of every final frame, and a control frame (at most 127 bytes) fits in the buffer
// (1 KiB, see Accept) whole. So a Write that starts with a close frame's header marks
// the close as sent: no data frame may follow it (RFC 6455, 5.5.1). That flush is the
// library's behaviour, not its documented contract: it was checked against
// github.com/coder/websocket v1.8.15 (write.go, Conn.writeFrame), the version go.mod
// requires, and TestNetConnWithLibrary pins it; check again before upgrading. Herald never
// writes a data message through the library (whose large payloads bypass the buffer
// and would reach Write in pieces).
//
// A peer that stops reading must still get its close frame (4008) when it reads again,
// and a close frame can go only after the data frame being written. So on Linux the
// writer never fills the kernel's send buffer: the buffer is fixed at sendBuffer, and a
// group of frames that would take the send queue (SIOCOUTQ) past sendLimit waits for
// the peer to make room; one that gets none within the write timeout ends the
// connection with 4008, which then fits in what is left. Elsewhere, and for one frame
// bigger than sendLimit, a write blocks until the peer reads, and the hub's sweep drops
// a connection whose write has been blocked for longer than the write timeout, without
// a close frame (the peer sees 1006).
type NetConn struct {
	net.Conn
	sq      sendQueue
	limited bool // sq can be read: writes wait for room rather than fill the kernel's buffer

	// queued is at least what the kernel's send queue holds: its last reading and what
	// the writer wrote since. The writer's alone.
	queued int
	// blockedSince is when the data write in progress began (nanotime), 0 when none.
	blockedSince atomic.Int64

	mu        sync.Mutex
	closeSent bool
	// head is the handshake's answer, held until the first write takes it along or
	// holdHead passes (see hold); headTimer is that timer.
	head      []byte
	headTimer *time.Timer

	// frames counts the client's frames as the library reads them through Read. Only
	// the library's reader touches it and ahead (see frameCounter).
	frames frameCounter
	// ahead is what net/http read of the client's stream past the upgrade request,
	// which Read returns first (see hijacker).
	ahead []byte
}

// errOverRate is what the library reads once the client has gone over the frame rate
// and its close frame has gone by (see Read).
var errOverRate = errors.New("ws: the client went over the frame rate: what it sent since is discarded")

// Read reads from the connection, counting the client's frames. Once a frame is over
// the rate, the library sees nothing from that frame on: the read that holds its first
// byte returns the bytes before it (whole frames, each within the rate), and later
// reads return no bytes. They read and discard what the client sends until its close
// frame (the answer to the 1008 the connection sends) has gone by, then return
// errOverRate, so that the library's closing handshake ends at once, leaving nothing
// unread in the kernel: the connection ends with a FIN, not a reset that could take
// the 1008 with it. (The library ends its handshake sooner, and the connection with a
// reset after the 1008, when it still holds a ping within the rate once its close
// frame is out: the pong's write fails.) A client that never answers is dropped by the
// refusal's grace (see Conn.closeLocked), which ends the read.
func (c *NetConn) Read(p []byte) (int, error) {
	if c.frames.over {
		return c.discard(p)
	}
	n, err := c.read(p)
	if k := c.frames.scan(p[:n]); k < n {
		if k > 0 || err != nil {
			return k, err
		}
		return c.discard(p)
	}
	return n, err
}

// read reads what net/http read ahead, then the connection.
func (c *NetConn) read(p []byte) (int, error) {
	if len(c.ahead) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.ahead)
	if c.ahead = c.ahead[n:]; len(c.ahead) == 0 {
		c.ahead = nil
	}
	return n, nil
}

// discard reads the client's stream into p, as scratch, until its close frame has gone
// by (see Read).
func (c *NetConn) discard(p []byte) (int, error) {
	for !c.frames.closed {
		if len(p) == 0 {
			return 0, nil
		}
		n, err := c.read(p)
		c.frames.scan(p[:n])
		if err != nil {
			return 0, err
		}
	}
	return 0, errOverRate
}

// NewNetConn wraps c.
func NewNetConn(c net.Conn) *NetConn {
	nc := &NetConn{Conn: c}
	nc.sq, nc.limited = newSendQueue(c)
	return nc
}

// The kernel's send buffer of a connection, and how much of it the writer fills: the
// kernel counts its own overhead in the buffer, 2 × sendBuffer in all, and takes about
// 1.4 × sendBuffer of data (measured on loopback, Linux 6), so what the writer leaves
// always holds a close frame. 512 KiB in flight keeps a 40 Mbit/s stream going at a
// 100 ms round trip, and is the most kernel memory a peer that stops reading holds.
const (
	sendBuffer = 512 << 10
	sendLimit  = sendBuffer
)

// errNoRoom is a write that waited for the write timeout without the peer making room.
var errNoRoom = errors.New("ws: the peer made no room in the send buffer within the write timeout")

// Polling of the send queue while waiting for room: from roomPollFirst, doubling up
// to roomPollMax. Only writers of peers that have fallen a whole buffer behind poll.
const (
	roomPollFirst = time.Millisecond
	roomPollMax   = 100 * time.Millisecond
)

// waitRoom waits until the send queue can take size more bytes within sendLimit (any
// size once it is empty), for at most wait; it returns errNoRoom when the time is up,
// net.ErrClosed once the library has sent its close frame.
func (c *NetConn) waitRoom(size int, wait time.Duration) error {
	if !c.limited || c.queued+size <= sendLimit {
		return nil
	}
	deadline := nanotime() + int64(wait)
	for interval := roomPollFirst; ; interval = min(2*interval, roomPollMax) {
		q, ok := c.sq.queued()
		if !ok {
			return nil // closed under us: the write says so
		}
		c.queued = q
		if q == 0 || q+size <= sendLimit {
			return nil
		}
		c.mu.Lock()
		closed := c.closeSent
		c.mu.Unlock()
		switch {
		case closed:
			return net.ErrClosed
		case nanotime() >= deadline:
			return errNoRoom
		}
		time.Sleep(min(interval, time.Duration(deadline-nanotime())+time.Millisecond))
	}
}

// The first header byte of a final frame: FIN and the opcode.
const (
	finText  = 0x81
	opMask   = 0x0f
	opClose  = 0x8
	opPing   = 0x9
	maxHdrSz = 10 // FIN/opcode, 127, 8-byte length: a server's frames are not masked
)

// holdHead is how long the handshake's answer waits for a first frame to go with. The
// first frame is the unread snapshot, which the inbox sends as soon as it has it (at
// once from a warm inbox, after a store read from a cold one); a store slower than
// this costs the answer its own write, as if it had not waited.
const holdHead = 50 * time.Millisecond

// hold keeps head (the handshake's answer) to go out in front of the first write, or
// on its own after holdHead.
func (c *NetConn) hold(head []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head = head
	c.headTimer = time.AfterFunc(holdHead, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.head != nil {
			_, _ = c.writeHeadLocked(nil)
		}
	})
}

// writeHeadLocked writes the held head and then group in one vectored write, and lets
// the head go. c.mu is held.
func (c *NetConn) writeHeadLocked(group net.Buffers) (int64, error) {
	bufs := make(net.Buffers, 0, 1+len(group))
	bufs = append(append(bufs, c.head), group...)
	c.head = nil
	c.headTimer.Stop()
	c.headTimer = nil // an idle connection keeps neither
	return bufs.WriteTo(c.Conn)
}

// Write writes p, a control frame of the library.
func (c *NetConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[0]&opMask == opClose {
		c.closeSent = true
	}
	if c.head != nil {
		head := len(c.head)
		n, err := c.writeHeadLocked(net.Buffers{p})
		return max(int(n)-head, 0), err
	}
	return c.Conn.Write(p)
}

// pingFrame is a protocol ping with no payload (a server's frames are not masked).
var pingFrame = []byte{0x80 | opPing, 0}

// ping writes a protocol ping, as one control frame like the library's, unless a close
// frame has gone out (net.ErrClosed then).
func (c *NetConn) ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if c.head != nil {
		_, err := c.writeHeadLocked(net.Buffers{pingFrame})
		return err
	}
	_, err := c.Conn.Write(pingFrame)
	return err
}

// frameBufs is the scratch of one batch: the frames' headers and the vector of the
// write. Pooled, so that an idle connection holds none.
type frameBufs struct {
	hdrs []byte
	vec  net.Buffers
}

var frameBufPool = sync.Pool{New: func() any { return new(frameBufs) }}

// writeText writes frames, each as one final text frame, in one vectored write (or a
// few: see groupBytes). After the library has sent a close frame it writes nothing and
// returns net.ErrClosed; a group that waits longer than wait for room in the send
// buffer (see NetConn) is not written and errNoRoom returned.
func (c *NetConn) writeText(frames []inbox.Frame, wait time.Duration) error {
	b := frameBufPool.Get().(*frameBufs)
	defer func() {
		clear(b.vec[:cap(b.vec)]) // drop the frames' references
		b.vec = b.vec[:0]
		frameBufPool.Put(b)
	}()
	// The headers go in one array sized first, so the vector's views of it stay valid.
	if cap(b.hdrs) < maxHdrSz*len(frames) {
		b.hdrs = make([]byte, 0, maxHdrSz*len(frames))
	}
	hdrs := b.hdrs[:0]
	vec := b.vec[:0]
	for i := range frames {
		start := len(hdrs)
		hdrs = appendTextHeader(hdrs, len(frames[i].Data))
		vec = append(vec, hdrs[start:len(hdrs):len(hdrs)], frames[i].Data)
	}
	b.hdrs, b.vec = hdrs, vec

	// The frames go out in groups of at most groupBytes, the mutex released between
	// groups: a control frame the library has to write (a pong, a ping, the close, each
	// bounded by its own 5 s timeout) never waits behind a whole burst to a slow reader.
	for len(vec) > 0 {
		n, size := 0, 0
		for n < len(vec) && (n == 0 || size+len(vec[n])+len(vec[n+1]) <= groupBytes) {
			size += len(vec[n]) + len(vec[n+1])
			n += 2
		}
		if err := c.waitRoom(size, wait); err != nil {
			return err
		}
		if err := c.writeGroup(vec[:n]); err != nil {
			return err
		}
		c.queued += size
		vec = vec[n:]
	}
	return nil
}

// groupBytes is how many bytes of data frames one vectored write carries at most (or
// one frame, when bigger).
const groupBytes = 64 << 10

func (c *NetConn) writeGroup(group net.Buffers) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	c.blockedSince.Store(nanotime())
	var err error
	if c.head != nil {
		_, err = c.writeHeadLocked(group)
	} else {
		_, err = group.WriteTo(c.Conn) // consumes group, a view of the batch's vector
	}
	c.blockedSince.Store(0)
	return err
}

// appendTextHeader appends the header of an unmasked final text frame of n bytes.
func appendTextHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, finText, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, finText, 127), uint64(n))
	}
}
