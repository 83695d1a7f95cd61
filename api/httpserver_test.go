package api_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/api"
)

// TestHTTPServerOnUnixSocket: the cap and the header limit hold on a listener that is
// not TCP (a Unix socket): at a cap of 1, a second connection closes the first, whose
// stalled request was never answered; headers over the limit set are 431.
func TestHTTPServerOnUnixSocket(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, l, err := api.NewHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), api.HTTPOptions{MaxConns: 1, MaxHeaderBytes: 16 << 10, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	dial := func(req string) net.Conn {
		c, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return c
	}
	stalled := dial("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	for _, tc := range []struct {
		pad  int
		want int
	}{{15 << 10, 200}, {17 << 10, 431}} {
		c := dial("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + strings.Repeat("a", tc.pad) + "\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes of headers: %v", tc.pad, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of headers: %d, want %d", tc.pad, resp.StatusCode, tc.want)
		}
	}
	// Closed with the stalled request unread: an EOF, or a reset.
	if b, err := io.ReadAll(stalled); err != nil && !errors.Is(err, syscall.ECONNRESET) || len(b) > 0 {
		t.Fatalf("the first connection, at the cap: %q %v; want closed without an answer", b, err)
	}
	if l.Max() != 1 {
		t.Fatalf("Max %d", l.Max())
	}
}
