package main

import (
	"sync"
	"testing"
)

func TestLedgerLossAndDuplicates(t *testing.T) {
	l := newLedger(100)
	first, ok := l.reserve(10)
	if !ok || first != 0 {
		t.Fatalf("reserve = %d, %v", first, ok)
	}
	l.sent(first, 10, 1)
	l.ack(first, 8, 2) // markers 8 and 9 were not acknowledged (a timeout, say)

	for _, m := range []int64{0, 1, 2, 3, 4, 5, 9} { // 6 and 7 never arrive; 9 did although unacknowledged
		if known, fresh := l.receive(m, 100+m); !known || !fresh {
			t.Fatalf("receive(%d) = %v, %v", m, known, fresh)
		}
	}
	if known, fresh := l.receive(3, 200); !known || fresh {
		t.Fatalf("a second receipt of marker 3 = %v, %v; want known, not first", known, fresh)
	}
	if known, _ := l.receive(10, 200); known {
		t.Fatal("marker 10 was never handed out but is known")
	}
	if known, _ := l.receive(-1, 200); known {
		t.Fatal("a negative marker is known")
	}
	if got := l.missing(); got != 2 {
		t.Fatalf("missing = %d, want 2 (markers 6 and 7)", got)
	}
	tl := l.tally(103)
	want := ledgerTally{Sent: 10, Acked: 8, Received: 7, ReceivedBy: 4, Lost: 2, UnackedDelivered: 1, LastReceived: 109}
	if tl != want {
		t.Fatalf("tally = %+v, want %+v", tl, want)
	}
	// The first receipt time stays.
	if got := l.entry(3).received.Load(); got != 103 {
		t.Fatalf("marker 3 received at %d, want 103", got)
	}
}

func TestLedgerLimitAndChunks(t *testing.T) {
	l := newLedger(chunkSize + 10)
	if _, ok := l.reserve(chunkSize - 5); !ok {
		t.Fatal("reserve within the limit failed")
	}
	first, ok := l.reserve(10) // crosses into the second chunk
	if !ok || first != chunkSize-5 {
		t.Fatalf("reserve across chunks = %d, %v", first, ok)
	}
	l.sent(first, 10, 1)
	l.ack(first, 10, 1)
	if l.missing() != 10 {
		t.Fatalf("missing = %d, want 10", l.missing())
	}
	if _, ok := l.reserve(6); ok {
		t.Fatal("reserve beyond the limit succeeded")
	}
	if l.reserved() != chunkSize+10 {
		t.Fatalf("reserved = %d, want the limit", l.reserved())
	}
	if big := newLedger(1 << 40); big.limit != maxChunks*chunkSize {
		t.Fatalf("limit %d is not capped at %d", big.limit, maxChunks*chunkSize)
	}
}

func TestLedgerConcurrentUse(t *testing.T) {
	l := newLedger(1 << 15)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				first, ok := l.reserve(7)
				if !ok {
					return
				}
				l.sent(first, 7, 1)
				l.ack(first, 7, 2)
				for m := first; m < first+7; m++ {
					l.receive(m, 3)
				}
			}
		})
	}
	wg.Wait()
	tl := l.tally(3)
	if tl.Acked != tl.Received || tl.Lost != 0 || tl.Acked < 1<<15-7*8 {
		t.Fatalf("tally after concurrent use = %+v", tl)
	}
}
