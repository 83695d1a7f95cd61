package inbox

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

// sockState is where a socket is on its way to live delivery.
type sockState uint8

const (
	stSnapshot sockState = iota // waits for the snapshot before anything else
	stCatchUp                   // needs the entries after sent: from the ring or the store
	stFetching                  // a store read for it is in flight
	stLive                      // receives each entry as it arrives
	stGone                      // closed or detached; dropped at the next compaction
)

// sock is the inbox's view of one socket.
type sock struct {
	s          Socket
	sent       int64 // the last seq sent (or covered by a snapshot)
	state      sockState
	wantSnap   bool   // a snapshot is owed (connect without since, refresh-unread, reset)
	checked    bool   // the store has confirmed sent is a position it has (or had)
	refreshDue bool   // a deferred snapshot is armed (refresh-unread within RefreshEvery of the last)
	refreshGen uint32 // tells the armed timer from stale ones
	fetchGen   uint64 // tells the answer of the read in flight from stale ones
	snapAt     int64  // nanotime when the socket was last sent a snapshot; 0: never

	writing bool               // a write the client asked for is in flight
	ref     string             // the ref of the frame being served (its error frame echoes it)
	pending []wire.ClientFrame // the client's frames waiting for it, in the order sent
}

// ringEntry is a live entry kept while some socket catches up.
type ringEntry struct {
	entry herald.Entry
	frame Frame
}

type inbox struct {
	user   string
	opts   *Options // the router's, shared by every inbox
	router *actor.PID
	engine *actor.Engine
	self   *actor.PID

	socks    []*sock
	attaches uint64 // Attach messages received, for the router's retire check
	graceGen uint64

	loaded       bool      // head is known: the first snapshot read has answered
	cacheLoading bool      // a snapshot read is in flight
	holding      bool      // the cache is kept whatever its size until holdOver (see hold)
	holdGen      uint64    // tells the current holdOver from stale ones
	early        []deliver // deliveries received before loaded
	head         int64     // the latest seq received
	cache        unreadCache
	ring         []ringEntry // live entries head-len(ring)+1 .. head, kept while retaining()
	ahead        []aheadEntry
	reorderArmed bool
	reorderGen   uint64
	headWant     int64 // the highest head a check read from the store
	headArmed    bool  // the wait for the entries up to headWant is on
	headGen      uint64

	// readIDs are ids of the user's notifications the inbox knows are read (from
	// notification-read and all-notifications-read entries, and the answers to its own
	// mark-reads), newest at readNext-1: a mark-read of one is answered without the
	// store. At most maxReadIDs, and none once the last socket has gone.
	readIDs  [][16]byte
	readNext int
}

// maxReadIDs is how many ids known to be read an inbox remembers: enough for the
// repeated mark-read of a notification just read (two tabs, a double click), at 256
// bytes.
const maxReadIDs = 16

func newInbox(user string, opts *Options, router *actor.PID) actor.Producer {
	return func() actor.Receiver {
		return &inbox{user: user, opts: opts, router: router}
	}
}

func (ib *inbox) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		// Nothing is read yet: the first Attach starts the first snapshot read. A read
		// started here (on the router's goroutine, inside its Spawn) could answer before
		// the router sends that Attach: with no socket to serve and none to share it, a
		// big list would be let go at once, and the Attach would read it again.
		ib.engine, ib.self = c.Engine(), c.PID()
	case Attach:
		ib.attach(m)
	case Detach:
		ib.detach(m.Socket)
	case Client:
		for _, sk := range ib.socks {
			if sk.s == m.Socket && sk.state != stGone {
				ib.client(sk, m.Frame)
			}
		}
	case *written:
		ib.written(m)
		*m = written{}
	case refreshDue:
		if sk := m.sk; sk.refreshDue && sk.refreshGen == m.gen && sk.state != stGone {
			sk.refreshDue, sk.wantSnap = false, true
			ib.step(sk)
		}
	case *deliver:
		ib.deliver(*m)
		*m = deliver{}
	case *cacheLoaded:
		ib.cacheLoaded(m)
		*m = cacheLoaded{}
	case *fetched:
		ib.fetched(m)
		*m = fetched{}
	case reorderOver:
		if m.gen == ib.reorderGen {
			ib.reorderArmed = false
			ib.drainAhead(true)
		}
	case headIs:
		if m.seq > ib.headWant {
			ib.headWant = m.seq
		}
		ib.armHead()
	case headDue:
		if m.gen == ib.headGen {
			ib.headArmed = false
			ib.catchUpTo(ib.headWant)
		}
	case holdOver:
		if m.gen == ib.holdGen {
			ib.holding = false // compact, below, trims what is over budget
		}
	case graceOver:
		if m.gen == ib.graceGen && len(ib.socks) == 0 {
			c.Send(ib.router, idle{user: ib.user, pid: ib.self, attaches: ib.attaches})
		}
	}
	ib.compact()
}

func (ib *inbox) attach(m Attach) {
	ib.attaches++
	ib.graceGen++
	if len(ib.socks) >= ib.opts.MaxSockets {
		m.Socket.Close(wire.CloseTooManySockets, "too many connections for this user")
		return
	}
	sk := &sock{s: m.Socket, state: stSnapshot, wantSnap: true}
	if m.HasSince {
		sk.sent, sk.state, sk.wantSnap = m.Since, stCatchUp, false
	}
	ib.socks = append(ib.socks, sk)
	if ib.loaded {
		ib.step(sk)
	} else {
		ib.loadCache() // the first snapshot read steps it
	}
}

func (ib *inbox) detach(s Socket) {
	for _, sk := range ib.socks {
		if sk.s == s {
			sk.state = stGone
		}
	}
	ib.compact()
}

// startGrace arms the retire timer once the inbox has no socket left.
func (ib *inbox) startGrace() {
	if len(ib.socks) > 0 {
		return
	}
	ib.readIDs, ib.readNext = nil, 0
	ib.graceGen++
	gen, engine, self := ib.graceGen, ib.engine, ib.self
	time.AfterFunc(ib.opts.Grace, func() { engine.Send(self, graceOver{gen: gen}) })
}

// hold keeps the snapshot just read, and its encoding once made, for RefreshEvery
// whatever their size: an unread list bigger than CacheBytes is otherwise let go after
// every message, and each socket of the user connecting or refreshing meanwhile would
// read and encode it again. So a user's sockets together cause at most about one store
// read of a big snapshot per RefreshEvery. Only a user with several sockets has
// something to share: for one socket alone the list is let go as soon as its snapshot
// is queued, so that connecting users do not each hold a page (and its encoding) for
// RefreshEvery, which at thousands of connects a second is hundreds of MiB of heap
// that the process keeps once the connects are over.
func (ib *inbox) hold() {
	ib.holding = true
	ib.holdGen++
	gen, engine, self := ib.holdGen, ib.engine, ib.self
	time.AfterFunc(ib.opts.RefreshEvery, func() { engine.Send(self, holdOver{gen: gen}) })
}

// sockets returns how many sockets the inbox serves.
func (ib *inbox) sockets() int {
	n := 0
	for _, sk := range ib.socks {
		if sk.state != stGone {
			n++
		}
	}
	return n
}

// compact forgets the sockets that are gone.
func (ib *inbox) compact() {
	n := len(ib.socks)
	ib.socks = slices.DeleteFunc(ib.socks, func(sk *sock) bool { return sk.state == stGone })
	if len(ib.socks) < n {
		ib.startGrace()
	}
	if !ib.retaining() {
		ib.ring = nil
	}
	if !ib.cacheLoading && !ib.holding {
		ib.cache.trim(ib.opts.CacheBytes)
	}
}

// retaining reports whether live entries must be kept in the ring: someone will need
// the entries that arrive while a read is in flight.
func (ib *inbox) retaining() bool {
	if !ib.loaded || ib.cacheLoading {
		return true
	}
	for _, sk := range ib.socks {
		if sk.state != stLive && sk.state != stGone {
			return true
		}
	}
	return false
}

// refresh answers a socket's refresh-unread with a snapshot: at once, or, within
// Options.RefreshEvery of the last snapshot the socket got, at the end of that window.
// Refreshes meanwhile are answered by the same deferred snapshot, which reflects
// everything the inbox has seen by then: a client flooding refresh-unread costs at most
// one snapshot (one store read or encode) per window, and always ends with a snapshot
// taken after its last refresh.
func (ib *inbox) refresh(sk *sock) {
	if sk.wantSnap || sk.refreshDue {
		return // the snapshot owed is taken after this refresh: it answers it too
	}
	if sk.snapAt != 0 {
		if wait := time.Duration(sk.snapAt + int64(ib.opts.RefreshEvery) - nanotime()); wait > 0 {
			sk.refreshDue = true
			sk.refreshGen++
			gen, engine, self := sk.refreshGen, ib.engine, ib.self
			time.AfterFunc(wait, func() { engine.Send(self, refreshDue{sk: sk, gen: gen}) })
			return
		}
	}
	sk.wantSnap = true
	ib.step(sk)
}

// nanotime is a monotonic clock reading in nanoseconds, never 0.
func nanotime() int64 { return int64(time.Since(epoch)) + 1 }

var epoch = time.Now()

// send queues f on sk; a socket that refuses is gone.
func (ib *inbox) send(sk *sock, f Frame) {
	if !sk.s.Send(f) {
		sk.state = stGone
	}
}

// step moves sk as far towards live delivery as it can without waiting.
func (ib *inbox) step(sk *sock) {
	if sk.state == stGone || !ib.loaded {
		return
	}
	if sk.wantSnap {
		if !ib.cache.valid {
			ib.loadCache()
			return
		}
		frame := ib.cache.snapshot()
		sk.wantSnap = false
		sk.snapAt = nanotime()
		if sk.refreshDue { // this snapshot answers the refreshes the armed one was for
			sk.refreshDue = false
			sk.refreshGen++
		}
		ib.send(sk, Frame{Data: frame})
		// The client starts over from the snapshot: what follows it is what comes after
		// cache.seq, which is at or past head, so it all arrives live.
		sk.sent, sk.checked = ib.cache.seq, true
		if sk.state == stSnapshot || sk.state == stFetching {
			// A read in flight was for the old position: its answer is dropped.
			sk.state = stCatchUp
			sk.fetchGen++
		}
	}
	if sk.state != stCatchUp {
		return
	}
	switch {
	case sk.sent == ib.head, sk.sent > ib.head && sk.checked:
		// Everything after head reaches the inbox live, so the socket is up to date.
		sk.state = stLive
	case ib.ringHas(sk.sent+1) && ib.head-sk.sent <= int64(sk.s.Room()):
		for i := int(sk.sent + 1 - ib.ring[0].entry.Seq); i < len(ib.ring) && sk.state != stGone; i++ {
			ib.send(sk, ib.ring[i].frame)
		}
		sk.sent = ib.head
		if sk.state != stGone {
			sk.state = stLive
		}
	default:
		// Too far behind for the ring, or for the socket's free room: read a page from
		// the store once the socket has room for it.
		ib.fetch(sk)
	}
}

func (ib *inbox) ringHas(seq int64) bool {
	return len(ib.ring) > 0 && ib.ring[0].entry.Seq <= seq && seq <= ib.head
}

func (ib *inbox) closeSock(sk *sock, code wire.CloseCode, reason string) {
	sk.s.Close(code, reason)
	sk.state = stGone
}

// fetch reads the log after sk.sent for sk, off the actor's goroutine: first it waits
// until the socket has room for a page (a client catching up is paced by how fast it
// reads), then it reads at most that much.
func (ib *inbox) fetch(sk *sock) {
	sk.state = stFetching
	sk.fetchGen++
	gen, since, user, opts, engine, self := sk.fetchGen, sk.sent, ib.user, ib.opts, ib.engine, ib.self
	go func() {
		wctx, cancel := context.WithTimeout(context.Background(), opts.ReadTimeout)
		room, err := sk.s.WaitRoom(wctx, opts.ReplayPage)
		cancel()
		if err != nil {
			engine.Send(self, &fetched{sk: sk, gen: gen, err: err, slow: true})
			return
		}
		limit := min(room, opts.ReplayPage)
		rctx, cancel := context.WithTimeout(context.Background(), opts.ReadTimeout)
		page, err := opts.Store.Events(rctx, user, since, limit)
		cancel()
		engine.Send(self, &fetched{sk: sk, gen: gen, limit: limit, page: page, err: err})
	}()
}

func (ib *inbox) fetched(m *fetched) {
	sk := m.sk
	if sk.state != stFetching || sk.fetchGen != m.gen {
		return // the socket went away, or moved on (a snapshot), meanwhile
	}
	switch {
	case m.slow:
		ib.closeSock(sk, wire.CloseSlowConsumer, "too slow to catch up, reconnect with since")
		return
	case m.err != nil:
		ib.opts.Log.Warn("inbox: catch-up read failed; closing the socket", "user", ib.user, "err", m.err)
		ib.closeSock(sk, wire.CloseTryAgain, "storage unavailable, reconnect with since")
		return
	}
	if m.page.Reset {
		sk.state, sk.wantSnap = stSnapshot, true
		ib.step(sk)
		return
	}
	for i := range m.page.Entries {
		e := &m.page.Entries[i]
		if e.Seq <= sk.sent {
			continue
		}
		data, err := wire.EncodeEntry(e)
		if err != nil {
			ib.opts.Log.Error("inbox: encoding an entry failed", "user", ib.user, "seq", e.Seq, "err", err)
			ib.closeSock(sk, wire.CloseInternal, "internal error")
			return
		}
		ib.send(sk, Frame{Data: data})
		if sk.state == stGone {
			return
		}
		sk.sent = e.Seq
	}
	sk.state, sk.checked = stCatchUp, true
	if len(m.page.Entries) == m.limit && sk.sent < m.page.Seq {
		ib.fetch(sk) // more in the store than one page
		return
	}
	ib.step(sk)
}

// loadCache reads the unread snapshot, off the actor's goroutine.
func (ib *inbox) loadCache() {
	if ib.cacheLoading {
		return
	}
	ib.cacheLoading = true
	user, opts, engine, self := ib.user, ib.opts, ib.engine, ib.self
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), opts.ReadTimeout)
		defer cancel()
		page, err := opts.Store.Unread(ctx, user, 0, wire.SnapshotSize)
		engine.Send(self, &cacheLoaded{page: page, err: err})
	}()
}

func (ib *inbox) cacheLoaded(m *cacheLoaded) {
	ib.cacheLoading = false
	if m.err != nil {
		ib.opts.Log.Warn("inbox: snapshot read failed; closing the sockets waiting for it", "user", ib.user, "err", m.err)
		for _, sk := range ib.socks {
			if !ib.loaded || sk.wantSnap {
				ib.closeSock(sk, wire.CloseTryAgain, "storage unavailable, reconnect with since")
			}
		}
		if !ib.loaded {
			ib.early = nil
		}
		return
	}
	first := !ib.loaded
	if first {
		ib.loaded, ib.head = true, m.page.Seq
	}
	ib.cache.reset(m.page)
	if ib.sockets() > 1 {
		ib.hold()
	}
	// Entries that arrived during the read and are newer than it bring the cache up to
	// date; if the ring lost some of them, the cache stays invalid until the next read.
	if ib.cache.valid && ib.head > ib.cache.seq {
		if !ib.ringHas(ib.cache.seq + 1) {
			ib.cache.invalidate()
		} else {
			for i := int(ib.cache.seq + 1 - ib.ring[0].entry.Seq); i < len(ib.ring); i++ {
				ib.cache.apply(&ib.ring[i].entry)
			}
		}
	}
	if first {
		early := ib.early
		ib.early = nil
		for _, d := range early {
			ib.deliver(d)
		}
	}
	for _, sk := range ib.socks {
		if sk.wantSnap && !ib.cache.valid {
			// Lost the race with a gap; read again rather than serve a stale list.
			ib.loadCache()
			break
		}
	}
	for _, sk := range ib.socks {
		ib.step(sk)
	}
}

// deliver takes in live entries. With several commits in flight, a user's entries can
// arrive out of seq order: one ahead of the next expected waits (Options.ReorderWait)
// for those before it, and only then counts as a gap, which live sockets repair from the
// store.
func (ib *inbox) deliver(d deliver) {
	if !ib.loaded {
		ib.early = append(ib.early, d)
		return
	}
	for i := range d.entries {
		e := &d.entries[i]
		switch {
		case e.Seq <= ib.head: // already seen
		case e.Seq == ib.head+1:
			ib.accept(e, d.at)
		default:
			ib.ahead = append(ib.ahead, aheadEntry{entry: *e, at: d.at})
			ib.armReorder()
		}
	}
	ib.drainAhead(false)
}

// aheadEntry is a live entry that arrived before one it follows.
type aheadEntry struct {
	entry herald.Entry
	at    time.Time
}

// drainAhead takes the waiting entries that are next in seq order; with force, all of
// them, gaps included (the wait is over).
func (ib *inbox) drainAhead(force bool) {
	if len(ib.ahead) == 0 {
		return
	}
	slices.SortFunc(ib.ahead, func(a, b aheadEntry) int { return cmp.Compare(a.entry.Seq, b.entry.Seq) })
	i := 0
	for ; i < len(ib.ahead); i++ {
		e := &ib.ahead[i].entry
		if e.Seq <= ib.head {
			continue
		}
		if e.Seq != ib.head+1 && !force {
			break
		}
		ib.accept(e, ib.ahead[i].at)
	}
	if i == len(ib.ahead) {
		ib.ahead = nil
		ib.reorderGen++ // the wait, if any, is over
		ib.reorderArmed = false
		return
	}
	ib.ahead = append(ib.ahead[:0:0], ib.ahead[i:]...)
}

// armReorder starts the wait for the entries before the ones ahead.
func (ib *inbox) armReorder() {
	if ib.reorderArmed {
		return
	}
	ib.reorderArmed = true
	gen, engine, self := ib.reorderGen, ib.engine, ib.self
	time.AfterFunc(ib.opts.ReorderWait, func() { engine.Send(self, reorderOver{gen: gen}) })
}

// armHead starts the wait for the entries up to headWant, unless the inbox has them:
// they may be on their way (committed after the head was read, or in flight on the bus),
// so they count as lost only once Options.ReorderWait has passed.
func (ib *inbox) armHead() {
	if ib.headArmed || (ib.loaded && ib.headWant <= ib.head) {
		return
	}
	ib.headArmed = true
	ib.headGen++
	gen, engine, self := ib.headGen, ib.engine, ib.self
	time.AfterFunc(ib.opts.ReorderWait, func() { engine.Send(self, headDue{gen: gen}) })
}

// catchUpTo moves the inbox to seq, the store's head, when it has not received the
// entries up to it: the cache is read again, and every live socket reads what it
// missed from the store. Before the first snapshot read has answered, it waits again.
func (ib *inbox) catchUpTo(seq int64) {
	if !ib.loaded {
		ib.armHead()
		return
	}
	if seq <= ib.head {
		return
	}
	ib.opts.Metrics.headRepaired(seq - ib.head)
	ib.ring = ib.ring[:0] // not contiguous any more; readers fall back to the store
	ib.head = seq
	ib.cache.invalidate()
	for _, sk := range ib.socks {
		if sk.state == stLive {
			sk.state = stCatchUp
			ib.step(sk)
		}
	}
}

// accept moves the cache, the ring and every live socket past e, the next entry in seq
// order (or the first after a gap).
func (ib *inbox) accept(e *herald.Entry, at time.Time) {
	retain := ib.retaining()
	encode := retain
	for _, sk := range ib.socks {
		encode = encode || sk.state == stLive
	}
	if e.Seq != ib.head+1 {
		ib.ring = ib.ring[:0] // not contiguous any more; readers fall back to the store
	}
	ib.head = e.Seq
	switch e.Event {
	case herald.EventRead:
		if e.Notification != nil {
			ib.noteRead(e.Notification.ID)
		}
	case herald.EventReadAll:
		for i := range ib.cache.items { // the newest last: they are the ones kept
			ib.noteRead(ib.cache.items[i].ID)
		}
	}
	ib.cache.apply(e)
	if !encode {
		return
	}
	data, err := wire.EncodeEntry(e)
	if err != nil {
		ib.opts.Log.Error("inbox: encoding an entry failed", "user", ib.user, "seq", e.Seq, "err", err)
		ib.ring = ib.ring[:0]
		return // live sockets see the gap and read it from the store
	}
	f := Frame{Data: data, Stored: at}
	if retain {
		if len(ib.ring) >= ib.opts.Ring {
			n := copy(ib.ring, ib.ring[len(ib.ring)/2:])
			clear(ib.ring[n:])
			ib.ring = ib.ring[:n]
		}
		ib.ring = append(ib.ring, ringEntry{entry: *e, frame: f})
	}
	for _, sk := range ib.socks {
		if sk.state != stLive {
			continue
		}
		switch {
		case e.Seq <= sk.sent:
		case e.Seq == sk.sent+1 && sk.s.Room() > 0:
			ib.send(sk, f)
			sk.sent = e.Seq
		default:
			// This socket missed entries (read them rather than skip them), or its
			// queue is full for now (a burst: catch up at its own pace, from the ring
			// or the store, rather than overflow; a socket that never makes room is
			// closed as a slow consumer by the read).
			ib.fetch(sk)
		}
	}
}

// client takes in a frame of sk's client. Frames wait behind the socket's write in
// flight, so that they take effect in the order the client sent them; at most
// Options.PendingFrames wait, and one more is refused with an error frame.
func (ib *inbox) client(sk *sock, f wire.ClientFrame) {
	if !sk.writing && len(sk.pending) == 0 {
		ib.serveFrame(sk, f)
		return
	}
	if len(sk.pending) >= ib.opts.PendingFrames {
		ib.sendErrorRef(sk, herald.Errorf(herald.CodeUnavailable,
			"%d frames are waiting for storage already; this %s was not applied", len(sk.pending), f.Event), f.Ref)
		return
	}
	sk.pending = append(sk.pending, f)
}

// serveFrame acts on one client frame of sk; a write leaves sk.writing set until its
// answer comes back.
func (ib *inbox) serveFrame(sk *sock, f wire.ClientFrame) {
	sk.ref = f.Ref
	switch f.Event {
	case wire.EventRefresh:
		ib.refresh(sk)
	case wire.EventMarkRead:
		u, ok := persistence.ParseID(f.ID)
		switch {
		case !ok:
			// No notification has that name (stores look ids up by ParseID too).
			ib.sendError(sk, dataField(persistence.NotFound(f.ID)))
		case ib.knownRead(u):
			// Read already, and read is for good (notifications are never deleted, nor
			// made unread): the store would change nothing, which is no entry and no
			// frame.
		default:
			ib.write(sk, persistence.Op{Kind: persistence.OpMarkRead, UserID: ib.user, ID: f.ID})
		}
	case wire.EventMarkAllRead:
		// Always the store's: even a cache that shows nothing unread may be behind a
		// create committed before this frame.
		ib.write(sk, persistence.Op{Kind: persistence.OpReadAll, UserID: ib.user})
	}
}

// write applies op for sk through the persistence actor, off the actor's goroutine;
// the answer comes back as a written message.
func (ib *inbox) write(sk *sock, op persistence.Op) {
	if ib.opts.Writer == nil {
		ib.opts.Log.Error("inbox: no Writer for a client's write", "user", ib.user)
		ib.sendError(sk, herald.Errorf(herald.CodeInternal, "no writer"))
		return
	}
	sk.writing = true
	w, timeout, engine, self := ib.opts.Writer, ib.opts.OpTimeout, ib.engine, ib.self
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		res, err := w.Write(ctx, op)
		cancel()
		engine.Send(self, &written{sk: sk, res: res, err: err})
	}()
}

// written takes the answer of sk's write. Success sends nothing to sk here: the change
// comes to every socket of the user as its log entry (none for a change that changed
// nothing). The entries are taken in now, as if delivered (the router's copy is then
// dropped as seen): a refresh-unread the client sent after the write is answered with a
// snapshot that shows it. A failure is an error frame on sk alone. Then sk's next
// frames are served.
func (ib *inbox) written(m *written) {
	sk := m.sk
	sk.writing = false
	if m.err != nil {
		e := herald.AsError(m.err)
		if e.Code == herald.CodeInternal {
			ib.opts.Log.Error("inbox: client write failed", "user", ib.user, "err", m.err)
		}
		ib.sendError(sk, dataField(e))
	} else {
		for i := range m.res.Notifications {
			if n := &m.res.Notifications[i]; n.ReadAt != nil {
				ib.noteRead(n.ID)
			}
		}
		if len(m.res.Entries) > 0 {
			ib.deliver(deliver{entries: m.res.Entries, at: time.Now()})
		}
	}
	for !sk.writing && len(sk.pending) > 0 && sk.state != stGone {
		f := sk.pending[0]
		sk.pending[0] = wire.ClientFrame{}
		sk.pending = sk.pending[1:]
		ib.serveFrame(sk, f)
	}
	if len(sk.pending) == 0 {
		sk.pending = nil
	}
}

// dataField names the field of e as it is in the client's frame, under data.
func dataField(e *herald.Error) *herald.Error {
	if e.Field == "" {
		return e
	}
	return &herald.Error{Code: e.Code, Message: e.Message, Field: "data." + e.Field, Err: e.Err}
}

// sendError sends sk the error frame of the frame being served (sk.ref).
func (ib *inbox) sendError(sk *sock, err error) { ib.sendErrorRef(sk, err, sk.ref) }

func (ib *inbox) sendErrorRef(sk *sock, err error, ref string) {
	if sk.state != stGone {
		ib.send(sk, Frame{Data: wire.EncodeErrorRef(err, ref)})
	}
}

// noteRead remembers that notification id of the user is read.
func (ib *inbox) noteRead(id string) {
	u, ok := persistence.ParseID(id)
	if !ok || ib.knownRead(u) {
		return
	}
	if len(ib.readIDs) < maxReadIDs {
		ib.readIDs = append(ib.readIDs, u)
		return
	}
	ib.readIDs[ib.readNext] = u
	ib.readNext = (ib.readNext + 1) % maxReadIDs
}

func (ib *inbox) knownRead(u [16]byte) bool {
	return slices.Contains(ib.readIDs, u)
}
