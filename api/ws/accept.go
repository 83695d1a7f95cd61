package ws

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// Accept upgrades r to a WebSocket connection of user and runs it (see Start). The
// handshake's checks (the credential, the origin, the cursor, the upgrade headers) are
// the caller's and come first, so that every refusal is the API's JSON; the origin is
// not checked again here. When the upgrade itself fails, Accept has answered r.
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, user string, since int64, hasSince bool) {
	// A fresh connect's first frame is its snapshot, which the 101 waits for; a resume
	// (since) may have nothing to replay, so its 101 goes at once.
	hj := &hijacker{ResponseWriter: w, hold: !hasSince}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin is the caller's to check, with JSON errors
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept has answered
	}
	h.Start(c, hj.conn, user, since, hasSince)
}

// The buffers of an accepted WebSocket. Client frames are small (4 KiB at most); a read
// that big bypasses the read buffer. Only the library's control frames go through the
// write buffer (the connection's writer writes data frames to NetConn itself), and it
// holds the largest whole (127 bytes: a close with a 123-byte reason), which NetConn
// relies on (one control frame, one Write; TestLargestControlFrameOneWrite). net/http's
// 4 KiB pair would be most of an idle connection's memory.
const (
	readBuffer  = 256
	writeBuffer = 128
)

// hijacker hijacks the connection with smaller buffers than net/http's, and with the
// writes going through a NetConn, which the connection's writer batches. For a fresh
// connect it holds the library's 101 answer rather than let net/http write it at the
// hijack: the NetConn sends it in the same write as the connection's first frame (the
// unread snapshot, a millisecond later), one system call and one wake of the client
// fewer a connect (see NetConn.hold). A resume's 101 goes at once: it may have nothing
// to replay, and no frame to go with.
type hijacker struct {
	http.ResponseWriter
	conn    *NetConn
	hold    bool // hold the 101 for the first frame (a connect whose first frame is sure to come)
	upgrade bool // the library answered 101 and it was held: Hijack hands it to the NetConn
}

// WriteHeader keeps the 101 from net/http when it is to be held (so a middleware
// around the handler does not see it); any other status (a refused upgrade) goes
// through.
func (h *hijacker) WriteHeader(code int) {
	if h.hold && code == http.StatusSwitchingProtocols {
		h.upgrade = true
		return
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	// Everything the library reads goes through the NetConn, whose frameCounter counts
	// every client frame against the frame rate (the ones the library answers itself
	// included) and cuts the stream at the first frame over it: what net/http read
	// ahead (frames sent right after the handshake, before the 101) too, which the
	// NetConn returns first. So the library gets a reader with nothing buffered (and
	// net/http's 4 KiB one goes).
	h.conn = NewNetConn(conn)
	if n := brw.Reader.Buffered(); n > 0 {
		ahead, _ := brw.Reader.Peek(n)
		h.conn.ahead = bytes.Clone(ahead)
	}
	r := bufio.NewReaderSize(h.conn, readBuffer)
	// Whatever net/http still holds (the 101 answer) goes first, straight to the
	// connection: what goes through NetConn is frames only.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if h.upgrade {
		h.conn.hold(switchingProtocols(h.Header(), time.Now()))
	}
	return h.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(h.conn, writeBuffer)), nil
}

// switchingProtocols is the 101 answer with header, as net/http writes it: the status
// line, the header sorted, Date last.
func switchingProtocols(header http.Header, now time.Time) []byte {
	var b bytes.Buffer
	b.Grow(256)
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = header.Write(&b)
	b.WriteString("Date: ")
	b.Write(now.UTC().AppendFormat(b.AvailableBuffer(), http.TimeFormat))
	b.WriteString("\r\n\r\n")
	return b.Bytes()
}
