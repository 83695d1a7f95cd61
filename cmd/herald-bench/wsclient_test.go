package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// dialTest dials the raw client at srv's /ws within a few seconds.
func dialTest(t *testing.T, srv *httptest.Server, limit int) (*rawWS, error) {
	t.Helper()
	u, err := url.Parse("ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?token=abc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return dialRaw(ctx, &net.Dialer{}, u, limit)
}

// TestRawWebSocketSpeaksTheLibrarysProtocol runs the raw client against the WebSocket
// library's server: the library checks the handshake and every frame the client sends
// (masked pongs and the close echo), and the client must read what the library writes.
func TestRawWebSocketSpeaksTheLibrarysProtocol(t *testing.T) {
	pinged := make(chan error, 1) // the outcome of the server's ping
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != "abc" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		// The library reads the client's pongs and close reply only while reading.
		ctx := conn.CloseRead(r.Context())
		_ = conn.Write(ctx, websocket.MessageText, []byte(`{"event":"snapshot"}`))
		// A message in three frames, and one over the client's buffer.
		wr, err := conn.Writer(ctx, websocket.MessageText)
		if err != nil {
			return
		}
		for _, part := range []string{`{"a":`, `"frag`, `ment"}`} {
			if _, err := wr.Write([]byte(part)); err != nil {
				return
			}
			if f, ok := wr.(interface{ Flush() error }); ok {
				_ = f.Flush()
			}
		}
		if wr.Close() != nil {
			return
		}
		_ = conn.Write(ctx, websocket.MessageBinary, []byte(strings.Repeat("x", 70_000)))
		// Ping waits for the pong, which the client sends while it reads.
		ping := make(chan error, 1)
		go func() {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			ping <- conn.Ping(pctx)
		}()
		_ = conn.Write(ctx, websocket.MessageText, []byte("after the ping"))
		pinged <- <-ping
		_ = conn.Close(4001, "bye")
	}))
	defer srv.Close()

	c, err := dialTest(t, srv, 1<<20)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.closeNow()
	want := []struct {
		text bool
		msg  string
	}{
		{true, `{"event":"snapshot"}`},
		{true, `{"a":"fragment"}`},
		{false, strings.Repeat("x", 70_000)},
		{true, "after the ping"},
	}
	buf := make([]byte, 0, 16)
	for i, w := range want {
		text, msg, err := c.next(buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if text != w.text || string(msg) != w.msg {
			t.Fatalf("message %d: text %v, %d bytes %.40q; want text %v, %.40q", i, text, len(msg), msg, w.text, w.msg)
		}
		buf = msg
	}
	// The ping was answered before the close: the close frame comes after it.
	_, _, err = c.next(buf)
	if code := closeStatus(err); code != 4001 {
		t.Fatalf("after the messages: %v (close status %d), want the server's close 4001", err, code)
	}
	var ce *closeError
	if !errors.As(err, &ce) || ce.reason != "bye" {
		t.Fatalf("close error %v, want reason bye", err)
	}
	select {
	case err := <-pinged:
		if err != nil {
			t.Fatalf("the server's ping got no pong: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's ping never returned")
	}
}

// TestRawWebSocketRefusals: a refused upgrade says what the server answered, a 101
// without the right accept key is no WebSocket, and a message over the limit is an
// error, not a read of the whole thing.
func TestRawWebSocketRefusals(t *testing.T) {
	t.Run("401", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusUnauthorized)
		}))
		defer srv.Close()
		_, err := dialTest(t, srv, 1<<20)
		if !errors.Is(err, errHandshake) || !strings.Contains(err.Error(), "401 Unauthorized") {
			t.Fatalf("dial: %v, want a refused handshake naming 401 Unauthorized", err)
		}
	})
	t.Run("wrong accept key", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Sec-WebSocket-Accept", "bm90IHRoZSBrZXk=")
			w.WriteHeader(http.StatusSwitchingProtocols)
		}))
		defer srv.Close()
		_, err := dialTest(t, srv, 1<<20)
		if !errors.Is(err, errHandshake) || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
			t.Fatalf("dial: %v, want a refused handshake about Sec-WebSocket-Accept", err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			_ = conn.Write(r.Context(), websocket.MessageText, []byte(strings.Repeat("y", 5000)))
			_, _, _ = conn.Read(r.Context()) // until the client hangs up
		}))
		defer srv.Close()
		c, err := dialTest(t, srv, 4096)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.closeNow()
		if _, msg, err := c.next(nil); err == nil || !strings.Contains(err.Error(), "read limit") {
			t.Fatalf("next: %d bytes, %v; want the read limit's error", len(msg), err)
		}
	})
}

// TestRawWebSocketBadLengths: a frame length with the top bit set, which RFC 6455
// forbids, fails the connection instead of the bench (a negative length would panic);
// the server's first frame, written with its 101 in one segment, is read.
func TestRawWebSocketBadLengths(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + wsGUID))
		answer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
		good := []byte{0x81, 2, 'h', 'i'}
		bad := []byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}
		_, _ = c.Write(append(append([]byte(answer), good...), bad...))
		_, _ = io.Copy(io.Discard, c)
	}()
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/ws")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialRaw(ctx, &net.Dialer{}, u, 1<<20)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.closeNow()
	if text, msg, err := c.next(nil); err != nil || !text || string(msg) != "hi" {
		t.Fatalf("first frame: %v %q %v, want the text hi", text, msg, err)
	}
	if _, _, err := c.next(nil); err == nil || !strings.Contains(err.Error(), "top bit") {
		t.Fatalf("the bad length: %v, want an error about its top bit", err)
	}
}
