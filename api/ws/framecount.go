package ws

// frameCounter counts the client's frames as their bytes go by under the library's
// reader (NetConn.Read): every frame, control frames (ping, pong, close) and the continuation
// frames of a fragmented message included, since the library answers pings itself and
// a client could otherwise make the node work without ever sending a data message. It
// reads RFC 6455 frame headers only and skips payloads by their length; it never
// changes a byte. seen is called once per frame header, on the goroutine that reads
// (the connection's reader, or the library's closing handshake, never both at once),
// and says whether the frame is within the rate. The first frame that is not starts
// what the library must never see (see scan); seen is not called again.
type frameCounter struct {
	seen func() bool

	state   uint8  // where in a frame the next byte is
	op      uint8  // the opcode of the current frame
	need    int    // bytes still to read in the current part (extended length, mask)
	length  uint64 // the payload length being assembled
	masked  bool
	payload uint64 // payload bytes still to skip

	// over: a frame went over the rate. closed: since then, a close frame of the
	// client's (its answer to the node's 1008) has gone by whole.
	over, closed bool
}

// The parts of a frame.
const (
	fcFirst   = iota // FIN, RSV, opcode
	fcSecond         // MASK, 7-bit length
	fcLength         // the 16- or 64-bit length
	fcMask           // the 4-byte masking key
	fcPayload        // the payload
)

// scan follows the frames through b, the next bytes of the stream, and returns how
// many of its first bytes come before the first frame over the rate: len(b) while
// every frame is within it, 0 once one was not. It reads b to its end either way, so
// that it keeps following the frames after the cut (for the client's close frame).
func (f *frameCounter) scan(b []byte) int {
	keep := len(b)
	if f.over {
		keep = 0
	}
	for n := len(b); len(b) > 0; {
		switch f.state {
		case fcFirst:
			f.op = b[0] & opMask
			if !f.over && f.seen != nil && !f.seen() {
				f.over, keep = true, n-len(b)
			}
			b = b[1:]
			f.state = fcSecond
		case fcSecond:
			c := b[0]
			b = b[1:]
			f.masked, f.length = c&0x80 != 0, uint64(c&0x7f)
			switch f.length {
			case 126:
				f.state, f.need, f.length = fcLength, 2, 0
			case 127:
				f.state, f.need, f.length = fcLength, 8, 0
			default:
				f.afterLength()
			}
		case fcLength:
			f.length = f.length<<8 | uint64(b[0])
			b = b[1:]
			if f.need--; f.need == 0 {
				f.afterLength()
			}
		case fcMask:
			k := min(f.need, len(b))
			b = b[k:]
			if f.need -= k; f.need == 0 {
				f.startPayload()
			}
		case fcPayload:
			k := uint64(len(b))
			if k > f.payload {
				k = f.payload
			}
			b = b[k:]
			if f.payload -= k; f.payload == 0 {
				f.endFrame()
			}
		}
	}
	return keep
}

func (f *frameCounter) afterLength() {
	if f.masked {
		f.state, f.need = fcMask, 4
		return
	}
	f.startPayload()
}

func (f *frameCounter) startPayload() {
	f.payload = f.length
	f.state = fcPayload
	if f.payload == 0 {
		f.endFrame()
	}
}

func (f *frameCounter) endFrame() {
	f.state = fcFirst
	if f.over && f.op == opClose {
		f.closed = true
	}
}
