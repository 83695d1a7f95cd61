package main

import (
	"context"
	"errors"
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

// TestFrameRateVariables: HERALD_WS_FRAME_RATE and HERALD_WS_FRAME_BURST reach the
// sockets: a client sending pings as fast as it can is closed with 1008 naming the
// rate; with a rate of 0 the same flood is answered in full.
func TestFrameRateVariables(t *testing.T) {
	bin := buildHerald(t)
	flood := func(rate string) (pongs int, elapsed time.Duration, err error) {
		p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
			"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error",
			"HERALD_WS_FRAME_RATE=" + rate, "HERALD_WS_FRAME_BURST=3"})
		tok, _ := auth.SignUserToken([]byte(secret), "alice", "", time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.base, "http")+"/notifications/ws?token="+tok, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "unread-notifications") {
			t.Fatalf("first frame: %s %v", b, err)
		}
		// Fewer than the outbound queue (HERALD_WS_QUEUE, 256) holds, so that the pongs
		// fit it however slowly this client reads them on a loaded machine.
		const n = 200
		start := time.Now()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for range n {
				if c.Write(ctx, websocket.MessageText, []byte(`{"event":"ping"}`)) != nil {
					return
				}
			}
		}()
		defer func() { <-wrote }()
		defer func() { elapsed = time.Since(start) }() // before waiting for the writes
		for pongs < n {
			if _, _, err = c.Read(ctx); err != nil {
				return pongs, 0, err
			}
			pongs++
		}
		return pongs, 0, nil
	}

	pongs, elapsed, err := flood("5")
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many frames: at most 5/s" {
		t.Fatalf("flood at HERALD_WS_FRAME_RATE=5: %d pongs, then %v; want a 1008 close, \"too many frames: at most 5/s\"", pongs, err)
	}
	if most := 3 + 5*elapsed.Seconds(); float64(pongs) > most {
		t.Fatalf("%d pongs in %s with HERALD_WS_FRAME_BURST=3, want at most %.1f", pongs, elapsed, most)
	}
	if pongs, _, err := flood("0"); err != nil || pongs != 200 {
		t.Fatalf("flood at HERALD_WS_FRAME_RATE=0 (no limit): %d pongs, then %v", pongs, err)
	}
}
