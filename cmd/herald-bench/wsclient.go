package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// rawWS is a client WebSocket connection (RFC 6455) with none of net/http's client
// machinery, as rawClient is for REST: the dial is a TCP connect and one write of the
// upgrade request, and frames are read straight off a small buffer on the client's
// goroutine. A dial through net/http's transport and the WebSocket library cost the
// bench about as much CPU per connect as the server's whole handshake and snapshot;
// on a machine the bench shares with the server, that is CPU the server does not get.
// What goes over the wire is the same: one upgrade request, then the server's frames.
//
// It speaks what a reading client needs: text and binary messages (fragmented or not),
// pings answered with pongs, and the close handshake. It writes no messages of its own.
// Only ws:// is spoken; wss:// goes through the library (see sock).
type rawWS struct {
	nc    net.Conn
	br    *bufio.Reader
	limit int
	ctl   [125]byte     // a control frame's payload
	wbuf  [6 + 125]byte // the control frame being written
}

// wsGUID is the key suffix of RFC 6455 section 1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// rawReadBuffer is each connection's read buffer: a frame header and a small message
// fit; larger payloads are read straight into the caller's buffer.
const rawReadBuffer = 2 << 10

// closeError is the close frame a server sent: its status code (1005 when it gave none)
// and reason.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	return "websocket closed by the server: status " + strconv.Itoa(e.code) + " " + strconv.Quote(e.reason)
}

// errHandshake marks an upgrade the server did not complete: the error says what it
// answered.
var errHandshake = errors.New("websocket handshake refused")

// dialRaw opens a WebSocket connection to u (ws://host:port/path?query) through d,
// within ctx. The server's first frames may arrive with its 101: they stay in the
// buffer for next.
func dialRaw(ctx context.Context, d *net.Dialer, u *url.URL, limit int) (*rawWS, error) {
	nc, err := d.DialContext(ctx, "tcp", dialAddr(u))
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c := &rawWS{nc: nc, br: bufio.NewReaderSize(nc, rawReadBuffer), limit: limit}
	err = c.handshake(u)
	if !stop() || ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// handshake writes the upgrade request and checks the server's answer.
func (c *rawWS) handshake(u *url.URL) error {
	var nonce [16]byte
	binary.LittleEndian.PutUint64(nonce[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(nonce[8:], rand.Uint64())
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := make([]byte, 0, 256+len(u.RawQuery))
	req = append(req, "GET "...)
	req = append(req, u.RequestURI()...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, u.Host...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	req = append(req, key...)
	req = append(req, "\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	if _, err := c.nc.Write(req); err != nil {
		return err
	}
	line, err := c.line()
	if err != nil {
		return fmt.Errorf("reading the upgrade answer: %w", err)
	}
	// "HTTP/1.1 101 Switching Protocols"
	proto, status, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(status) < 3 {
		return fmt.Errorf("%w: malformed status line %q", errHandshake, line)
	}
	if code, _, _ := bytes.Cut(status, []byte(" ")); string(code) != "101" {
		return fmt.Errorf("%w: handshake answered %s", errHandshake, status)
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	upgrade, connection, accepted := false, false, false
	for {
		line, err := c.line()
		if err != nil {
			return fmt.Errorf("reading the upgrade answer: %w", err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: malformed header line %q", errHandshake, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		case bytes.EqualFold(name, []byte("Connection")):
			connection = hasToken(value, "upgrade")
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accepted = string(value) == accept
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			return fmt.Errorf("%w: the server chose extensions %q that were not offered", errHandshake, value)
		}
	}
	if !upgrade || !connection || !accepted {
		return fmt.Errorf("%w: 101 without Upgrade: websocket, Connection: upgrade and the right Sec-WebSocket-Accept", errHandshake)
	}
	return nil
}

// line reads one CRLF-terminated line of the answer's head, without the CRLF.
func (c *rawWS) line() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: a header line over %d bytes", errHandshake, rawReadBuffer)
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// hasToken reports whether the comma-separated header value holds token (any case).
func hasToken(value []byte, token string) bool {
	for part := range bytes.SplitSeq(value, []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(part), []byte(token)) {
			return true
		}
	}
	return false
}

// The opcodes of RFC 6455 section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// next reads the next message into buf (reusing its room) and returns whether it is
// text, and the message. Pings are answered on the way; a close frame is answered and
// returned as a *closeError. A frame the protocol forbids from a server is an error.
func (c *rawWS) next(buf []byte) (text bool, msg []byte, err error) {
	msg = buf[:0]
	started := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return false, msg, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[0]&0x70 != 0 {
			return false, msg, errors.New("websocket: a frame with reserved bits set (no extension was negotiated)")
		}
		if h[1]&0x80 != 0 {
			return false, msg, errors.New("websocket: a masked frame from the server")
		}
		n := int64(h[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return false, msg, noEOF(err)
			}
			n = int64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(c.br, ext[:]); err != nil {
				return false, msg, noEOF(err)
			}
			u := binary.BigEndian.Uint64(ext[:])
			if u > math.MaxInt64 { // RFC 6455: the most significant bit is 0
				return false, msg, errors.New("websocket: a 64-bit frame length with its top bit set")
			}
			n = int64(u)
		}
		if op >= opClose {
			if !fin || n > 125 {
				return false, msg, errors.New("websocket: a fragmented or oversized control frame")
			}
			payload := c.ctl[:n]
			if _, err := io.ReadFull(c.br, payload); err != nil {
				return false, msg, noEOF(err)
			}
			switch op {
			case opPing:
				if err := c.write(opPong, payload); err != nil {
					return false, msg, err
				}
			case opPong:
			case opClose:
				ce := &closeError{code: 1005}
				if n >= 2 {
					ce.code = int(binary.BigEndian.Uint16(payload))
					ce.reason = string(payload[2:])
					_ = c.write(opClose, payload[:2]) // echo the code, as the close handshake asks
				} else {
					_ = c.write(opClose, nil)
				}
				return false, msg, ce
			default:
				return false, msg, fmt.Errorf("websocket: unknown control opcode %#x", op)
			}
			continue
		}
		switch {
		case op == opContinuation && !started:
			return false, msg, errors.New("websocket: a continuation frame with no message to continue")
		case (op == opText || op == opBinary) && started:
			return false, msg, errors.New("websocket: a new message inside a fragmented one")
		case op == opText || op == opBinary:
			started, text = true, op == opText
		case op != opContinuation:
			return false, msg, fmt.Errorf("websocket: unknown data opcode %#x", op)
		}
		if n > int64(c.limit-len(msg)) {
			return false, msg, fmt.Errorf("websocket: a message over the read limit of %d bytes", c.limit)
		}
		at := len(msg)
		msg = append(msg[:at], make([]byte, int(n))...)[:at+int(n)]
		if _, err := io.ReadFull(c.br, msg[at:]); err != nil {
			return false, msg[:at], noEOF(err)
		}
		if fin {
			return text, msg, nil
		}
	}
}

// noEOF turns an end of stream inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// write sends one control frame (a payload of at most 125 bytes), masked as a client's
// frames must be.
func (c *rawWS) write(op byte, payload []byte) error {
	frame := c.wbuf[:0]
	mask := rand.Uint32()
	frame = append(frame, 0x80|op, 0x80|byte(len(payload)))
	frame = binary.BigEndian.AppendUint32(frame, mask)
	start := len(frame)
	frame = append(frame, payload...)
	for i := range frame[start:] {
		frame[start+i] ^= byte(mask >> (24 - 8*(i%4)))
	}
	_, err := c.nc.Write(frame)
	return err
}

// closeNow closes the connection at once, without a close handshake.
func (c *rawWS) closeNow() error { return c.nc.Close() }

// sock is one client connection: a rawWS for ws:// endpoints, the WebSocket library's
// connection (through net/http) for wss://.
type sock struct {
	raw *rawWS
	lib *websocket.Conn
}

// next reads the next message into buf; see rawWS.next.
func (s *sock) next(buf []byte) (text bool, msg []byte, err error) {
	if s.raw != nil {
		return s.raw.next(buf)
	}
	// A context without Done costs the read no timer.
	typ, r, err := s.lib.Reader(context.Background())
	if err != nil {
		return false, buf[:0], err
	}
	msg, err = readAll(r, buf[:0])
	return typ == websocket.MessageText, msg, err
}

func (s *sock) closeNow() error {
	if s.raw != nil {
		return s.raw.closeNow()
	}
	return s.lib.CloseNow()
}

// closeStatus is the close code a server sent, from either kind of connection, or -1.
func closeStatus(err error) int {
	if ce, ok := errors.AsType[*closeError](err); ok {
		return ce.code
	}
	return int(websocket.CloseStatus(err))
}
