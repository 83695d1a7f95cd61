package inbox_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/persistence"
)

// trackingStore is the real store, with every payload of what the inboxes read copied
// into an array of its own and watched through a weak pointer: the test can tell
// whether anything still holds the pages the store answered.
type trackingStore struct {
	persistence.Store
	mu       sync.Mutex
	payloads []weak.Pointer[byte]
}

func (s *trackingStore) track(n *herald.Notification) {
	p := make([]byte, len(n.Payload))
	copy(p, n.Payload)
	n.Payload = p
	s.mu.Lock()
	s.payloads = append(s.payloads, weak.Make(&p[0]))
	s.mu.Unlock()
}

func (s *trackingStore) Unread(ctx context.Context, user string, before int64, limit int) (persistence.UnreadPage, error) {
	page, err := s.Store.Unread(ctx, user, before, limit)
	for i := range page.Items {
		s.track(&page.Items[i])
	}
	return page, err
}

func (s *trackingStore) Events(ctx context.Context, user string, since int64, limit int) (persistence.EventsPage, error) {
	page, err := s.Store.Events(ctx, user, since, limit)
	for i := range page.Entries {
		if n := page.Entries[i].Notification; n != nil {
			s.track(n)
		}
	}
	return page, err
}

// reachable returns how many payloads the inboxes were given, and how many of them
// are still reachable after a collection.
func (s *trackingStore) reachable() (read, live int) {
	runtime.GC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.payloads {
		if p.Value() != nil {
			live++
		}
	}
	return len(s.payloads), live
}

// bigPayload is 500 bytes of JSON.
var bigPayload = json.RawMessage(`{"text":"` + strings.Repeat("x", 488) + `"}`)

// TestIdleInboxHoldsNoPage: once an inbox has served a socket and gone idle, nothing
// holds the pages it read from the store, whatever their size: not the unread page of
// the socket's snapshot (100 unread notifications of 500 bytes, far over the cache's
// 4 KiB budget), not the log page of a socket that resumed and caught up. The
// actor's last message (hollywood keeps it referenced until the next one) carries
// nothing by then, and the cache keeps within its budget. RefreshEvery is a minute
// here so that a hold of the snapshot would show.
func TestIdleInboxHoldsNoPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attach func(user string, s inbox.Socket) inbox.Attach
		frames int // the frames the socket gets: the snapshot, or the entries it resumes after
	}{
		{"snapshot", func(user string, s inbox.Socket) inbox.Attach {
			return inbox.Attach{User: user, Socket: s}
		}, 1},
		{"resume", func(user string, s inbox.Socket) inbox.Attach {
			return inbox.Attach{User: user, Socket: s, Since: 0, HasSince: true}
		}, wire.SnapshotSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := new(trackingStore)
			r := newRigWith(t, inbox.Options{RefreshEvery: time.Minute}, func(s persistence.Store) persistence.Store {
				store.Store = s
				return store
			})
			for range wire.SnapshotSize {
				r.createWith(t, "gil", bigPayload)
			}
			s := newMemSocket()
			r.engine.Send(r.router, tc.attach("gil", s))
			for i := range tc.frames {
				w := s.next(t)
				switch {
				case tc.name == "snapshot" && (w.Event != wire.EventUnread || w.Unread != wire.SnapshotSize):
					t.Fatalf("frame %+v, want the snapshot of %d unread", w, wire.SnapshotSize)
				case tc.name == "resume" && (w.Event != herald.EventCreated || w.Seq != int64(i+1)):
					t.Fatalf("frame %+v, want new-notification seq %d", w, i+1)
				}
			}
			// The inbox has queued its last frame: it goes idle as that message ends.
			poll.Until(t, "the pages read to be collected", 10*time.Second, func() bool {
				_, live := store.reachable()
				return live == 0
			})
			read, _ := store.reachable()
			if read < wire.SnapshotSize {
				t.Fatalf("the inbox read %d payloads, want at least %d", read, wire.SnapshotSize)
			}
			r.engine.Send(r.router, inbox.Detach{User: "gil", Socket: s})
		})
	}
}
