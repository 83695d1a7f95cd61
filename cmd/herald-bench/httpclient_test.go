package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer is an httptest server that counts the connections it accepted.
func rawServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestRawClientAnswers: the raw client reads what herald answers (a body with a length,
// a chunked body, errors with their start, a 429's Retry-After) as net/http's client
// would, sends the request a handler expects, and keeps one connection for them all.
func TestRawClientAnswers(t *testing.T) {
	long := strings.Repeat("e", 3*errorBodyLimit)
	srv, conns := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer k" ||
			r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(body)) {
			http.Error(w, "bad request: "+r.Method+" "+r.Header.Get("Authorization"), http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/length":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(append([]byte("got "), body...))
		case "/chunked":
			w.WriteHeader(http.StatusAccepted)
			for range 3 {
				_, _ = w.Write([]byte("chunk;"))
				w.(http.Flusher).Flush()
			}
		case "/busy":
			w.Header().Set("Retry-After", "3")
			http.Error(w, "  slow down  ", http.StatusTooManyRequests)
		case "/long-error":
			http.Error(w, long, http.StatusUnprocessableEntity)
		}
	})
	rc := newRawClient(srv.URL, "Bearer k", 4)
	if rc == nil {
		t.Fatalf("no raw client for %s", srv.URL)
	}
	ctx := t.Context()
	for range 2 {
		status, _, answer, err := rc.postRead(ctx, "/length", []byte(`{"a":1}`), []byte{})
		if status != http.StatusCreated || err != nil || string(answer) != `got {"a":1}` {
			t.Fatalf("/length: %d %q %v", status, answer, err)
		}
		status, _, answer, err = rc.postRead(ctx, "/chunked", []byte(`{}`), []byte{})
		if status != http.StatusAccepted || err != nil || string(answer) != "chunk;chunk;chunk;" {
			t.Fatalf("/chunked: %d %q %v", status, answer, err)
		}
		if status, _, answer, err = rc.postRead(ctx, "/length", []byte(`x`), nil); status != http.StatusCreated || err != nil || answer != nil {
			t.Fatalf("/length, body discarded: %d %q %v", status, answer, err)
		}
		status, retry, _, err := rc.postRead(ctx, "/busy", nil, nil)
		var he *httpError
		if status != http.StatusTooManyRequests || retry != 3*time.Second || !errors.As(err, &he) || he.body != "slow down" {
			t.Fatalf("/busy: %d %v %v", status, retry, err)
		}
		status, _, _, err = rc.postRead(ctx, "/long-error", nil, nil)
		if !errors.As(err, &he) || status != http.StatusUnprocessableEntity || len(he.body) != errorBodyLimit {
			t.Fatalf("/long-error: %d, %d bytes kept, %v", status, len(he.body), err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 10 requests in turn, want 1", n)
	}
}

// TestRawClientConnections: a connection whose answer says close, or that sat idle too
// long, is not used again; a request whose context ends stops at once and leaves its
// connection behind.
func TestRawClientConnections(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	srv, conns := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/hang":
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusCreated)
	})
	defer close(release)
	rc := newRawClient(srv.URL, "Bearer k", 4)
	ctx := t.Context()
	post := func(path string) {
		t.Helper()
		if status, _, _, err := rc.postRead(ctx, path, nil, nil); status != http.StatusCreated || err != nil {
			t.Fatalf("%s: %d %v", path, status, err)
		}
	}
	post("/close")
	post("/ok")
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after a Connection: close answer and another request, want 2", n)
	}
	post("/ok")
	c := <-rc.idle
	c.used = time.Now().Add(-rawIdleMax)
	rc.idle <- c
	post("/ok")
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections after a stale idle one, want 3", n)
	}

	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, _, err := rc.postRead(hctx, "/hang", nil, nil)
		done <- err
	}()
	<-arrived // the request is at the server, waiting for its answer
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request did not return")
	}
	if len(rc.idle) != 0 {
		t.Errorf("%d idle connections after the cancelled request, want 0 (its connection is closed)", len(rc.idle))
	}
}

// TestRawClientMalformed: answers herald never sends are errors, not guesses.
func TestRawClientMalformed(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 2x1 Created\r\n\r\n",
		"SMTP 220 hello\r\n",
		"HTTP/1.1 201 Created\r\nno colon\r\n\r\n",
		"HTTP/1.1 201 Created\r\nContent-Length: -4\r\n\r\n",
		"HTTP/1.1 201 Created\r\n\r\nbody until the end",
		"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nshort",
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte(answer))
			_ = c.Close()
		}()
		rc := newRawClient("http://"+ln.Addr().String(), "Bearer k", 1)
		status, _, _, err := rc.postRead(t.Context(), "/x", nil, []byte{})
		ln.Close()
		if err == nil {
			t.Errorf("%q: status %d and no error", answer, status)
		}
		if len(rc.idle) != 0 {
			t.Errorf("%q: the connection was kept", answer)
		}
	}
	if rc := newRawClient("https://example.test", "Bearer k", 1); rc != nil {
		t.Error("a raw client for https")
	}
}
