package ws

import "testing"

// BenchmarkSendQueueRead is the cost of one reading of the kernel's send queue, which
// a writer pays once per sendLimit bytes written to a peer that keeps up, and on each
// poll while one that does not makes room.
func BenchmarkSendQueueRead(b *testing.B) {
	_, server := tcpPair(b)
	q, ok := newSendQueue(server)
	if !ok {
		b.Skip("the send queue cannot be read here")
	}
	for b.Loop() {
		if _, ok := q.queued(); !ok {
			b.Fatal("reading the send queue failed")
		}
	}
}
