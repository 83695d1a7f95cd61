package inbox

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/supervise"
	"github.com/heraldhq/herald/persistence"
)

// Options configure the router and its inboxes. Zero fields mean the defaults.
type Options struct {
	// Store is where inboxes read snapshots and catch-up entries. Required.
	Store persistence.Reader
	// Writer applies the clients' mark-read and mark-all-read frames: the persistence
	// actor's client. Required.
	Writer persistence.Writer
	// OpTimeout bounds how long a client's write waits for its commit; one that takes
	// longer is answered with the writer's error frame (unavailable or outcome_unknown).
	// Default 15 s, more than a commit (persist.DefaultWriteTimeout).
	OpTimeout time.Duration
	// PendingFrames caps the client frames of one socket waiting behind its write in
	// flight; one more is answered with an unavailable error frame and not applied.
	// Default 128 (more than the gateway's frame burst, so an honest burst waits
	// rather than fails unless the store is slower than the frame rate).
	PendingFrames int
	// MaxSockets caps the sockets of one user; one more is closed with
	// CloseTooManySockets. Default 64.
	MaxSockets int
	// Grace is how long an inbox outlives its last socket. Default 10 s.
	Grace time.Duration
	// ReplayPage is how many entries one catch-up read fetches at most; a read waits
	// until the socket has room for them. Default 100.
	ReplayPage int
	// Ring caps the live entries an inbox keeps while a socket catches up; a socket
	// that falls further behind reads the store again. Default 1,024.
	Ring int
	// ReorderWait is how long an entry that arrived ahead of its turn (several commits
	// in flight) waits for the entries before it before they count as lost and are read
	// from the store. Default 100 ms.
	ReorderWait time.Duration
	// CacheBytes caps the unread list an inbox keeps between snapshots (about that
	// many bytes of notifications), together with its encoded snapshot: the encoding is
	// kept only while both fit, and a longer list is read again when a snapshot is
	// asked for. Only a user with several sockets may hold more, for RefreshEvery after
	// a snapshot read (see the package doc). Default 4 KiB.
	CacheBytes int
	// RefreshEvery is the least time between two snapshots a socket is sent: a
	// refresh-unread sooner than that after the last is answered at the end of the
	// window, once for all the refreshes in it. Default 1 s.
	RefreshEvery time.Duration
	// ReadTimeout bounds each store read, and how long a catching-up socket may take
	// to make room for the next page before it is closed as a slow consumer. Default 10 s.
	ReadTimeout time.Duration
	// Interest, when not nil, is told when the router starts an inbox for a user (on)
	// and when it retires it: how a cluster bridge subscribes to the users a node holds.
	// It is called on the router's goroutine and must return at once.
	Interest func(user string, on bool)
	// Metrics, when not nil, counts inboxes.
	Metrics *Metrics
	// Log receives store read failures and encoding errors. Default slog.Default().
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxSockets <= 0 {
		o.MaxSockets = 64
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.ReplayPage <= 0 {
		o.ReplayPage = 100
	}
	if o.Ring <= 0 {
		o.Ring = 1024
	}
	if o.ReorderWait <= 0 {
		o.ReorderWait = 100 * time.Millisecond
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 4 << 10
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 15 * time.Second
	}
	if o.PendingFrames <= 0 {
		o.PendingFrames = 128
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// inboxQueue is the mailbox size of an inbox actor. hollywood grows a full mailbox (by
// doubling, and keeps it), so this is only the memory an idle inbox starts with: 96
// bytes at 4, 24 KiB at the default.
const inboxQueue = 4

// NewRouter returns the producer of the router actor.
func NewRouter(opts Options) actor.Producer {
	opts.defaults()
	return func() actor.Receiver {
		return &router{opts: opts, routes: map[string]*route{}}
	}
}

type route struct {
	pid      *actor.PID
	attaches uint64         // Attach messages forwarded to pid
	batch    []herald.Entry // this user's part of the batch being split
}

type router struct {
	opts    Options
	routes  map[string]*route
	touched []*route
	spawned uint64 // names inboxes uniquely: a retiring inbox and its successor never share a PID

	// Head checks (CheckHeads): at most one store read runs; what is asked meanwhile
	// waits in wantAll and want, and starts when it ends.
	checking  bool
	retryWait bool // a failed check waits before it runs again
	wantAll   bool
	want      map[string]struct{}
}

// headsBatch is how many users one head read asks for.
const headsBatch = 2048

// checkRetry is how long a failed head check waits before it runs again.
const checkRetry = time.Second

func (r *router) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case Committed:
		r.split(c, m)
	case Attach:
		rt := r.routes[m.User]
		if rt == nil {
			r.spawned++
			// Not a child of the router: stopping a parent waits on each child's stop,
			// and a child already stopping (retired) would keep it waiting for ever.
			rt = &route{pid: c.Engine().Spawn(supervise.Recover(r.opts.Log, nil, newInbox(m.User, &r.opts, c.PID())), "inbox",
				actor.WithID(strconv.FormatUint(r.spawned, 36)),
				actor.WithInboxSize(inboxQueue))}
			r.routes[m.User] = rt
			r.opts.Metrics.inboxes(1)
			if r.opts.Interest != nil {
				r.opts.Interest(m.User, true)
			}
		}
		rt.attaches++
		c.Send(rt.pid, m)
	case Detach:
		if rt := r.routes[m.User]; rt != nil {
			c.Send(rt.pid, m)
		}
	case Client:
		if rt := r.routes[m.User]; rt != nil {
			c.Send(rt.pid, m)
		}
	case CheckHeads:
		r.askHeads(m.Users, m.All)
		r.checkHeads(c)
	case headsRead:
		r.headsRead(c, m)
	case checkAgain:
		r.retryWait = false
		r.checkHeads(c)
	case idle:
		rt := r.routes[m.user]
		if rt == nil || !rt.pid.Equals(m.pid) || rt.attaches != m.attaches {
			return // a socket is on its way to it: it stays
		}
		delete(r.routes, m.user)
		c.Engine().Poison(rt.pid)
		r.opts.Metrics.inboxes(-1)
		if r.opts.Interest != nil {
			r.opts.Interest(m.user, false)
		}
	case actor.Stopped:
		// The inboxes stop with the router; nothing waits for them (an inbox holds no
		// goroutine while idle, and its sockets are the gateway's to close).
		for _, rt := range r.routes {
			c.Engine().Poison(rt.pid)
		}
		r.opts.Metrics.inboxes(-float64(len(r.routes)))
		r.routes = nil
	}
}

// split sends each connected receiver its entries of the batch, in commit order.
func (r *router) split(c *actor.Context, m Committed) {
	for i := range m.Entries {
		e := &m.Entries[i]
		rt := r.routes[e.UserID]
		if rt == nil {
			continue
		}
		if len(rt.batch) == 0 {
			r.touched = append(r.touched, rt)
		}
		rt.batch = append(rt.batch, *e)
	}
	for i, rt := range r.touched {
		c.Send(rt.pid, &deliver{entries: rt.batch, at: m.At})
		rt.batch = nil // the inbox owns it now
		r.touched[i] = nil
	}
	r.touched = r.touched[:0]
}

// askHeads adds users, or every user, to the next head check.
func (r *router) askHeads(users []string, all bool) {
	if all {
		r.wantAll = true
		return
	}
	if r.want == nil {
		r.want = make(map[string]struct{}, len(users))
	}
	for _, u := range users {
		r.want[u] = struct{}{}
	}
}

// checkHeads starts the head read of the users asked for, unless one runs. Only users
// with an inbox are read: one without has nothing to repair (its next socket starts
// from the store).
func (r *router) checkHeads(c *actor.Context) {
	if r.checking || r.retryWait || (!r.wantAll && len(r.want) == 0) {
		return
	}
	var users []string
	if r.wantAll {
		users = make([]string, 0, len(r.routes))
		for u := range r.routes {
			users = append(users, u)
		}
	} else {
		users = make([]string, 0, len(r.want))
		for u := range r.want {
			if r.routes[u] != nil {
				users = append(users, u)
			}
		}
	}
	all := r.wantAll
	r.wantAll, r.want = false, nil
	if len(users) == 0 {
		return
	}
	r.checking = true
	store, timeout, engine, self := r.opts.Store, r.opts.ReadTimeout, c.Engine(), c.PID()
	go func() {
		seqs := make([]int64, len(users))
		var err error
		for i := 0; i < len(users) && err == nil; i += headsBatch {
			j := min(i+headsBatch, len(users))
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err = store.Heads(ctx, users[i:j], seqs[i:j])
			cancel()
		}
		engine.Send(self, headsRead{users: users, seqs: seqs, all: all, err: err})
	}()
}

// headsRead hands each inbox the store's head for its user; a failed read is asked for
// again after checkRetry, with what was asked meanwhile.
func (r *router) headsRead(c *actor.Context, m headsRead) {
	r.checking = false
	r.opts.Metrics.headCheck(len(m.users), m.err)
	if m.err != nil {
		r.opts.Log.Warn("inbox: head check failed; retrying", "users", len(m.users), "err", m.err)
		r.askHeads(m.users, m.all)
		r.retryWait = true
		engine, self := c.Engine(), c.PID()
		time.AfterFunc(checkRetry, func() { engine.Send(self, checkAgain{}) })
		return
	}
	for i, u := range m.users {
		if rt := r.routes[u]; rt != nil {
			c.Send(rt.pid, headIs{seq: m.seqs[i]})
		}
	}
	r.checkHeads(c)
}
