package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/api/auth"
)

// TestSIGTERMClosesSockets: SIGTERM closes every WebSocket with 1001 — a client that
// has stopped reading included — and the process exits 0 within 10 s.
func TestSIGTERMClosesSockets(t *testing.T) {
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_API_KEYS=k1", "HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error"})
	wsBase := "ws" + strings.TrimPrefix(p.base, "http") + "/notifications/ws"
	dial := func(user string) *websocket.Conn {
		tok, _ := auth.SignUserToken([]byte(secret), user, "", time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, wsBase+"?token="+tok, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "unread-notifications") {
			t.Fatalf("first frame: %s %v", b, err)
		}
		return c
	}
	var readers []*websocket.Conn
	for i := 0; i < 20; i++ {
		readers = append(readers, dial(fmt.Sprintf("u%d", i%7)))
	}
	_ = dial("stalled") // never read again: its closing handshake cannot complete
	code, b := request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"stalled","type":"t"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}

	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	for i, c := range readers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := c.Read(ctx)
		cancel()
		if s := websocket.CloseStatus(err); s != websocket.StatusGoingAway {
			t.Fatalf("socket %d on SIGTERM: %v (%v), want 1001", i, s, err)
		}
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM with open sockets: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("exit took %s, want at most 10 s", d)
	}
}
