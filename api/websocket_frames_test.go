package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

// flood writes n frames as fast as the connection takes them while reading what comes
// back, until the server closes the connection. It returns how many frames came back,
// how long it all took (from before the first write to the close), and the error that
// ended the reads.
func (c *client) flood(n int, frame func(i int) string) (answers int, elapsed time.Duration, err error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wrote := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(wrote)
		for i := range n {
			if c.c.Write(ctx, websocket.MessageText, []byte(frame(i))) != nil {
				return // closed under us
			}
		}
	}()
	for {
		if _, err = c.read(10 * time.Second); err != nil {
			break
		}
		if answers++; answers == n {
			err = fmt.Errorf("all %d frames were answered and the connection is still open", n)
			break
		}
	}
	elapsed = time.Since(start)
	_ = c.c.CloseNow()
	<-wrote
	return answers, elapsed, err
}

// closedForFrames checks that err is the 1008 close of a connection over rate frames/s.
func closedForFrames(t *testing.T, err error, rate string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusCode(wire.CloseTooManyFrames) {
		t.Fatalf("flooding connection ended with %v, want close %d", err, wire.CloseTooManyFrames)
	}
	if want := "too many frames: at most " + rate + "/s"; ce.Reason != want {
		t.Fatalf("close reason %q, want %q", ce.Reason, want)
	}
}

// TestWebSocketFrameRate: a connection that sends pings faster than the frame rate is
// closed with 1008 after at most burst + rate·elapsed of them were answered; one within
// the rate is not, another connection of the same user is untouched, and the user
// reconnects at once.
func TestWebSocketFrameRate(t *testing.T) {
	const rate, burst = 50, 10
	e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})

	polite := e.dial(t, "alice", "")
	polite.expect(inboxSnapshot, 0)
	// 2·burst pings at half the rate: past the burst, on the refill alone.
	tick := time.NewTicker(time.Second / (rate / 2))
	for range 2 * burst {
		<-tick.C
		polite.send(`{"event":"ping"}`)
		polite.expect("pong", -1)
	}
	tick.Stop()

	flooder := e.dial(t, "alice", "")
	flooder.expect(inboxSnapshot, 0)
	before := e.metric("herald_ws_frames_received_total")
	pongs, elapsed, err := flooder.flood(500, func(int) string { return `{"event":"ping"}` })
	closedForFrames(t, err, "50")
	most := burst + rate*elapsed.Seconds()
	if float64(pongs) > most {
		t.Fatalf("%d pongs in %s, want at most %.1f (burst %d + %d/s)", pongs, elapsed, most, burst, rate)
	}
	// The pongs still queued at the close are dropped with the queue: what the server
	// acted on is the bound that matters.
	handled := e.metric("herald_ws_frames_received_total") - before
	if handled > most {
		t.Fatalf("%v frames acted on in %s, want at most %.1f (burst %d + %d/s)", handled, elapsed, most, burst, rate)
	}
	t.Logf("flood of 500 pings: %v acted on, %d pongs received, closed after %s", handled, pongs, elapsed)
	if n := e.metric("herald_ws_frame_rate_closes_total"); n != 1 {
		t.Fatalf("herald_ws_frame_rate_closes_total = %v, want 1", n)
	}

	polite.quiet() // the user's other connection is open
	again := e.dial(t, "alice", "")
	again.expect(inboxSnapshot, 0)
	for range burst {
		again.send(`{"event":"ping"}`) // a fresh connection has a full bucket
	}
	for range burst {
		again.expect("pong", -1)
	}
}

// countingStore is a store that counts the mark-read ops reaching its transactions and
// its unread-list reads.
type countingStore struct {
	persistence.Store
	markReads *atomic.Int64
	unreads   *atomic.Int64
}

func (s countingStore) Unread(ctx context.Context, user string, before int64, limit int) (persistence.UnreadPage, error) {
	s.unreads.Add(1)
	return s.Store.Unread(ctx, user, before, limit)
}

func (s countingStore) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	for i := range ops {
		if ops[i].Kind == persistence.OpMarkRead {
			s.markReads.Add(1)
		}
	}
	return s.Store.Apply(ctx, now, ops)
}

// TestWebSocketMarkReadFlood: mark-read frames with random ids sent as fast as one
// socket can send them cause no more store writes than the frame rate allows.
func TestWebSocketMarkReadFlood(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			const rate, burst = 50, 20
			marks := new(atomic.Int64)
			e := newEnvOpts(t, countingStore{stores[name](t), marks, new(atomic.Int64)}, envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})
			c := e.dial(t, "mallory", "")
			c.expect(inboxSnapshot, 0)
			answers, elapsed, err := c.flood(500, func(int) string {
				return fmt.Sprintf(`{"event":"mark-read","data":{"id":"%08x-%04x-7%03x-8%03x-%012x"}}`,
					rand.Uint32(), rand.Uint32N(1<<16), rand.Uint32N(1<<12), rand.Uint32N(1<<12), rand.Uint64N(1<<48))
			})
			closedForFrames(t, err, "50")
			most := burst + rate*elapsed.Seconds()
			if n := marks.Load(); float64(n) > most {
				t.Fatalf("%d mark-reads reached the store in %s, want at most %.1f (burst %d + %d/s)", n, elapsed, most, burst, rate)
			}
			if float64(answers) > most {
				t.Fatalf("%d error frames in %s, want at most %.1f", answers, elapsed, most)
			}
			t.Logf("flood of 500 mark-reads: %d reached the store, closed after %s", marks.Load(), elapsed)
		})
	}
}

// TestWebSocketRefreshFlood: 51 refresh-unread frames in about a second (within the
// frame rate) over a list too big to stay cached cost about one store read a second, not
// one per frame, and the client ends with a snapshot showing what was created between
// its refreshes.
func TestWebSocketRefreshFlood(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			unreads := new(atomic.Int64)
			e := newEnvOpts(t, countingStore{stores[name](t), new(atomic.Int64), unreads}, envOptions{})
			body := map[string]any{"receiverId": "erin", "type": "t", "payload": map[string]string{"text": strings.Repeat("x", 488)}}
			items := make([]map[string]any, wire.SnapshotSize)
			for i := range items {
				items[i] = body
			}
			if r := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": items}); r.code != http.StatusCreated {
				t.Fatalf("batch: %d %s", r.code, r.body)
			}
			c := e.dial(t, "erin", "")
			if f := c.expect(inboxSnapshot, wire.SnapshotSize); f.unread() != wire.SnapshotSize {
				t.Fatalf("first snapshot: unread %d", f.unread())
			}
			reads := unreads.Load()
			start := time.Now()
			tick := time.NewTicker(20 * time.Millisecond)
			var mid herald.Notification
			for i := range 50 {
				<-tick.C
				c.send(`{"event":"refresh-unread"}`)
				if i == 25 {
					mid = e.create("erin", "t")
				}
			}
			tick.Stop()
			last := e.create("erin", "t")
			c.send(`{"event":"refresh-unread"}`)
			snapshots := 0
			for {
				f := c.next()
				if f.Event != inboxSnapshot {
					if f.Event != "new-notification" || (f.seq() != mid.Seq && f.seq() != last.Seq) {
						t.Fatalf("got %s seq %d, want snapshots and the two new notifications", f.Event, f.seq())
					}
					continue
				}
				snapshots++
				if f.seq() >= last.Seq {
					if list := f.list(t); len(list) != wire.SnapshotSize || list[0].ID != last.ID || list[1].ID != mid.ID || f.unread() != wire.SnapshotSize+2 {
						t.Fatalf("last snapshot: %d items, unread %d; want the two new ones first, %d unread", len(list), f.unread(), wire.SnapshotSize+2)
					}
					break
				}
			}
			elapsed := time.Since(start)
			most := 1 + int64(elapsed/time.Second)
			if n := unreads.Load() - reads; n > most || int64(snapshots) > most {
				t.Fatalf("51 refreshes in %s: %d store reads, %d snapshots; want at most %d of each", elapsed, n, snapshots, most)
			}
			t.Logf("51 refreshes: %d snapshots, %d store reads, the last after %s", snapshots, unreads.Load()-reads, elapsed)
			c.quiet() // within the frame rate: still open
		})
	}
}

// TestWebSocketControlFrameRate: protocol pings, which the library answers itself, and
// the fragments of a message count against the frame rate like data frames: a flood of
// either is closed with 1008.
func TestWebSocketControlFrameRate(t *testing.T) {
	const rate, burst = 50, 10
	e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})

	pinger := e.dial(t, "alice", "")
	pinger.expect(inboxSnapshot, 0)
	closed := make(chan error, 1)
	go func() { // pongs are read by a reader: the library's Ping waits for one
		for {
			if _, _, err := pinger.c.Read(context.Background()); err != nil {
				closed <- err
				return
			}
		}
	}()
	start := time.Now()
	pings := 0
	for ; pings < 1000; pings++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pinger.c.Ping(ctx)
		cancel()
		if err != nil {
			break
		}
	}
	elapsed := time.Since(start)
	select {
	case err := <-closed:
		closedForFrames(t, err, "50")
	case <-time.After(10 * time.Second):
		t.Fatalf("%d protocol pings answered and the connection still open", pings)
	}
	if most := burst + rate*elapsed.Seconds(); float64(pings) > most {
		t.Fatalf("%d protocol pings answered in %s, want at most %.1f", pings, elapsed, most)
	}

	// One text message in 300 fragments of one byte each.
	fragments := e.dial(t, "alice", "")
	fragments.expect(inboxSnapshot, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := fragments.c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		msg := []byte(`{"event":"ping"}` + strings.Repeat(" ", 300))
		for i := range msg {
			if _, err := w.Write(msg[i : i+1]); err != nil {
				return
			}
		}
		_ = w.Close()
	}()
	_, err = fragments.read(10 * time.Second)
	closedForFrames(t, err, "50")
}

// TestWebSocketPipelinedPingsOverRate: a client that writes a thousand protocol pings in
// one write, right after the handshake or in the same write as the upgrade request (so
// that net/http reads them ahead), gets pongs for at most burst + rate·elapsed of them,
// then the 1008 close with its reason: the node answers no ping over the rate, however
// many it already holds. A client that answers the close sees the connection end at
// once; one that does not, within a second (the refusal's grace).
func TestWebSocketPipelinedPingsOverRate(t *testing.T) {
	const rate, burst, pings = 50, 10, 1000
	e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})
	flood := bytes.Repeat([]byte{0x89, 0x80, 1, 2, 3, 4}, pings) // masked pings, no payload
	for _, tc := range []struct {
		name                string
		withRequest, answer bool
	}{
		{"after the handshake", false, true},
		{"with the upgrade request", true, true},
		{"with the upgrade request, close unanswered", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			upgrade := []byte(fmt.Sprintf("GET /notifications/ws HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\n"+
				"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
				userToken(t, "alice")))
			r := bufio.NewReader(conn)
			start := time.Now()
			if tc.withRequest {
				_, err = conn.Write(append(upgrade, flood...))
			} else if _, err = conn.Write(upgrade); err == nil {
				var resp *http.Response
				if resp, err = http.ReadResponse(r, nil); err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("handshake: %s", resp.Status)
				}
				start = time.Now()
				if err == nil {
					_, err = conn.Write(flood)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.withRequest {
				if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("handshake: %v %v", resp, err)
				}
			}
			pongs := 0
			var closing []byte
			for closing == nil {
				first, payload, err := readServerFrame(r)
				switch {
				case err != nil:
					t.Fatalf("after %d pongs: %v, want the close frame", pongs, err)
				case first == 0x8a:
					pongs++
				case first == 0x88:
					closing = payload
				case first != 0x81: // the inbox's snapshot is a text frame
					t.Fatalf("a frame starting %#x", first)
				}
			}
			elapsed := time.Since(start)
			if len(closing) < 2 || binary.BigEndian.Uint16(closing) != uint16(wire.CloseTooManyFrames) ||
				string(closing[2:]) != "too many frames: at most 50/s" {
				t.Fatalf("close frame %q, want 1008 with its reason", closing)
			}
			if most := burst + rate*elapsed.Seconds(); float64(pongs) > most {
				t.Fatalf("%d of %d pings answered in %s, want at most %.1f", pongs, pings, elapsed, most)
			}
			// The end: a FIN, or a reset when the library ended its closing handshake
			// with frames within the rate still unread (answering one of them after its
			// close frame fails, which ends the handshake), never a wait.
			// (A reset's error differs by system: anything but the deadline is an end.)
			ended := func(err error) bool { return !errors.Is(err, os.ErrDeadlineExceeded) }
			if tc.answer {
				if _, err := conn.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xf0}); !ended(err) { // masked close, 1008
					t.Fatal(err)
				}
			}
			closedAt := time.Now()
			rest, err := io.ReadAll(r)
			if !ended(err) || len(rest) != 0 {
				t.Fatalf("after the close frame: %d bytes more, then %v; want the connection's end", len(rest), err)
			}
			if d, most := time.Since(closedAt), time.Second; tc.answer && d > most || d > 3*most {
				t.Fatalf("the connection ended %s after the close frame", d)
			}
		})
	}
}

// readServerFrame reads one unmasked frame: its first byte (FIN and opcode) and payload.
func readServerFrame(r *bufio.Reader) (first byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(r, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(r, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0], payload, err
}

// TestWebSocketErrorRef: an error frame echoes the "ref" of the client frame that
// caused it, whichever part refused the frame: the connection (a frame that fails to
// parse), the inbox (an id that cannot be a notification) or the store (a write that
// finds no such notification), also behind a write in flight. A frame without ref gets
// an error frame without one, and a ref that is no string of at most 64 bytes is
// itself refused (field ref), never echoed.
func TestWebSocketErrorRef(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		c := e.dial(t, "alice", "")
		c.expect(inboxSnapshot, 0)
		n := e.create("alice", "t")
		c.expect("new-notification", 1)
		missing := "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b" // a well-formed id of nobody's
		long := strings.Repeat("r", 65)
		cases := []struct {
			frame, ref string
			code       herald.Code
			field      string
		}{
			{`{"event":"subscribe","ref":"a1"}`, "a1", herald.CodeUnknownEvent, ""},
			{`{"event":"mark-read","ref":"a2"}`, "a2", herald.CodeValidation, "data"},
			{`{"ref":"a3","event":"mark-read","data":{"id":"nope"}}`, "a3", herald.CodeNotFound, "data.id"},
			{`{"event":"mark-read","data":{"id":"` + missing + `"},"ref":"a\"4"}`, `a"4`, herald.CodeNotFound, "data.id"},
			{`{"event":"subscribe"}`, "", herald.CodeUnknownEvent, ""},
			{`{"event":"ping","ref":7}`, "", herald.CodeValidation, "ref"},
			{`{"event":"ping","ref":"` + long + `"}`, "", herald.CodeValidation, "ref"},
			{`{"event":"ping","ref":"` + strings.Repeat("r", 64) + `","x":[}`, "", herald.CodeBadFrame, ""},
		}
		for _, tc := range cases {
			c.send(tc.frame)
			f := c.expectRef("error", tc.ref)
			var d struct {
				Code  herald.Code `json:"code"`
				Field string      `json:"field"`
			}
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Code != tc.code || d.Field != tc.field {
				t.Fatalf("%s: error frame %s, want code %s field %q", tc.frame, f.Data, tc.code, tc.field)
			}
		}
		// A mark-read that waits behind another's write: its error still names its own ref.
		c.send(`{"event":"mark-read","data":{"id":"` + n.ID + `"},"ref":"ok"}`)
		c.send(`{"event":"mark-read","data":{"id":"` + missing + `"},"ref":"behind"}`)
		c.expect("notification-read", 2)
		c.expectRef("error", "behind")
		c.send(`{"event":"ping","ref":"` + strings.Repeat("r", 64) + `"}`)
		c.expect("pong", -1)
	})
}

// expectRef reads the next frame and checks its event and its ref ("" for none).
func (c *client) expectRef(event, ref string) frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f struct {
		frame
		Ref *string `json:"ref"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame is not JSON: %s", b)
	}
	got := "<none>"
	if f.Ref != nil {
		got = *f.Ref
	}
	if want := map[bool]string{true: "<none>", false: ref}[ref == ""]; f.Event != event || got != want {
		c.t.Fatalf("got %s with ref %s (%s), want %s with ref %s", f.Event, got, b, event, want)
	}
	return f.frame
}
