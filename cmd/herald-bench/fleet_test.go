package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// standIn is a WebSocket server that plays a script to each connection: the test's
// stand-in for Herald, which can get things wrong on purpose.
type standIn struct {
	*httptest.Server
	mu     sync.Mutex
	sinces []string // the since parameter of each connection, in order
}

func newStandIn(t testing.TB, script func(ctx context.Context, conn *websocket.Conn, since string)) *standIn {
	s := &standIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/notifications/ws" || r.URL.Query().Get("token") == "" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		since := r.URL.Query().Get("since")
		s.mu.Lock()
		s.sinces = append(s.sinces, since)
		s.mu.Unlock()
		ctx := conn.CloseRead(r.Context())
		script(ctx, conn, since)
		<-ctx.Done()
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) connections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sinces...)
}

func note(seq int64, id string, m int64) string {
	return fmt.Sprintf(`{"event":"new-notification","seq":%d,"unread":1,"data":{"id":"%s","payload":{"t":1,"m":%d}}}`, seq, id, m)
}

func uuidN(n int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", n) }

// TestFleetKeepsTheBooks runs one client against a stand-in that duplicates, skips,
// sends garbage and closes with 4008: the client must count each and resume with since.
func TestFleetKeepsTheBooks(t *testing.T) {
	srv := newStandIn(t, func(ctx context.Context, conn *websocket.Conn, since string) {
		var frames []string
		if since == "" {
			frames = []string{
				`{"event":"unread-notifications","seq":0,"unread":0,"data":[]}`,
				note(1, uuidN(1), 0),
				note(2, uuidN(2), 1),
				note(2, uuidN(2), 1), // duplicate
				note(4, uuidN(4), 3), // skips 3
				`{"event":"error","data":{"code":"bad_frame","message":"x"}}`,
				`nope`,
			}
		} else {
			frames = []string{note(5, uuidN(5), 4)}
		}
		for _, f := range frames {
			if conn.Write(ctx, websocket.MessageText, []byte(f)) != nil {
				return
			}
		}
		if since == "" {
			conn.Close(4008, "too slow") // the client must come back with since=4
		}
	})
	var mu sync.Mutex
	var markers []int64
	f, err := newFleet(fleetConfig{
		wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/notifications/ws", secret: []byte("0123456789abcdef0123456789abcdef"),
		run: "t", n: 1, sourceIPs: 1, concurrency: 1, tokenTTL: time.Minute,
		onNote: func(c *client, d *frameData, now int64) {
			mu.Lock()
			markers = append(markers, d.Payload.M)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.start(t.Context())
	if !f.waitReady(t.Context(), 10*time.Second) {
		t.Fatalf("not connected: %v", f.firstError())
	}
	ok := pollUntil(t.Context(), 10*time.Second, time.Millisecond, func() bool { return f.frames.Load() == 8 })
	f.stop()
	if !ok {
		t.Fatalf("%d frames arrived, want 8", f.frames.Load())
	}
	if got := srv.connections(); len(got) != 2 || got[0] != "" || got[1] != "4" {
		t.Errorf("connections' since: %q, want none then 4", got)
	}
	want := streamCounts{Entries: 5, Duplicates: 1, Gaps: 1, Skipped: 1, Snapshots: 1}
	if c := f.counts(); c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	if f.badFrames.Load() != 1 || f.errorFrames.Load() != 1 || f.drops.Load() != 1 || f.resumed.Load() != 1 {
		t.Errorf("bad frames %d, error frames %d, drops %d, resumed %d; want 1 each",
			f.badFrames.Load(), f.errorFrames.Load(), f.drops.Load(), f.resumed.Load())
	}
	if r := f.closeReasons(); r["close 4008"] != 1 {
		t.Errorf("close reasons %v, want close 4008 once", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(markers) != "[0 1 3 4]" {
		t.Errorf("markers handed to onNote: %v, want [0 1 3 4] (no duplicate)", markers)
	}
}

func TestFleetReportsHandshakeFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"not_found"}}`, http.StatusNotFound)
	}))
	defer srv.Close()
	f, err := newFleet(fleetConfig{
		wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/notifications/ws", secret: []byte("0123456789abcdef0123456789abcdef"),
		run: "t", n: 2, sourceIPs: 2, concurrency: 2, tokenTTL: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.start(t.Context())
	all := f.waitReady(t.Context(), time.Minute)
	f.stop()
	if all || f.failed.Load() != 2 || f.dialErrors.Load() != 2*dialAttempts {
		t.Fatalf("all %v, failed %d, dial errors %d", all, f.failed.Load(), f.dialErrors.Load())
	}
	if err := f.firstError(); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("first error %v, want the 404", err)
	}
}
