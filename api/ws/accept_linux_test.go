package ws

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/actors/inbox"
)

// TestUpgradeAnswerGoesWithFirstFrame: the 101 answer is held at the hijack and goes in
// the same write as the connection's first frame, so the client's first read has both;
// with no frame it goes alone once holdHead has passed, byte for byte what net/http
// would have written. A resume's (not held: it may have nothing to replay) is there at
// once.
func TestUpgradeAnswerGoesWithFirstFrame(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hold, first bool
	}{{"frame", true, true}, {"no frame", true, false}, {"resume", false, false}} {
		first := tc.first
		t.Run(tc.name, func(t *testing.T) {
			accepted := make(chan *NetConn, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hj := &hijacker{ResponseWriter: w, hold: tc.hold}
				c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(func() { _ = c.CloseNow() })
				accepted <- hj.conn
			}))
			defer srv.Close()
			start := time.Now() // before the hold can start
			client, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			nc := <-accepted // the hijack is done: before, net/http had written the 101 by now
			buf := make([]byte, 4096)
			n := peekNow(t, client, buf)
			if !tc.hold {
				if got := string(buf[:n]); !strings.HasPrefix(got, "HTTP/1.1 101 Switching Protocols\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
					t.Fatalf("right after a resume's hijack the client has %q, want the whole 101 answer", got)
				}
				return
			}
			if n > 0 {
				t.Fatalf("right after the hijack the client could read %q: the 101 was not held", buf[:n])
			}
			if first {
				if err := nc.writeText([]inbox.Frame{{Data: []byte("snapshot")}}, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err = client.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			head, frame, ok := bytes.Cut(buf[:n], []byte("\r\n\r\n"))
			answer := string(head) + "\r\n\r\n"
			want := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nUpgrade: websocket\r\nDate: "
			if !ok || !strings.HasPrefix(answer, want) {
				t.Fatalf("first read %q, want the 101 answer", buf[:n])
			}
			if _, err := time.Parse(http.TimeFormat, strings.TrimSuffix(strings.TrimPrefix(answer, want), "\r\n\r\n")); err != nil {
				t.Fatalf("101 answer %q: no Date last: %v", answer, err)
			}
			switch {
			case first && string(frame) != "\x81\x08snapshot":
				t.Fatalf("the first read has %q after the 101, want the first frame", frame)
			case !first && len(frame) != 0:
				t.Fatalf("the first read has %q after the 101, want nothing", frame)
			case !first && time.Since(start) < holdHead:
				t.Fatalf("the 101 went alone after %v, before holdHead (%v)", time.Since(start), holdHead)
			}
		})
	}
}

// peekNow returns how many bytes c has received and not read (copied into buf), without
// waiting: on loopback what the server wrote is there once its write returned.
func peekNow(t *testing.T, c net.Conn, buf []byte) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if errors.Is(rerr, syscall.EAGAIN) {
		return 0
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	return n
}
