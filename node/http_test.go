package node_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/node"
)

const httpSecret = "node-test-secret-0123456789abcdef"

// counter reads a counter or gauge of reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// closedAtOnce reports whether the server closes c without a byte of answer.
func closedAtOnce(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("not closed: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("closed after an answer: %q", b)
	}
}

// TestHTTPServerCapsConnections: at the cap, a new connection closes the plain
// connection, never a WebSocket; with only WebSockets open, the new one is closed at
// accept; a WebSocket that closes frees its place.
func TestHTTPServerCapsConnections(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	n, ln, l := serveNode(t, node.Options{MaxConns: 2, Registry: reg})
	base := "http://" + ln.Addr().String()
	dialWS := func(user string) *websocket.Conn {
		tok, _ := auth.SignUserToken([]byte(httpSecret), user, "", time.Hour)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/notifications/ws?token="+tok,
			&websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
		if err != nil {
			t.Fatalf("dial %s: %v", user, err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "unread-notifications") {
			t.Fatalf("first frame: %s %v", b, err)
		}
		return c
	}
	receive := func(c *websocket.Conn, user, typ string) {
		t.Helper()
		if _, err := n.Notify(ctx, herald.NewNotification{ReceiverID: user, Type: typ}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"type":"`+typ+`"`) {
			t.Fatalf("%s waiting for %s: %s %v", user, typ, b, err)
		}
	}
	dial := func(req string) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return c
	}
	const stalled = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"

	// One WebSocket and one stalled request fill the cap; a new connection closes the
	// stalled one and is served.
	ada := dialWS("ada")
	plain := dial(stalled)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz at the cap: %v %v", resp, err)
	}
	resp.Body.Close()
	closedAtOnce(t, plain)
	if v := counter(t, reg, "herald_http_connections_evicted_total"); v != 1 {
		t.Fatalf("evicted %v, want 1", v)
	}

	// Two WebSockets: a third connection is closed at accept, and both still receive.
	bob := dialWS("bob")
	closedAtOnce(t, dial(stalled))
	if v := counter(t, reg, "herald_http_connections_refused_total"); v != 1 {
		t.Fatalf("refused %v, want 1", v)
	}
	if v := counter(t, reg, "herald_http_connections_open"); v != 2 {
		t.Fatalf("open %v, want 2", v)
	}
	receive(ada, "ada", "kept-1")
	receive(bob, "bob", "kept-2")

	// A WebSocket that closes frees its place (it counted until its Close).
	if err := bob.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the closed WebSocket to stop counting", 10*time.Second, func() bool { return l.Open() == 1 })
	c := dial("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(c); !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Fatalf("/healthz after a WebSocket closed: %q", b)
	}
	receive(ada, "ada", "kept-3")
}

// TestHTTPServerOptionErrors: the node refuses HTTP limits it cannot honour, naming
// the field.
func TestHTTPServerOptionErrors(t *testing.T) {
	for field, o := range map[string]node.Options{
		"MaxConns":           {MaxConns: 1 << 30},
		"HTTPMaxHeaderBytes": {HTTPMaxHeaderBytes: 100},
		"HTTPReadTimeout":    {HTTPReadTimeout: -time.Second},
	} {
		o.DataDir, o.JWTSecret, o.Log = t.TempDir(), []byte(httpSecret), quiet()
		_, err := node.Open(context.Background(), o)
		var oe *node.OptionError
		if !errors.As(err, &oe) || oe.Option != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestSocketsLeaveRoomForRequests: WebSockets may take the cap only up to its reserve
// for plain requests: one more handshake is answered 503 before the upgrade, while
// /healthz and the open sockets are served.
func TestSocketsLeaveRoomForRequests(t *testing.T) {
	ctx := context.Background()
	_, ln, l := serveNode(t, node.Options{MaxConns: 64, Registry: prometheus.NewRegistry()})
	base := "http://" + ln.Addr().String()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/notifications/ws?token="
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	const sockets = 64 - 16 // the cap less its reserve
	for i := range sockets {
		tok, _ := auth.SignUserToken([]byte(httpSecret), "user-"+strconv.Itoa(i), "", time.Hour)
		c, _, err := websocket.Dial(ctx, wsURL+tok, &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	poll.Until(t, "the sockets to count", 10*time.Second, func() bool { return l.SocketsFull() })
	tok, _ := auth.SignUserToken([]byte(httpSecret), "one-more", "", time.Hour)
	_, resp, err := websocket.Dial(ctx, wsURL+tok, &websocket.DialOptions{HTTPClient: client})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a handshake beyond the sockets' share: %v %v, want 503 with Retry-After", resp, err)
	}
	for range 20 { // more than the reserve, one after the other
		r, err := client.Get(base + "/healthz")
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("/healthz with the sockets' share full: %v %v", r, err)
		}
		r.Body.Close()
	}
}

// serveNode opens a node with o (a data directory, the test secret and a quiet log
// filled in) and serves it with its own HTTP server on a loopback port, all closed when
// the test ends.
func serveNode(t *testing.T, o node.Options) (*node.Node, net.Listener, *api.Listener) {
	t.Helper()
	ctx := context.Background()
	o.DataDir, o.JWTSecret, o.Log = t.TempDir(), []byte(httpSecret), quiet()
	n, err := node.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, l, err := n.HTTPServer(ln)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = n.CloseSockets(ctx)
		_ = n.Close(ctx)
	})
	return n, ln, l
}
