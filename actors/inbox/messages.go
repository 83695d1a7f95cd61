package inbox

import (
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

// Attach gives socket S of User to the router. With HasSince, S resumes after log
// position Since; without, it starts with the unread-notifications snapshot.
type Attach struct {
	User     string
	Socket   Socket
	Since    int64
	HasSince bool
}

// Detach tells the router that socket S of User is gone. Send it from the goroutine
// that sent Attach, after it, so the two arrive in order.
type Detach struct {
	User   string
	Socket Socket
}

// Client is a frame the client sent on socket S of User that acts on the user's state:
// refresh-unread, mark-read or mark-all-read (a ping the connection answers itself).
// The connection's reader sends it, after Attach and before Detach, and goes on
// reading: the inbox answers it, in the order the socket's frames were sent, without
// the reader waiting for anything.
type Client struct {
	User   string
	Socket Socket
	Frame  wire.ClientFrame
}

// Committed carries the entries of one committed batch, in commit order, and when the
// commit ended.
type Committed struct {
	Entries []herald.Entry
	At      time.Time
}

// CheckHeads asks the router to compare the heads of its inboxes with the store's: those
// of Users, or of every user with an inbox when All. One read answers for many users,
// and an inbox that is behind the store (an entry lost on its way: on the bus between
// nodes, or a commit whose answer never came) has its sockets read what they missed. In
// steady state nothing is behind and nothing else is read. A check asked for while one
// runs starts when it ends, with everything asked meanwhile; a failed read is retried
// every second until the store answers.
type CheckHeads struct {
	Users []string
	All   bool
}

// OnCommit returns the hook for the persistence actor's Options.OnCommit: it hands each
// committed batch to the router and returns at once.
func OnCommit(engine *actor.Engine, router *actor.PID) func([]herald.Entry) {
	return func(entries []herald.Entry) {
		engine.Send(router, Committed{Entries: entries, At: time.Now()})
	}
}

// deliver is the part of a committed batch for one inbox.
type deliver struct {
	entries []herald.Entry
	at      time.Time
}

// headsRead answers the router's head read: seqs[i] is the store's head of users[i].
type headsRead struct {
	users []string
	seqs  []int64
	all   bool
	err   error
}

// checkAgain ends the wait after a failed head read.
type checkAgain struct{}

// headIs is the store's head for the inbox's user, as a head check read it.
type headIs struct{ seq int64 }

// headDue ends the wait for entries a head check found missing: those still missing
// are read from the store. gen tells a stale timer from the current one.
type headDue struct{ gen uint64 }

// idle is an inbox asking the router to retire it: it has had no socket for the grace
// period, and had received attaches Attach messages in all.
type idle struct {
	user     string
	pid      *actor.PID
	attaches uint64
}

// reorderOver ends the wait for entries that arrived after later ones.
type reorderOver struct{ gen uint64 }

// graceOver fires Options.Grace after an inbox lost its last socket; gen tells a stale
// timer from the current one.
type graceOver struct{ gen uint64 }

// holdOver ends the window in which a snapshot read from the store is kept whatever
// its size (Options.RefreshEvery), so that every socket asking meanwhile is served from
// it; gen tells a stale timer from the current one.
type holdOver struct{ gen uint64 }

// refreshDue fires at the end of a socket's refresh window: the deferred snapshot is
// owed now. gen tells a stale timer from the current one.
type refreshDue struct {
	sk  *sock
	gen uint32
}

// cacheLoaded answers the inbox's read of the unread snapshot.
type cacheLoaded struct {
	page persistence.UnreadPage
	err  error
}

// written answers a client's write (mark-read, mark-all-read) sent by socket sk.
type written struct {
	sk  *sock
	res persistence.Result
	err error
}

// fetched answers a socket's read of the log after since.
type fetched struct {
	sk    *sock
	gen   uint64 // sk.fetchGen when the read began
	limit int    // the page size asked for
	page  persistence.EventsPage
	err   error
	slow  bool // err: the socket never had room for a page
}
