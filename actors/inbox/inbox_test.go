package inbox_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthdm/hollywood/actor"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
)

// memSocket is a socket whose peer is the test: frames go to a channel.
type memSocket struct {
	frames chan []byte
	closed chan wire.CloseCode
}

func newMemSocket() *memSocket {
	return &memSocket{frames: make(chan []byte, 1000), closed: make(chan wire.CloseCode, 1)}
}

func (s *memSocket) Send(f inbox.Frame) bool {
	select {
	case s.frames <- f.Data:
		return true
	default:
		return false
	}
}

func (s *memSocket) Close(code wire.CloseCode, _ string) { s.closed <- code }
func (s *memSocket) Room() int                           { return cap(s.frames) - len(s.frames) }
func (s *memSocket) WaitRoom(context.Context, int) (int, error) {
	return s.Room(), nil // the test reads everything; a full channel fails it
}

type frameJSON struct {
	Event  herald.Event    `json:"event"`
	Seq    int64           `json:"seq"`
	Unread int64           `json:"unread"`
	Data   json.RawMessage `json:"data"`
}

func (s *memSocket) next(t *testing.T) frameJSON {
	t.Helper()
	select {
	case b := <-s.frames:
		var w frameJSON
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		return w
	case c := <-s.closed:
		t.Fatalf("socket closed with %d", c)
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10 s")
	}
	return frameJSON{}
}

type rig struct {
	engine *actor.Engine
	router *actor.PID
	writer persist.Client
	drop   *atomic.Bool
	reads  *atomic.Int64 // catch-up reads (Events) the inboxes made
	snaps  *atomic.Int64 // snapshot reads (Unread) the inboxes made
	unread *readLog      // when each of those started and answered
	held   chan []herald.Entry
	hold   *atomic.Bool // while set, committed batches go to held instead of the router
}

// countingStore is the real store, counting the inboxes' catch-up and snapshot reads,
// and logging when each snapshot read ran.
type countingStore struct {
	persistence.Store
	reads  *atomic.Int64
	snaps  *atomic.Int64
	unread *readLog
}

func (s countingStore) Unread(ctx context.Context, user string, before int64, limit int) (persistence.UnreadPage, error) {
	s.snaps.Add(1)
	start := time.Now()
	p, err := s.Store.Unread(ctx, user, before, limit)
	s.unread.add(readSpan{user: user, start: start, end: time.Now()})
	return p, err
}

// readSpan is one store read: whose, when it started and when it answered.
type readSpan struct {
	user       string
	start, end time.Time
}

// readLog is the store reads of a kind, in the order they answered.
type readLog struct {
	mu    sync.Mutex
	spans []readSpan
}

func (l *readLog) add(s readSpan) {
	l.mu.Lock()
	l.spans = append(l.spans, s)
	l.mu.Unlock()
}

// of returns user's reads, from the n-th answered on.
func (l *readLog) of(user string, n int) []readSpan {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []readSpan
	for _, s := range l.spans[n:] {
		if s.user == user {
			out = append(out, s)
		}
	}
	return out
}

func (l *readLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.spans)
}

func (s countingStore) Events(ctx context.Context, user string, since int64, limit int) (persistence.EventsPage, error) {
	s.reads.Add(1)
	return s.Store.Events(ctx, user, since, limit)
}

// newRig runs the router and the persistence actor on an embedded store; while drop
// is set, committed batches do not reach the router (a lost delivery).
func newRig(t *testing.T) *rig {
	return newRigWith(t, inbox.Options{}, nil)
}

// newRigWith is newRig with the router's options (Store and Grace are the rig's) and,
// when wrap is not nil, the inboxes reading the store through wrap(store).
func newRigWith(t *testing.T, opts inbox.Options, wrap func(persistence.Store) persistence.Store) *rig {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{engine: engine, drop: new(atomic.Bool), reads: new(atomic.Int64), snaps: new(atomic.Int64), unread: new(readLog), held: make(chan []herald.Entry, 10), hold: new(atomic.Bool)}
	var read persistence.Store = countingStore{store, r.reads, r.snaps, r.unread}
	if wrap != nil {
		read = wrap(read)
	}
	opts.Store, opts.Grace = read, time.Millisecond
	r.router = engine.Spawn(inbox.NewRouter(opts), "inbox")
	hook := inbox.OnCommit(engine, r.router)
	pid := engine.Spawn(persist.New(store, persist.Options{OnCommit: func(es []herald.Entry) {
		switch {
		case r.hold.Load():
			r.held <- es
		case !r.drop.Load():
			hook(es)
		}
	}}), "persist")
	r.writer = persist.Client{Engine: engine, PID: pid}
	t.Cleanup(func() {
		<-engine.Poison(pid).Done()
		<-engine.Poison(r.router).Done()
		store.Close()
	})
	return r
}

func (r *rig) create(t *testing.T, user string) herald.Notification {
	t.Helper()
	return r.createWith(t, user, nil)
}

func (r *rig) createWith(t *testing.T, user string, payload json.RawMessage) herald.Notification {
	t.Helper()
	n := herald.NewNotification{ReceiverID: user, Type: "t", Payload: payload}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := r.writer.Write(context.Background(), persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Notifications[0]
}

// TestLostDeliveryIsReadFromStore: entries that never reach the inbox live (a lost
// delivery) are read from the store as soon as a later entry shows the gap, and the
// unread snapshot is rebuilt rather than served stale.
func TestLostDeliveryIsReadFromStore(t *testing.T) {
	r := newRig(t)
	s := newMemSocket()
	r.engine.Send(r.router, inbox.Attach{User: "alice", Socket: s})
	if w := s.next(t); w.Event != wire.EventUnread || w.Seq != 0 {
		t.Fatalf("first frame %+v", w)
	}
	r.create(t, "alice") // seq 1, delivered
	if w := s.next(t); w.Seq != 1 {
		t.Fatalf("frame %+v, want seq 1", w)
	}
	r.drop.Store(true)
	lost := r.create(t, "alice") // seq 2, never delivered live
	r.drop.Store(false)
	r.create(t, "alice") // seq 3 reveals the gap
	for want := int64(2); want <= 3; want++ {
		w := s.next(t)
		if w.Seq != want || w.Event != herald.EventCreated || w.Unread != want {
			t.Fatalf("frame %+v, want new-notification seq %d unread %d", w, want, want)
		}
	}
	r.engine.Send(r.router, inbox.Client{User: "alice", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})
	w := s.next(t)
	var items []herald.Notification
	if err := json.Unmarshal(w.Data, &items); err != nil || w.Event != wire.EventUnread || w.Seq != 3 || w.Unread != 3 || len(items) != 3 || items[1].ID != lost.ID {
		t.Fatalf("snapshot after the gap: %+v (%v)", w, err)
	}
	r.engine.Send(r.router, inbox.Detach{User: "alice", Socket: s})
}

// TestHeadCheckRepairsLostLastEntry: an entry that never reaches the inbox live, with
// nothing after it to reveal the gap (the last one of a burst lost on the bus, or a
// commit whose answer never came), reaches the socket once a head check reads the
// store's head: for the user named, and for every user with All.
func TestHeadCheckRepairsLostLastEntry(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(map[bool]string{false: "Users", true: "All"}[all], func(t *testing.T) {
			r := newRig(t)
			s, other := newMemSocket(), newMemSocket()
			r.engine.Send(r.router, inbox.Attach{User: "alice", Socket: s})
			r.engine.Send(r.router, inbox.Attach{User: "bob", Socket: other})
			for _, sk := range []*memSocket{s, other} {
				if w := sk.next(t); w.Event != wire.EventUnread || w.Seq != 0 {
					t.Fatalf("first frame %+v", w)
				}
			}
			r.create(t, "alice") // seq 1, delivered
			if w := s.next(t); w.Seq != 1 {
				t.Fatalf("frame %+v, want seq 1", w)
			}
			r.drop.Store(true)
			lost := r.create(t, "alice") // seq 2, never delivered live, and the last
			r.drop.Store(false)
			check := inbox.CheckHeads{Users: []string{"alice", "nobody"}}
			if all {
				check = inbox.CheckHeads{All: true}
			}
			r.engine.Send(r.router, check)
			w := s.next(t)
			var nt herald.Notification
			if err := json.Unmarshal(w.Data, &nt); err != nil || w.Seq != 2 || w.Event != herald.EventCreated || w.Unread != 2 || nt.ID != lost.ID {
				t.Fatalf("frame %+v (%v), want the lost new-notification seq 2 unread 2", w, err)
			}
			// The snapshot is rebuilt with it, and what follows arrives live as before.
			r.engine.Send(r.router, inbox.Client{User: "alice", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})
			w = s.next(t)
			var items []herald.Notification
			if err := json.Unmarshal(w.Data, &items); err != nil || w.Event != wire.EventUnread || w.Seq != 2 || len(items) != 2 || items[0].ID != lost.ID {
				t.Fatalf("snapshot after the check: %+v (%v)", w, err)
			}
			r.create(t, "alice")
			if w := s.next(t); w.Seq != 3 || w.Unread != 3 {
				t.Fatalf("frame %+v, want seq 3", w)
			}
			// bob was not behind: the check sent him nothing.
			r.create(t, "bob")
			if w := other.next(t); w.Seq != 1 || w.Event != herald.EventCreated {
				t.Fatalf("bob's frame %+v, want his seq 1", w)
			}
			r.engine.Send(r.router, inbox.Detach{User: "alice", Socket: s})
			r.engine.Send(r.router, inbox.Detach{User: "bob", Socket: other})
		})
	}
}

// TestResumeBeyondDelivery: a cursor ahead of what the inbox has seen but known to the
// store is a valid since (no snapshot): the socket gets what follows it.
func TestResumeBeyondDelivery(t *testing.T) {
	r := newRig(t)
	first := newMemSocket()
	r.engine.Send(r.router, inbox.Attach{User: "bob", Socket: first})
	first.next(t)
	r.drop.Store(true)
	r.create(t, "bob")
	r.create(t, "bob") // the inbox has seen neither
	r.drop.Store(false)
	s := newMemSocket()
	r.engine.Send(r.router, inbox.Attach{User: "bob", Socket: s, Since: 2, HasSince: true})
	r.create(t, "bob")
	if w := s.next(t); w.Event != herald.EventCreated || w.Seq != 3 {
		t.Fatalf("frame %+v, want new-notification seq 3", w)
	}
	for want := int64(1); want <= 3; want++ { // the first socket repairs its gap
		if w := first.next(t); w.Seq != want {
			t.Fatalf("first socket: frame %+v, want seq %d", w, want)
		}
	}
	r.engine.Send(r.router, inbox.Detach{User: "bob", Socket: s})
	r.engine.Send(r.router, inbox.Detach{User: "bob", Socket: first})
}

// gatedSocket is a memSocket whose WaitRoom blocks until the test opens the gate.
type gatedSocket struct {
	*memSocket
	gate chan struct{}
}

func (s gatedSocket) WaitRoom(ctx context.Context, n int) (int, error) {
	select {
	case <-s.gate:
		return s.Room(), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestRefreshDuringCatchUp: a refresh-unread answered while the socket's catch-up
// read is still waiting leaves the socket going on from the snapshot.
func TestRefreshDuringCatchUp(t *testing.T) {
	r := newRig(t)
	for range 3 {
		r.create(t, "carol")
	}
	s := gatedSocket{newMemSocket(), make(chan struct{})}
	r.engine.Send(r.router, inbox.Attach{User: "carol", Socket: s, Since: 0, HasSince: true}) // a catch-up read waits at the gate
	r.engine.Send(r.router, inbox.Client{User: "carol", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})
	if w := s.next(t); w.Event != wire.EventUnread || w.Seq != 3 {
		t.Fatalf("frame %+v, want the snapshot at 3", w)
	}
	close(s.gate) // the stale read answers now and is dropped
	r.create(t, "carol")
	if w := s.next(t); w.Seq != 4 {
		t.Fatalf("frame %+v, want seq 4 after the snapshot", w)
	}
	r.engine.Send(r.router, inbox.Detach{User: "carol", Socket: s})
}

// TestOutOfOrderBatches: batches of one user handed over out of seq order (several
// commits in flight) are put back in order without reading the store.
func TestOutOfOrderBatches(t *testing.T) {
	r := newRig(t)
	s := newMemSocket()
	r.engine.Send(r.router, inbox.Attach{User: "dora", Socket: s})
	if w := s.next(t); w.Event != wire.EventUnread {
		t.Fatalf("first frame %+v", w)
	}
	r.hold.Store(true)
	r.create(t, "dora")
	r.create(t, "dora")
	first, second := <-r.held, <-r.held
	r.hold.Store(false)
	reads := r.reads.Load()
	onCommit := inbox.OnCommit(r.engine, r.router)
	onCommit(second) // seq 2 first
	onCommit(first)
	for want := int64(1); want <= 2; want++ {
		if w := s.next(t); w.Seq != want {
			t.Fatalf("frame %+v, want seq %d", w, want)
		}
	}
	if n := r.reads.Load() - reads; n != 0 {
		t.Fatalf("%d catch-up reads for entries that were only out of order", n)
	}
	r.engine.Send(r.router, inbox.Detach{User: "dora", Socket: s})
}

// TestRefreshFlood: a socket sending refresh-unread 50 times in a second, with an
// unread list too big to stay cached (100 notifications of 500 bytes), costs about one
// snapshot read and one snapshot a second, not one per refresh; and the client ends
// with a snapshot taken after its last refresh, which shows the notifications created
// between the refreshes.
func TestRefreshFlood(t *testing.T) {
	r := newRig(t)
	payload := json.RawMessage(`{"text":"` + strings.Repeat("x", 488) + `"}`)
	for range wire.SnapshotSize {
		r.createWith(t, "erin", payload)
	}
	s := newMemSocket()
	r.engine.Send(r.router, inbox.Attach{User: "erin", Socket: s})
	if w := s.next(t); w.Event != wire.EventUnread || w.Unread != wire.SnapshotSize {
		t.Fatalf("first frame %+v", w)
	}
	snaps := r.snaps.Load()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	var mid herald.Notification
	for i := range 50 {
		<-tick.C
		r.engine.Send(r.router, inbox.Client{User: "erin", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})
		if i == 25 {
			mid = r.createWith(t, "erin", payload)
		}
	}
	tick.Stop()
	last := r.createWith(t, "erin", payload)
	r.engine.Send(r.router, inbox.Client{User: "erin", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})

	// Every frame up to the snapshot that shows the last notification.
	snapshots := 0
	for {
		w := s.next(t)
		if w.Event != wire.EventUnread {
			if w.Event != herald.EventCreated || (w.Seq != mid.Seq && w.Seq != last.Seq) {
				t.Fatalf("frame %+v, want snapshots and the two new notifications", w)
			}
			continue
		}
		snapshots++
		var items []herald.Notification
		if err := json.Unmarshal(w.Data, &items); err != nil || len(items) != wire.SnapshotSize {
			t.Fatalf("snapshot of %d items (%v)", len(items), err)
		}
		if w.Seq >= last.Seq {
			if items[0].ID != last.ID || items[1].ID != mid.ID || w.Unread != wire.SnapshotSize+2 {
				t.Fatalf("snapshot at seq %d: newest %s, %s, unread %d; want %s, %s, %d",
					w.Seq, items[0].ID, items[1].ID, w.Unread, last.ID, mid.ID, wire.SnapshotSize+2)
			}
			break
		}
	}
	elapsed := time.Since(start)
	// One snapshot a second at most (the first second's window began at the connect
	// snapshot, just before start).
	most := 1 + int64(elapsed/time.Second)
	if n := r.snaps.Load() - snaps; n > most {
		t.Fatalf("%d snapshot reads for 51 refreshes in %s, want at most %d", n, elapsed, most)
	}
	if int64(snapshots) > most {
		t.Fatalf("%d snapshots for 51 refreshes in %s, want at most %d", snapshots, elapsed, most)
	}
	t.Logf("51 refreshes: %d snapshots, %d store reads, the last after %s", snapshots, r.snaps.Load()-snaps, elapsed)
	r.engine.Send(r.router, inbox.Detach{User: "erin", Socket: s})
}

// bigUnread gives user an unread list bigger than the cache budget: the snapshot's 100
// notifications of 500 bytes, about 70 KiB.
func (r *rig) bigUnread(t *testing.T, user string) {
	t.Helper()
	payload := json.RawMessage(`{"text":"` + strings.Repeat("x", 488) + `"}`)
	for range wire.SnapshotSize {
		r.createWith(t, user, payload)
	}
}

// TestFirstConnectReadsSnapshotOnce: a user's first socket costs one snapshot read,
// even with an unread list too big to stay cached and whatever runs first once the
// router has spawned the user's inbox. The inbox used to start its first read while it
// started, on the router's goroutine, before the router sent it the socket's Attach:
// when that read answered first, there was no socket to serve and none to share it
// with, the list was let go at once, and the Attach read it again. The router's Interest
// hook runs between the spawn and the Attach; waiting there until the bubble is idle
// lets anything the inbox started on its own finish first.
func TestFirstConnectReadsSnapshotOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigWith(t, inbox.Options{Interest: func(_ string, on bool) {
			if on {
				synctest.Wait()
			}
		}}, nil)
		r.bigUnread(t, "gus")
		before := r.unread.len()
		s := newMemSocket()
		r.engine.Send(r.router, inbox.Attach{User: "gus", Socket: s})
		if w := s.next(t); w.Event != wire.EventUnread || w.Unread != wire.SnapshotSize {
			t.Fatalf("first frame %+v", w)
		}
		synctest.Wait() // a read started meanwhile has answered
		if n := len(r.unread.of("gus", before)); n != 1 {
			t.Fatalf("%d snapshot reads for one socket's connect, want 1", n)
		}
		r.engine.Send(r.router, inbox.Detach{User: "gus", Socket: s})
	})
}

// TestBigSnapshotSharedBySockets: sockets of one user that connect and refresh at
// staggered times, over an unread list bigger than the cache budget, share the snapshot
// the inbox read last, for RefreshEvery after that read answered: a read that answers
// with several sockets is followed by none for that long, so together they cost about
// one store read a second, not one per socket. The test runs on the bubble's clock,
// which moves only when every goroutine waits: the connects are exactly 100 ms apart
// and the windows exactly a second however loaded the machine is, so the reads are
// exactly these: the first socket's (alone, nothing held), the second's (held until
// 1.1 s, which serves the connects up to the tenth and the first refresh), and one at
// the end of that hold (held until 2.1 s or later, past the last deferred refresh at
// 1.9 s).
func TestBigSnapshotSharedBySockets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.bigUnread(t, "fay")
		before := r.unread.len()
		start := time.Now()
		var socks []*memSocket
		for range 10 {
			s := newMemSocket()
			r.engine.Send(r.router, inbox.Attach{User: "fay", Socket: s})
			if w := s.next(t); w.Event != wire.EventUnread || w.Unread != wire.SnapshotSize {
				t.Fatalf("first frame %+v", w)
			}
			socks = append(socks, s)
			time.Sleep(100 * time.Millisecond) // the workload's pace, on the bubble's clock
		}
		for _, s := range socks {
			r.engine.Send(r.router, inbox.Client{User: "fay", Socket: s, Frame: wire.ClientFrame{Event: wire.EventRefresh}})
		}
		for _, s := range socks {
			if w := s.next(t); w.Event != wire.EventUnread || w.Unread != wire.SnapshotSize {
				t.Fatalf("refresh answer %+v", w)
			}
		}
		elapsed := time.Since(start)
		synctest.Wait() // a read started meanwhile has answered
		reads := r.unread.of("fay", before)
		for i := 2; i < len(reads); i++ {
			// From the second socket's on, every read answered with several sockets.
			if gap := reads[i].start.Sub(reads[i-1].end); gap < time.Second {
				t.Errorf("snapshot read %d started %s after read %d answered, want at least RefreshEvery (1s)", i+1, gap, i)
			}
		}
		if len(reads) != 3 {
			t.Errorf("%d snapshot reads for 10 sockets connecting and refreshing over %s, want 3", len(reads), elapsed)
		}
		for i, rd := range reads {
			t.Logf("snapshot read %d: %s to %s", i+1, rd.start.Sub(start), rd.end.Sub(start))
		}
		for _, s := range socks {
			r.engine.Send(r.router, inbox.Detach{User: "fay", Socket: s})
		}
	})
}
