//go:build linux

package api_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/internal/poll"
)

// rawSocket is a WebSocket client of its own over loopback, with a 4 KiB receive
// buffer: after the handshake it reads only when the test says so, so that the server
// sees a peer that stopped reading.
type rawSocket struct {
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) dialRaw(t *testing.T, user string) *rawSocket {
	t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// Before connecting, so the window the server sees is small from the start.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /notifications/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
		u.Host, userToken(t, user))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &rawSocket{conn: conn, r: r}
}

// next reads one server frame: its first byte (FIN and opcode) and payload.
func (s *rawSocket) next() (first byte, payload []byte, err error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err = io.ReadFull(s.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(s.r, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(s.r, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(s.r, payload)
	return h[0], payload, err
}

// TestWebSocketStoppedReaderGets4008: a client that stops reading while its
// notifications keep coming is closed with 4008, and reading again (after the server
// has let go of the connection) it finds every frame sent to it whole and in order,
// then the close frame with 4008, never a connection cut mid-frame (1006). It
// reconnects with the last seq it holds and loses nothing. (Linux only: elsewhere the
// writer cannot read the kernel's send queue, and such a client sees 1006.)
func TestWebSocketStoppedReaderGets4008(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{
		api:   api.Options{MaxPayload: 16 << 10},
		ws:    ws.Options{QueueSize: 8192, WriteTimeout: 500 * time.Millisecond},
		inbox: inbox.Options{ReadTimeout: time.Minute},
	})
	s := e.dialRaw(t, "halt")
	stored := e.floodUntilSlowConsumer(t, "halt")
	if n := e.metric("herald_ws_slow_consumer_closes_total"); n != 1 {
		t.Fatalf("slow-consumer closes = %v, want 1", n)
	}
	// The server has done with the connection (its closing handshake waits 5 s for an
	// answer that cannot come) before the client reads again.
	poll.Until(t, "the server to let go of the connection", 20*time.Second, func() bool {
		return e.metric("herald_ws_connections") == 0
	})

	var last int64
	frames := 0
	for {
		first, p, err := s.next()
		if err != nil {
			t.Fatalf("after %d frames (the last seq %d of %d stored): %v, before any close frame", frames, last, stored, err)
		}
		if first == 0x88 { // FIN + close
			if len(p) < 2 {
				t.Fatalf("close frame without a code: %q", p)
			}
			if code := binary.BigEndian.Uint16(p); code != uint16(wire.CloseSlowConsumer) {
				t.Fatalf("close code %d (%q), want %d", code, p[2:], wire.CloseSlowConsumer)
			}
			t.Logf("close frame 4008 %q after %d frames, seq %d of %d stored", p[2:], frames, last, stored)
			break
		}
		if first != 0x81 {
			t.Fatalf("frame %d: first byte %#x, want a final text frame", frames, first)
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatalf("frame %d is not JSON: %v", frames, err)
		}
		frames++
		if f.Event == inboxSnapshot {
			continue
		}
		if f.Event != "new-notification" || f.seq() != last+1 {
			t.Fatalf("frame %d: %s seq %d, want new-notification seq %d", frames, f.Event, f.seq(), last+1)
		}
		last = f.seq()
	}
	again := e.dial(t, "halt", fmt.Sprintf("?since=%d", last))
	for seq := last + 1; seq <= stored; seq++ {
		again.expect("new-notification", seq)
	}
}
