package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Where the users of a run on several nodes publish and listen: user u's notifications
// are published on node u mod nodes, and its sockets, one per copy, open on the nodes
// after it, so that with sockets < nodes none is on the publisher's node. On one node,
// all are on it.
func publisherNode(u, nodes int) int { return u % nodes }

func socketNode(u, copy, nodes int) int {
	if nodes == 1 {
		return 0
	}
	return (publisherNode(u, nodes) + 1 + copy) % nodes
}

// copyBook keeps the books of one socket copy of every user (the first socket of each,
// or the second, ...) against the ledger of what was published: when that socket first
// had each marker, and its create→socket latency by the node it received it on.
type copyBook struct {
	ledger *ledger
	users  int64
	grow   sync.Mutex
	chunks [maxChunks]atomic.Pointer[[chunkSize]atomic.Int64] // first receipt, Unix ns; 0: not yet

	lat []histogram // by node
	// during is lat for the notifications published in the kill window (-kill-at):
	// from windowFrom, for killWindow (Unix ns; 0: no window), on the sockets that never
	// moved (the killed node's, resuming elsewhere, are not the survivors' latency).
	during     []histogram
	windowFrom atomic.Int64
	delivered  atomic.Int64
	dupes      atomic.Int64 // the same marker again on this copy (under another id and seq)
	misrouted  atomic.Int64
	unknown    atomic.Int64
}

func newCopyBook(l *ledger, users, nodes int) *copyBook {
	return &copyBook{ledger: l, users: int64(users), lat: make([]histogram, nodes), during: make([]histogram, nodes)}
}

// onNote is the fleet's hook: marker m is for user m mod users.
func (b *copyBook) onNote(c *client, d *frameData, now int64) {
	p := d.Payload
	if p.T == 0 {
		return
	}
	if p.M%b.users != int64(c.idx) {
		b.misrouted.Add(1)
		return
	}
	if p.M < 0 || p.M >= b.ledger.reserved() {
		b.unknown.Add(1)
		return
	}
	if !b.slot(p.M).CompareAndSwap(0, now) {
		b.dupes.Add(1)
		return
	}
	b.delivered.Add(1)
	b.lat[c.node].record(time.Duration(now - p.T))
	if from := b.windowFrom.Load(); from > 0 && c.node == c.home && p.T >= from && p.T < from+int64(killWindow) {
		b.during[c.node].record(time.Duration(now - p.T))
	}
}

// killWindow is how long after a node is killed (-kill-at) the notifications published
// count as published during the kill, for the surviving nodes' latency then.
const killWindow = 5 * time.Second

// slot returns marker m's receipt time, allocating its chunk on first use.
func (b *copyBook) slot(m int64) *atomic.Int64 {
	i := m >> chunkBits
	c := b.chunks[i].Load()
	if c == nil {
		b.grow.Lock()
		if c = b.chunks[i].Load(); c == nil {
			c = new([chunkSize]atomic.Int64)
			b.chunks[i].Store(c)
		}
		b.grow.Unlock()
	}
	return &c[m&(chunkSize-1)]
}

// received returns when this copy first had marker m (0: not yet).
func (b *copyBook) received(m int64) int64 {
	c := b.chunks[m>>chunkBits].Load()
	if c == nil {
		return 0
	}
	return c[m&(chunkSize-1)].Load()
}

// missing counts acknowledged markers this copy has not received.
func (b *copyBook) missing() (n int64) {
	b.ledger.each(func(m int64, e *ledgerEntry) {
		if e.acked.Load() != 0 && b.received(m) == 0 {
			n++
		}
	})
	return n
}

// copyTally is a copy's books summed up, by node where it matters.
type copyTally struct {
	Received         int64
	ReceivedBy       int64   // at or before the cutoff
	Lost             int64   // acknowledged, never received
	LostOn           []int64 // Lost by the node the user's socket first opened on
	UnackedDelivered int64
}

func (b *copyBook) tally(cutoff int64, copy, nodes int) copyTally {
	t := copyTally{LostOn: make([]int64, nodes)}
	b.ledger.each(func(m int64, e *ledgerEntry) {
		acked, recv := e.acked.Load(), b.received(m)
		if recv != 0 {
			t.Received++
			if recv <= cutoff {
				t.ReceivedBy++
			}
		}
		switch {
		case acked != 0 && recv == 0:
			t.Lost++
			t.LostOn[socketNode(int(m%b.users), copy, nodes)]++
		case acked == 0 && recv != 0:
			t.UnackedDelivered++
		}
	})
	return t
}

// drainCopies waits until every copy has received every acknowledged notification, or
// timeout.
func drainCopies(ctx context.Context, books []*copyBook, acked *atomic.Int64, timeout time.Duration) bool {
	return pollUntil(ctx, timeout, 10*time.Millisecond, func() bool {
		for _, b := range books {
			if b.delivered.Load() < acked.Load() {
				return false
			}
		}
		for _, b := range books {
			if b.missing() != 0 {
				return false
			}
		}
		return true
	})
}

// merge adds o's counts to h. Call it once o's recorders have stopped.
func (h *histogram) merge(o *histogram) {
	for i := range o.counts {
		if n := o.counts[i].Load(); n != 0 {
			h.counts[i].Add(n)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	storeMax(&h.max, o.max.Load())
}
