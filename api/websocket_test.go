package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/internal/poll"
)

// frame is a server frame as a client sees it.
type frame struct {
	Event  string          `json:"event"`
	Seq    *int64          `json:"seq"`
	Unread *int64          `json:"unread"`
	Data   json.RawMessage `json:"data"`
}

func (f frame) seq() int64 {
	if f.Seq == nil {
		return -1
	}
	return *f.Seq
}

func (f frame) unread() int64 {
	if f.Unread == nil {
		return -1
	}
	return *f.Unread
}

func (f frame) notification(t *testing.T) herald.Notification {
	t.Helper()
	var n herald.Notification
	if err := json.Unmarshal(f.Data, &n); err != nil {
		t.Fatalf("%s frame data is not a notification: %v: %s", f.Event, err, f.Data)
	}
	return n
}

func (f frame) list(t *testing.T) []herald.Notification {
	t.Helper()
	var ns []herald.Notification
	if err := json.Unmarshal(f.Data, &ns); err != nil {
		t.Fatalf("%s frame data is not a list: %v: %s", f.Event, err, f.Data)
	}
	return ns
}

// client is a real WebSocket client over loopback.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func (e *env) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(e.url, "http") + "/notifications/ws" + query
}

// dial opens a WebSocket for user, with query appended to the URL ("?since=3").
func (e *env) dial(t *testing.T, user, query string) *client {
	t.Helper()
	c, err := e.dialErr(user, query, nil)
	if err != nil {
		t.Fatalf("dial %s%s: %v", user, query, err)
	}
	return c.withT(t)
}

func (e *env) dialErr(user, query string, h http.Header) (*client, error) {
	if h == nil {
		h = http.Header{}
	}
	if user != "" {
		h.Set("Authorization", "Bearer "+userToken(e.t, user))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL(query), &websocket.DialOptions{HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 24)
	return &client{c: c}, nil
}

func (c *client) withT(t *testing.T) *client {
	c.t = t
	t.Cleanup(func() { _ = c.c.CloseNow() })
	return c
}

// next reads the next frame, failing the test after 10 s.
func (c *client) next() frame {
	c.t.Helper()
	f, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) read(timeout time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.MessageText {
		return frame{}, fmt.Errorf("got a %v frame, want text", typ)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("frame is not JSON: %v: %s", err, b)
	}
	return f, nil
}

// expect reads the next frame and checks its event (and seq, when seq >= 0).
func (c *client) expect(event string, seq int64) frame {
	c.t.Helper()
	f := c.next()
	if f.Event != event || (seq >= 0 && f.seq() != seq) {
		c.t.Fatalf("got %s seq %d (%s), want %s seq %d", f.Event, f.seq(), f.Data, event, seq)
	}
	return f
}

func (c *client) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// quiet asserts that nothing is pending before the answer to a ping: the frames a
// socket must not get would have been queued before the pong.
func (c *client) quiet() {
	c.t.Helper()
	c.send(`{"event":"ping"}`)
	if f := c.next(); f.Event != "pong" {
		c.t.Fatalf("got %s (seq %d, %s), want nothing before pong", f.Event, f.seq(), f.Data)
	}
}

func (e *env) create(receiver, typ string) herald.Notification {
	e.t.Helper()
	r := e.do("POST", "/notifications", testKey, map[string]any{"receiverId": receiver, "type": typ})
	if r.code != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.code, r.body)
	}
	return r.notification(e.t)
}

func TestWebSocketFanOut(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		tabs := []*client{e.dial(t, "alice", ""), e.dial(t, "alice", ""), e.dial(t, "alice", "")}
		bob := e.dial(t, "bob", "")
		for _, c := range append(tabs, bob) {
			f := c.expect(inboxSnapshot, 0)
			if f.unread() != 0 || len(f.list(t)) != 0 {
				t.Fatalf("empty snapshot: %+v %s", f, f.Data)
			}
		}

		n1 := e.create("alice", "project.created")
		n2 := e.create("alice", "project.updated")
		for _, c := range tabs {
			if f := c.expect("new-notification", 1); f.unread() != 1 || f.notification(t).ID != n1.ID {
				t.Fatalf("first frame: %+v %s", f, f.Data)
			}
			if f := c.expect("new-notification", 2); f.unread() != 2 || f.notification(t).ID != n2.ID {
				t.Fatalf("second frame: %+v %s", f, f.Data)
			}
		}
		bob.quiet()

		// mark-read from one tab reaches every tab, and REST agrees.
		tabs[0].send(`{"event":"mark-read","data":{"id":"` + n1.ID + `"}}`)
		for _, c := range tabs {
			f := c.expect("notification-read", 3)
			if n := f.notification(t); n.ID != n1.ID || n.ReadAt == nil || f.unread() != 1 {
				t.Fatalf("read frame: %+v %s", f, f.Data)
			}
		}
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "alice"), nil).json(t); c["count"].(float64) != 1 {
			t.Fatalf("REST count after a mark-read frame: %v", c)
		}
		// A read through REST reaches the sockets the same way; marking it again is a
		// no-op and sends nothing.
		e.do("PATCH", "/notifications/"+n2.ID+"/read", userToken(t, "alice"), nil)
		tabs[1].send(`{"event":"mark-read","data":{"id":"` + n2.ID + `"}}`)
		for _, c := range tabs {
			if f := c.expect("notification-read", 4); f.unread() != 0 {
				t.Fatalf("read frame: %+v", f)
			}
			c.quiet()
		}
		// mark-all-read: with nothing unread, nothing; with something, one entry.
		e.create("alice", "project.deleted")
		tabs[2].send(`{"event":"mark-all-read"}`)
		for _, c := range tabs {
			c.expect("new-notification", 5)
			f := c.expect("all-notifications-read", 6)
			var ra herald.ReadAll
			if err := json.Unmarshal(f.Data, &ra); err != nil || ra.Updated != 1 || ra.ReadAt.IsZero() || f.unread() != 0 {
				t.Fatalf("read-all frame: %+v %s", f, f.Data)
			}
		}
		tabs[2].send(`{"event":"mark-all-read"}`)
		// A ping is answered by the connection, a refresh by the inbox after the frames
		// before it: its snapshot, still at seq 6, shows the read-all changed nothing.
		tabs[2].send(`{"event":"refresh-unread"}`)
		if f := tabs[2].expect(inboxSnapshot, 6); f.unread() != 0 {
			t.Fatalf("snapshot after a read-all of nothing: %+v", f)
		}
		tabs[2].quiet()
		bob.quiet()

		// refresh-unread answers with the snapshot at the latest seq.
		n7 := e.create("alice", "project.role.application.created")
		tabs[0].expect("new-notification", 7)
		tabs[0].send(`{"event":"refresh-unread"}`)
		f := tabs[0].expect(inboxSnapshot, 7)
		if list := f.list(t); len(list) != 1 || list[0].ID != n7.ID || f.unread() != 1 {
			t.Fatalf("refresh snapshot: %+v %s", f, f.Data)
		}
	})
}

const inboxSnapshot = "unread-notifications"

// TestWebSocketResume: a device away while another marks two read and a third
// notification arrives gets exactly those entries on reconnecting with since.
func TestWebSocketResume(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		phone := e.dial(t, "alice", "")
		phone.expect(inboxSnapshot, 0)
		a, b := e.create("alice", "t"), e.create("alice", "t")
		phone.expect("new-notification", 1)
		phone.expect("new-notification", 2)
		_ = phone.c.Close(websocket.StatusNormalClosure, "")

		laptop := e.dial(t, "alice", "?since=2")
		laptop.quiet() // nothing after 2 yet: no snapshot after a valid since
		laptop.send(`{"event":"mark-read","data":{"id":"` + a.ID + `"}}`)
		laptop.expect("notification-read", 3)
		laptop.send(`{"event":"mark-read","data":{"id":"` + b.ID + `"}}`)
		laptop.expect("notification-read", 4)
		c := e.create("alice", "t")
		laptop.expect("new-notification", 5)

		phone = e.dial(t, "alice", "?since=2")
		phone.expect("notification-read", 3)
		phone.expect("notification-read", 4)
		f := phone.expect("new-notification", 5)
		if f.notification(t).ID != c.ID || f.unread() != 1 {
			t.Fatalf("last replayed frame: %+v %s", f, f.Data)
		}
		phone.quiet()
		// Live after the replay.
		e.create("alice", "t")
		phone.expect("new-notification", 6)
		laptop.expect("new-notification", 6)

		// since beyond the latest seq, and since=0, both after the inbox exists.
		far := e.dial(t, "alice", "?since=99")
		if f := far.expect(inboxSnapshot, 6); f.unread() != 2 || len(f.list(t)) != 2 {
			t.Fatalf("snapshot for a cursor past the end: %+v %s", f, f.Data)
		}
		zero := e.dial(t, "alice", "?since=0")
		for i, ev := range []string{"new-notification", "new-notification", "notification-read",
			"notification-read", "new-notification", "new-notification"} {
			zero.expect(ev, int64(i+1))
		}
		zero.quiet()
	})
}

// metric reads one unlabelled sample from /metrics.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	r := e.do("GET", "/metrics", "", nil)
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				e.t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	e.t.Fatalf("metric %s not found", name)
	return 0
}

// TestWebSocketResumeStress: a client that keeps dropping and reconnecting with since
// while notifications are created and read receives every entry exactly once.
func TestWebSocketResumeStress(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		ids := make(chan string, 1000)
		for p := 0; p < 3; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 150; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "alice", "type": "t"})
					if r.code != http.StatusCreated {
						t.Errorf("create: %d %s", r.code, r.body)
						return
					}
					select {
					case ids <- r.notification(t).ID:
					default:
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // another device marks things read, one by one and all at once
			defer wg.Done()
			alice := userToken(t, "alice")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case id := <-ids:
					if i%25 == 24 {
						e.do("PATCH", "/notifications/read-all", alice, nil)
					} else {
						e.do("PATCH", "/notifications/"+id+"/read", alice, nil)
					}
				}
			}
		}()

		seen := map[int64]int{}
		var last int64
		for round := 0; round < 40; round++ {
			c := e.dial(t, "alice", fmt.Sprintf("?since=%d", last))
			for k := 0; k < 1+round%7; k++ {
				f := c.next()
				if f.seq() != last+1 {
					t.Fatalf("round %d: got seq %d (%s) after %d", round, f.seq(), f.Event, last)
				}
				seen[f.seq()]++
				last = f.seq()
			}
			if round%2 == 0 {
				_ = c.c.CloseNow() // a dropped connection
			} else {
				_ = c.c.Close(websocket.StatusNormalClosure, "")
			}
		}
		close(stop)
		wg.Wait()

		final := int64(e.do("GET", "/notifications/events?limit=1", userToken(t, "alice"), nil).json(t)["seq"].(float64))
		c := e.dial(t, "alice", fmt.Sprintf("?since=%d", last))
		for last < final {
			f := c.next()
			if f.seq() != last+1 {
				t.Fatalf("after the storm: got seq %d after %d", f.seq(), last)
			}
			seen[f.seq()]++
			last = f.seq()
		}
		c.quiet()
		for s := int64(1); s <= final; s++ {
			if seen[s] != 1 {
				t.Fatalf("seq %d received %d times (final %d)", s, seen[s], final)
			}
		}
		if int64(len(seen)) != final {
			t.Fatalf("received %d distinct seqs, want %d", len(seen), final)
		}
		t.Logf("%d entries over 41 connections", final)
	})
}

// TestWebSocketSlowConsumer: a client that stops reading is closed with 4008 once its
// queue has stayed full for the read timeout, and another user keeps receiving
// meanwhile.
func TestWebSocketSlowConsumer(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{
		api:   api.Options{MaxPayload: 16 << 10},
		ws:    ws.Options{QueueSize: 8, WriteTimeout: time.Minute},
		inbox: inbox.Options{ReadTimeout: time.Second}, // how long a full queue may stay full
	})
	slow := e.dial(t, "slow", "")
	slow.expect(inboxSnapshot, 0)
	bob := e.dial(t, "bob", "")
	bob.expect(inboxSnapshot, 0)

	payload := map[string]any{"blob": strings.Repeat("x", 15<<10)}
	items := make([]map[string]any, 0, 51)
	for i := 0; i < 50; i++ {
		items = append(items, map[string]any{"receiverId": "slow", "type": "t", "payload": payload})
	}
	items = append(items, map[string]any{"receiverId": "bob", "type": "t"})
	var bobSeq int64
	// The kernel's socket buffers take a few MiB first; 100 rounds are 75 MiB.
	for round := 0; round < 100 && e.metric("herald_ws_slow_consumer_closes_total") == 0; round++ {
		if r := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": items}); r.code != http.StatusCreated {
			t.Fatalf("batch: %d %s", r.code, r.body[:min(len(r.body), 200)])
		}
		bobSeq++
		bob.expect("new-notification", bobSeq)
	}
	if n := e.metric("herald_ws_slow_consumer_closes_total"); n != 1 {
		t.Fatalf("slow-consumer closes = %v, want 1", n)
	}
	// The slow client reads at last: what was sent, then the close frame with 4008.
	var err error
	for err == nil {
		_, err = slow.read(10 * time.Second)
	}
	if code := websocket.CloseStatus(err); code != 4008 {
		t.Fatalf("slow client closed with %v (%v), want 4008", code, err)
	}
	// Bob is unaffected; the slow user reconnects with since and loses nothing.
	e.create("bob", "t")
	bob.expect("new-notification", bobSeq+1)
	again := e.dial(t, "slow", "?since=0")
	f := again.expect("new-notification", 1)
	if f.unread() != 1 {
		t.Fatalf("replay after 4008: %+v", f)
	}
}

// TestWebSocketWriteTimeout: a client that stops reading, with room left in its queue,
// is dropped once a write to it has not finished within the write timeout; it loses
// nothing it reconnects for.
func TestWebSocketWriteTimeout(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{
		api: api.Options{MaxPayload: 16 << 10},
		// Long enough that the reconnected client below, which reads as fast as a test
		// under the race detector can on a busy machine, is never dropped itself.
		ws:    ws.Options{QueueSize: 8192, WriteTimeout: 2 * time.Second},
		inbox: inbox.Options{ReadTimeout: time.Minute},
	})
	stuck := e.dial(t, "stuck", "")
	stuck.expect(inboxSnapshot, 0)

	stored := e.floodUntilSlowConsumer(t, "stuck")
	// 75 MiB is well past the kernel's socket buffers: a write is blocked.
	poll.Until(t, "the write timeout", 10*time.Second, func() bool { return e.metric("herald_ws_slow_consumer_closes_total") > 0 })
	if n := e.metric("herald_ws_slow_consumer_closes_total"); n != 1 {
		t.Fatalf("slow-consumer closes = %v, want 1", n)
	}
	poll.Until(t, "the connection to be dropped", 10*time.Second, func() bool { return e.metric("herald_ws_connections") == 0 })
	again := e.dial(t, "stuck", "?since=0")
	for s := int64(1); s <= stored; s++ {
		again.expect("new-notification", s)
	}
}

func TestWebSocketBadFrames(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		c := e.dial(t, "alice", "")
		c.expect(inboxSnapshot, 0)
		other := e.create("bob", "t")
		cases := []struct {
			frame string
			code  herald.Code
			field string
		}{
			{`not json`, herald.CodeBadFrame, ""},
			{`[1,2]`, herald.CodeBadFrame, ""},
			{`null`, herald.CodeBadFrame, ""},
			{`{"event":`, herald.CodeBadFrame, ""},
			{`{}`, herald.CodeValidation, "event"},
			{`{"event":5}`, herald.CodeValidation, "event"},
			{`{"event":"subscribe"}`, herald.CodeUnknownEvent, ""},
			{`{"event":"mark-read"}`, herald.CodeValidation, "data"},
			{`{"event":"mark-read","data":{"id":""}}`, herald.CodeValidation, "data.id"},
			{`{"event":"mark-read","data":{"id":7}}`, herald.CodeValidation, "data.id"},
			{`{"event":"mark-read","data":{"id":"nope"}}`, herald.CodeNotFound, "data.id"},
			{`{"event":"mark-read","data":{"id":"` + other.ID + `"}}`, herald.CodeNotFound, "data.id"}, // bob's
		}
		for _, tc := range cases {
			c.send(tc.frame)
			f := c.expect("error", -1)
			var d struct {
				Code    herald.Code `json:"code"`
				Message string      `json:"message"`
				Field   string      `json:"field"`
			}
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Code != tc.code || d.Message == "" || d.Field != tc.field {
				t.Fatalf("%s: error frame %s, want code %s field %q", tc.frame, f.Data, tc.code, tc.field)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.c.Write(ctx, websocket.MessageBinary, []byte(`{"event":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if f := c.expect("error", -1); !strings.Contains(string(f.Data), string(herald.CodeBadFrame)) {
			t.Fatalf("binary frame: %s", f.Data)
		}
		c.quiet() // still usable

		// Over the 4 KiB limit: closed with 1009.
		c.send(`{"event":"ping","pad":"` + strings.Repeat("p", 4<<10) + `"}`)
		_, err := c.read(10 * time.Second)
		if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
			t.Fatalf("oversize frame: closed with %v (%v), want 1009", code, err)
		}
		// Bob's notification is untouched.
		if n, err := e.store.Get(context.Background(), "bob", other.ID); err != nil || n.ReadAt != nil {
			t.Fatalf("bob's notification after alice's frames: %+v %v", n, err)
		}
	})
}

func TestWebSocketHandshake(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{
		api: api.Options{AllowedOrigins: []string{"https://app.example.com", "https://*.example.org"}},
	})
	expired, _ := auth.SignUserToken([]byte(testSecret), "alice", "", -time.Minute)
	get := func(query string, h http.Header) response {
		req, _ := http.NewRequest("GET", e.url+"/notifications/ws"+query, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		return response{code: resp.StatusCode, header: resp.Header, body: buf[:n]}
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	upgrade := func(h http.Header) http.Header {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return h
	}
	alice := userToken(t, "alice")
	wantError(t, get("", upgrade(http.Header{})), 401, herald.CodeUnauthorized, "")
	wantError(t, get("?token=garbage", upgrade(http.Header{})), 401, herald.CodeUnauthorized, "")
	wantError(t, get("", upgrade(bearer(expired))), 401, herald.CodeUnauthorized, "")
	wantError(t, get("", upgrade(bearer(testKey))), 403, herald.CodeForbidden, "")
	// Refused origins, the pattern's * spanning more than one label among them.
	for _, origin := range []string{"https://evil.example.net", "https://a.b.example.org", "https://evil.net/.example.org", "null"} {
		h := upgrade(bearer(alice))
		h.Set("Origin", origin)
		wantError(t, get("", h), 403, herald.CodeForbidden, "")
	}
	wantError(t, get("?since=-1", upgrade(bearer(alice))), 422, herald.CodeValidation, "since")
	wantError(t, get("", bearer(alice)), 400, herald.CodeBadRequest, "")

	// A real client gets the 401 before any upgrade.
	if _, err := e.dialErr("", "?token="+expired, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("expired token: %v, want a 401", err)
	}
	// Allowed origins, no origin, a ws-token in the query: all open.
	for _, origin := range []string{"https://app.example.com", "https://eu.example.org", ""} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := e.dialErr("alice", "", h)
		if err != nil {
			t.Fatalf("origin %q: %v", origin, err)
		}
		c.withT(t).expect(inboxSnapshot, 0)
	}
	tok := e.do("GET", "/notifications/ws-token", alice, nil).json(t)["wsToken"].(string)
	for i := 0; i < 2; i++ { // a ws-token may open several connections
		c, err := e.dialErr("", "?token="+tok, nil)
		if err != nil {
			t.Fatalf("ws-token connection %d: %v", i, err)
		}
		c.withT(t).expect(inboxSnapshot, 0)
	}
}

func TestWebSocketLimitsAndShutdown(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{inbox: inbox.Options{MaxSockets: 2}})
	a, b := e.dial(t, "alice", ""), e.dial(t, "alice", "")
	a.expect(inboxSnapshot, 0)
	b.expect(inboxSnapshot, 0)
	third := e.dial(t, "alice", "")
	_, err := third.read(10 * time.Second)
	if code := websocket.CloseStatus(err); code != websocket.StatusCode(wire.CloseTooManySockets) {
		t.Fatalf("third socket: %v (%v), want %d", code, err, wire.CloseTooManySockets)
	}
	bob := e.dial(t, "bob", "")
	bob.expect(inboxSnapshot, 0)
	// The refused socket's closing handshake ends on its own time.
	poll.Until(t, "three open connections", 10*time.Second, func() bool { return e.metric("herald_ws_connections") == 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.hub.Shutdown(ctx) }()
	for _, c := range []*client{a, b, bob} {
		_, err := c.read(10 * time.Second)
		if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
			t.Fatalf("on shutdown: %v (%v), want 1001", code, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := e.dialErr("alice", "", nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("dial after shutdown: %v, want a 503", err)
	}
	poll.Until(t, "inbox actors to retire", 10*time.Second, func() bool { return e.metric("herald_inbox_actors") == 0 })
	if n := e.metric("herald_ws_connections"); n != 0 {
		t.Fatalf("herald_ws_connections = %v after shutdown", n)
	}
}

// TestWebSocketDeadPeer: a peer that stops answering protocol pings is dropped, one that
// answers is not, with pings more often than their timeout and less often (the
// defaults: every 25 s, 20 s to answer).
func TestWebSocketDeadPeer(t *testing.T) {
	for _, o := range []ws.Options{
		{PingInterval: 50 * time.Millisecond, PingTimeout: 2 * time.Second},
		{PingInterval: 400 * time.Millisecond, PingTimeout: 200 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("every %s, %s to answer", o.PingInterval, o.PingTimeout), func(t *testing.T) {
			e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: o})
			live := e.dial(t, "alice", "")
			live.expect(inboxSnapshot, 0)
			dead := e.dial(t, "bob", "")
			dead.expect(inboxSnapshot, 0)
			// bob's client reads no more, so it answers no ping; alice's keeps reading
			// and answering (a read in flight answers pings).
			reads := make(chan error, 1)
			go func() { _, err := live.read(time.Minute); reads <- err }()
			poll.Until(t, "the dead peer to be dropped", 10*time.Second, func() bool { return e.metric("herald_ws_connections") == 1 })
			// Several pings more for the live one.
			time.Sleep(3 * o.PingInterval)
			e.create("alice", "t")
			if err := <-reads; err != nil {
				t.Fatalf("the live peer was dropped too: %v", err)
			}
			if n := e.metric("herald_ws_connections"); n != 1 {
				t.Fatalf("herald_ws_connections = %v, want the live peer's 1", n)
			}
		})
	}
}

// TestWebSocketBurst: one batch far bigger than a socket's queue reaches a client that
// reads, whole and in order: the burst is paced, not closed with 4008.
func TestWebSocketBurst(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: ws.Options{QueueSize: 16}})
	c := e.dial(t, "alice", "")
	c.expect(inboxSnapshot, 0)
	items := make([]map[string]any, 1000)
	for i := range items {
		items[i] = map[string]any{"receiverId": "alice", "type": "t"}
	}
	if r := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": items}); r.code != http.StatusCreated {
		t.Fatalf("batch: %d", r.code)
	}
	for seq := int64(1); seq <= 1000; seq++ {
		c.expect("new-notification", seq)
	}
	c.quiet()
	if n := e.metric("herald_ws_slow_consumer_closes_total"); n != 0 {
		t.Fatalf("slow-consumer closes = %v", n)
	}
}

// TestRefusedSocketDroppedQuickly: a socket refused with 4029 whose peer never answers
// the close frame is dropped within a second, rather than holding its connection for
// the library's closing handshake.
func TestRefusedSocketDroppedQuickly(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{inbox: inbox.Options{MaxSockets: 1}})
	first := e.dial(t, "alice", "")
	first.expect(inboxSnapshot, 0)

	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /notifications/ws HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer %s\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		userToken(t, "alice"))
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(10 * time.Second))
	// Read the 101 and the close frame, and never answer it: the server must drop us.
	got, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the refused socket was still open after 10 s (read %q)", got)
	}
	if !bytes.Contains(got, []byte("101 Switching Protocols")) || !bytes.Contains(got, []byte{0x0f, 0xbd}) { // 4029
		t.Fatalf("refused socket read %q, want the upgrade and a 4029 close frame", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dropped after %s, want within about %s", d, time.Second)
	}
}

// floodUntilSlowConsumer stores batches of 50 notifications of 15 KiB for user (750 KiB
// a round, past a client's buffer and what the server writes ahead) until the node counts
// a slow-consumer close, for at most 100 rounds; it returns how many it stored.
func (e *env) floodUntilSlowConsumer(t *testing.T, user string) int64 {
	t.Helper()
	payload := map[string]any{"blob": strings.Repeat("x", 15<<10)}
	items := make([]map[string]any, 50)
	for i := range items {
		items[i] = map[string]any{"receiverId": user, "type": "t", "payload": payload}
	}
	stored := int64(0)
	for round := 0; round < 100 && e.metric("herald_ws_slow_consumer_closes_total") == 0; round++ {
		if r := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": items}); r.code != http.StatusCreated {
			t.Fatalf("batch: %d %s", r.code, r.body[:min(len(r.body), 200)])
		}
		stored += int64(len(items))
	}
	return stored
}
