package api_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/persistence"
)

// heldStore is a store whose transactions record the client writes (mark-read,
// mark-all-read) that reach them, in order, and that can be held: while armed, the next
// transaction with a client write signals entered and waits for release.
type heldStore struct {
	persistence.Store
	mu      sync.Mutex
	writes  []string // "read <id>", "read-all", in the order they reached Apply
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func newHeldStore(s persistence.Store) *heldStore {
	return &heldStore{Store: s, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (s *heldStore) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	s.mu.Lock()
	client := false
	for i := range ops {
		switch ops[i].Kind {
		case persistence.OpMarkRead:
			s.writes, client = append(s.writes, "read "+ops[i].ID), true
		case persistence.OpReadAll:
			s.writes, client = append(s.writes, "read-all"), true
		}
	}
	hold := client && s.armed
	if hold {
		s.armed = false
	}
	s.mu.Unlock()
	if hold {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Apply(ctx, now, ops)
}

func (s *heldStore) clientWrites() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

// fastRefresh answers every refresh-unread at once: the tests use it as a fence that
// goes through the inbox behind the frames before it.
var fastRefresh = envOptions{inbox: inbox.Options{RefreshEvery: time.Nanosecond}}

// TestWebSocketReaderDoesNotWaitForCommits: while a mark-read's commit is held up, the
// connection still answers a ping (its reader is not waiting for the commit), and the
// frames sent behind the mark-read (another mark-read, a mark-all-read, a
// refresh-unread) take effect in the order they were sent once the commit goes on: the
// store sees the writes in that order, and the snapshot that answers the refresh shows
// all three.
func TestWebSocketReaderDoesNotWaitForCommits(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			store := newHeldStore(stores[name](t))
			e := newEnvOpts(t, store, fastRefresh)
			n1, n2, n3 := e.create("alice", "t"), e.create("alice", "t"), e.create("alice", "t")
			c := e.dial(t, "alice", "")
			if f := c.expect(inboxSnapshot, 3); f.unread() != 3 {
				t.Fatalf("snapshot: unread %d", f.unread())
			}
			store.mu.Lock()
			store.armed = true
			store.mu.Unlock()
			c.send(`{"event":"mark-read","data":{"id":"` + n1.ID + `"}}`)
			<-store.entered // the commit is held from here on
			c.send(`{"event":"ping"}`)
			f, err := c.read(5 * time.Second)
			if err != nil || f.Event != "pong" {
				close(store.release)
				t.Fatalf("ping while a mark-read commits: %+v %v, want pong at once", f, err)
			}
			c.send(`{"event":"mark-read","data":{"id":"` + n2.ID + `"}}`)
			c.send(`{"event":"mark-all-read"}`)
			c.send(`{"event":"refresh-unread"}`)
			close(store.release)

			if f := c.expect("notification-read", 4); f.notification(t).ID != n1.ID || f.unread() != 2 {
				t.Fatalf("first read: %s unread %d", f.Data, f.unread())
			}
			if f := c.expect("notification-read", 5); f.notification(t).ID != n2.ID || f.unread() != 1 {
				t.Fatalf("second read: %s unread %d", f.Data, f.unread())
			}
			f = c.expect("all-notifications-read", 6)
			var ra herald.ReadAll
			if err := json.Unmarshal(f.Data, &ra); err != nil || ra.Updated != 1 {
				t.Fatalf("read-all: %s (it should have found %s alone unread)", f.Data, n3.ID)
			}
			if f := c.expect(inboxSnapshot, 6); f.unread() != 0 || len(f.list(t)) != 0 {
				t.Fatalf("the snapshot after the writes: unread %d, %s", f.unread(), f.Data)
			}
			want := []string{"read " + n1.ID, "read " + n2.ID, "read-all"}
			if got := store.clientWrites(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
				t.Fatalf("client writes reached the store as %q, want %q", got, want)
			}
		})
	}
}

// TestWebSocketMarkReadAnsweredByInbox: a mark-read the inbox can answer for certain
// never reaches the store: of a notification it saw read (by this socket, by another
// device through REST, by a read-all), which answers nothing, as the store would (no
// entry, no frame); of an id no notification can have, which answers not_found as the
// store would. A mark-read of an id it does not know still goes to the store (bob's:
// not_found from there).
func TestWebSocketMarkReadAnsweredByInbox(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			store := newHeldStore(stores[name](t))
			e := newEnvOpts(t, store, fastRefresh)
			n1, n2, n3 := e.create("alice", "t"), e.create("alice", "t"), e.create("alice", "t")
			bobs := e.create("bob", "t")
			c := e.dial(t, "alice", "")
			c.expect(inboxSnapshot, 3)
			// fence sends a refresh-unread and reads up to its snapshot: every frame
			// before it has been answered by then. The frames before it must be none.
			fence := func(seq int64) {
				t.Helper()
				c.send(`{"event":"refresh-unread"}`)
				c.expect(inboxSnapshot, seq)
			}

			c.send(`{"event":"mark-read","data":{"id":"` + n1.ID + `"}}`)
			c.expect("notification-read", 4)
			e.do("PATCH", "/notifications/"+n2.ID+"/read", userToken(t, "alice"), nil) // another device
			c.expect("notification-read", 5)
			before := len(store.clientWrites())
			for range 3 {
				c.send(`{"event":"mark-read","data":{"id":"` + n1.ID + `"}}`)
				c.send(`{"event":"mark-read","data":{"id":"` + n2.ID + `"}}`)
			}
			fence(5)
			if got := store.clientWrites()[before:]; len(got) != 0 {
				t.Fatalf("mark-reads of notifications the inbox saw read reached the store: %q", got)
			}

			e.do("PATCH", "/notifications/read-all", userToken(t, "alice"), nil)
			c.expect("all-notifications-read", 6)
			// The REST read-all was a client write too.
			before = len(store.clientWrites())
			c.send(`{"event":"mark-read","data":{"id":"` + n3.ID + `"}}`) // read by the read-all
			c.send(`{"event":"mark-read","data":{"id":"not-a-uuid"}}`)
			f := c.expect("error", -1)
			var d struct {
				Code  herald.Code `json:"code"`
				Field string      `json:"field"`
			}
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Code != herald.CodeNotFound || d.Field != "data.id" {
				t.Fatalf("mark-read of an id no notification has: %s", f.Data)
			}
			fence(6)
			if got := store.clientWrites()[before:]; len(got) != 0 {
				t.Fatalf("mark-reads the inbox could answer reached the store: %q", got)
			}

			// Bob's notification: the inbox cannot know it is not alice's; the store says so.
			c.send(`{"event":"mark-read","data":{"id":"` + bobs.ID + `"}}`)
			if f := c.expect("error", -1); json.Unmarshal(f.Data, &d) != nil || d.Code != herald.CodeNotFound || d.Field != "data.id" {
				t.Fatalf("mark-read of bob's: %s", f.Data)
			}
			if got := store.clientWrites()[before:]; len(got) != 1 || got[0] != "read "+bobs.ID {
				t.Fatalf("client writes after bob's: %q, want that one alone", got)
			}
		})
	}
}

// TestWebSocketPendingFrames: behind a write whose commit is held up, a socket's frames
// wait up to inbox.Options.PendingFrames; the one after that is answered at once with
// an unavailable error frame and not applied, and the connection stays open and serves
// the ones that waited once the commit goes on.
func TestWebSocketPendingFrames(t *testing.T) {
	store := newHeldStore(stores["embedded"](t))
	e := newEnvOpts(t, store, envOptions{inbox: inbox.Options{RefreshEvery: time.Nanosecond, PendingFrames: 2}})
	n1, n2 := e.create("alice", "t"), e.create("alice", "t")
	c := e.dial(t, "alice", "")
	c.expect(inboxSnapshot, 2)
	store.mu.Lock()
	store.armed = true
	store.mu.Unlock()
	c.send(`{"event":"mark-read","data":{"id":"` + n1.ID + `"}}`)
	<-store.entered
	c.send(`{"event":"refresh-unread"}`)
	c.send(`{"event":"refresh-unread"}`)
	c.send(`{"event":"mark-read","data":{"id":"` + n2.ID + `"}}`) // the third waiting: refused
	f, err := c.read(5 * time.Second)
	var d struct {
		Code herald.Code `json:"code"`
	}
	if err != nil || f.Event != "error" || json.Unmarshal(f.Data, &d) != nil || d.Code != herald.CodeUnavailable {
		close(store.release)
		t.Fatalf("a frame over the pending limit: %+v %v, want an unavailable error frame at once", f, err)
	}
	close(store.release)
	c.expect("notification-read", 3)
	c.expect(inboxSnapshot, 3)
	c.expect(inboxSnapshot, 3)
	if got := store.clientWrites(); len(got) != 1 {
		t.Fatalf("client writes: %q, want the first mark-read alone", got)
	}
}
