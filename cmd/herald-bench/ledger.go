package main

import (
	"sync"
	"sync/atomic"
)

// The ledger grows in chunks, so a run that publishes flat out needs no estimate up
// front: at most maxChunks·chunkSize (16.7 M) markers.
const (
	chunkBits = 14
	chunkSize = 1 << chunkBits
	maxChunks = 1024
)

// ledger records every notification the bench publishes, by marker (the payload's "m"):
// when it was sent, when its 201 came back and when a socket first had it. Publishers
// and receivers update it concurrently without locks; the results are read from it once
// they have stopped.
type ledger struct {
	limit  int64        // markers that may be handed out
	next   atomic.Int64 // markers handed out so far (may overshoot limit)
	grow   sync.Mutex   // serialises chunk allocation
	chunks [maxChunks]atomic.Pointer[ledgerChunk]
}

type ledgerChunk [chunkSize]ledgerEntry

// ledgerEntry holds Unix-nanosecond times; 0 means not yet.
type ledgerEntry struct {
	sent, acked, received atomic.Int64
}

func newLedger(limit int64) *ledger {
	return &ledger{limit: min(max(limit, 0), maxChunks*chunkSize)}
}

// reserve hands out k consecutive markers. It returns false once the limit is reached.
func (l *ledger) reserve(k int) (first int64, ok bool) {
	end := l.next.Add(int64(k))
	first = end - int64(k)
	if end > l.limit {
		return 0, false
	}
	for c := first >> chunkBits; c <= (end-1)>>chunkBits; c++ {
		if l.chunks[c].Load() == nil {
			l.grow.Lock()
			if l.chunks[c].Load() == nil {
				l.chunks[c].Store(new(ledgerChunk))
			}
			l.grow.Unlock()
		}
	}
	return first, true
}

// reserved returns how many markers were handed out.
func (l *ledger) reserved() int64 { return min(l.next.Load(), l.limit) }

// entry returns marker m's entry, nil if m was never handed out.
func (l *ledger) entry(m int64) *ledgerEntry {
	if m < 0 || m >= l.reserved() {
		return nil
	}
	c := l.chunks[m>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return &c[m&(chunkSize-1)]
}

// sent records that markers first..first+k-1 went out at t.
func (l *ledger) sent(first int64, k int, t int64) {
	for m := first; m < first+int64(k); m++ {
		l.entry(m).sent.Store(t)
	}
}

// ack records that the server acknowledged markers first..first+k-1 at t.
func (l *ledger) ack(first int64, k int, t int64) {
	for m := first; m < first+int64(k); m++ {
		l.entry(m).acked.Store(t)
	}
}

// receive records that a socket had marker m at t. It returns known = false for a
// marker the bench never handed out, and first = false if m had been received before.
func (l *ledger) receive(m, t int64) (known, first bool) {
	e := l.entry(m)
	if e == nil {
		return false, false
	}
	return true, e.received.CompareAndSwap(0, t)
}

// missing counts acknowledged markers not yet received.
func (l *ledger) missing() (n int64) {
	l.each(func(_ int64, e *ledgerEntry) {
		if e.acked.Load() != 0 && e.received.Load() == 0 {
			n++
		}
	})
	return n
}

// each calls fn for every marker handed out, in order.
func (l *ledger) each(fn func(m int64, e *ledgerEntry)) {
	n := l.reserved()
	for m := int64(0); m < n; m++ {
		if e := l.entry(m); e != nil {
			fn(m, e)
		}
	}
}

// ledgerTally sums a ledger up.
type ledgerTally struct {
	Sent             int64 // requests made for them
	Acked            int64 // acknowledged with 201
	Received         int64 // received by their socket
	ReceivedBy       int64 // received at or before the cutoff given to tally
	Lost             int64 // acknowledged, never received
	UnackedDelivered int64 // received although their request failed (a timeout, say)
	LastReceived     int64 // Unix ns of the last first receipt
}

func (l *ledger) tally(cutoff int64) ledgerTally {
	var t ledgerTally
	l.each(func(_ int64, e *ledgerEntry) {
		sent, acked, recv := e.sent.Load(), e.acked.Load(), e.received.Load()
		if sent != 0 {
			t.Sent++
		}
		if acked != 0 {
			t.Acked++
		}
		if recv != 0 {
			t.Received++
			t.LastReceived = max(t.LastReceived, recv)
			if recv <= cutoff {
				t.ReceivedBy++
			}
		}
		switch {
		case acked != 0 && recv == 0:
			t.Lost++
		case acked == 0 && recv != 0:
			t.UnackedDelivered++
		}
	})
	return t
}
