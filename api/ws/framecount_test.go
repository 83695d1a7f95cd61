package ws

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// clientFrame builds a masked client frame of opcode op with a payload of n bytes.
func clientFrame(op byte, fin bool, n int) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, 0, 0)
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b = append(b, 1, 2, 3, 4) // masking key
	return append(b, bytes.Repeat([]byte{0x7f}, n)...)
}

// TestFrameCounter: every frame is counted once, whatever its length class, kind
// (data, continuation, control) and however the stream is cut into reads.
func TestFrameCounter(t *testing.T) {
	var stream []byte
	frames := 0
	for _, f := range [][]byte{
		clientFrame(0x1, true, 0), clientFrame(0x1, true, 5), clientFrame(0x9, true, 0), // text, text, ping
		clientFrame(0x1, false, 125), clientFrame(0x0, false, 126), clientFrame(0x0, true, 300), // fragments
		clientFrame(0xA, true, 125), clientFrame(0x2, true, 70000), clientFrame(0x8, true, 2), // pong, binary (64-bit length), close
	} {
		stream = append(stream, f...)
		frames++
	}
	for _, size := range []int{1, 2, 3, 7, 64, 512, len(stream)} {
		seen := 0
		f := &frameCounter{seen: func() bool { seen++; return true }}
		for b := stream; len(b) > 0; {
			k := min(size, len(b))
			if kept := f.scan(b[:k]); kept != k {
				t.Fatalf("reads of %d bytes: %d of %d bytes kept, every frame within the rate", size, kept, k)
			}
			b = b[k:]
		}
		if seen != frames || f.state != fcFirst || f.over || f.closed {
			t.Errorf("reads of %d bytes: %d frames counted (state %d), want %d", size, seen, f.state, frames)
		}
	}
}

// TestFrameCounterCut: the stream is cut at the first byte of the first frame over the
// rate, wherever that frame starts (inside a read, at its start, after a header split
// over reads) and whatever the length class of the frames before and after it (7-bit,
// 16-bit, 64-bit lengths, all masked as a client's are): the bytes kept are exactly the
// frames before it, nothing of the reads after is kept, seen is not called again, and
// only a close frame after the cut, once whole, ends the discarding.
func TestFrameCounterCut(t *testing.T) {
	frames := [][]byte{
		clientFrame(0x9, true, 0),      // ping, 7-bit
		clientFrame(0x1, true, 125),    // text, largest 7-bit
		clientFrame(0x8, true, 2),      // a close within the rate: it ends nothing
		clientFrame(0x1, false, 126),   // text, 16-bit
		clientFrame(0x0, true, 0xffff), // continuation, largest 16-bit
		clientFrame(0x2, true, 70000),  // binary, 64-bit
		clientFrame(0x9, true, 4),      // ping
		clientFrame(0xA, true, 0),      // pong
	}
	closing := clientFrame(0x8, true, 2) // the client's answer to the 1008
	var stream []byte
	starts := make([]int, len(frames)+1) // where each frame starts; then where closing does
	for i, f := range frames {
		starts[i] = len(stream)
		stream = append(stream, f...)
	}
	starts[len(frames)] = len(stream)
	stream = append(stream, closing...)

	for over := range frames { // the frame that finds no token
		closedAt := len(stream) // the end of the first close frame from the cut on
		if over <= 2 {
			closedAt = starts[3]
		}
		for _, size := range []int{1, 2, 3, 5, 7, 64, 256, 4096, len(stream)} {
			seen := 0
			f := &frameCounter{seen: func() bool { seen++; return seen <= over }}
			var kept []byte
			for b := stream; len(b) > 0; {
				k := min(size, len(b))
				n := f.scan(b[:k])
				if len(kept) < starts[over] || n == 0 {
					kept = append(kept, b[:n]...)
				} else {
					t.Fatalf("frame %d over, reads of %d: %d bytes kept from a read after the cut", over, size, n)
				}
				b = b[k:]
				if end := len(stream) - len(b); f.closed != (end >= closedAt) {
					t.Fatalf("frame %d over, reads of %d: closed %v after %d bytes, want from %d on", over, size, f.closed, end, closedAt)
				}
			}
			if !bytes.Equal(kept, stream[:starts[over]]) {
				t.Errorf("frame %d over, reads of %d: kept %d bytes, want the %d of the frames before it", over, size, len(kept), starts[over])
			}
			if seen != over+1 || !f.over || f.state != fcFirst {
				t.Errorf("frame %d over, reads of %d: seen %d times (want %d), over %v, state %d", over, size, seen, over+1, f.over, f.state)
			}
		}
	}
}

// TestFrameCounterCutInsideRead: a read that holds the end of one frame and the start
// of the next, the next over the rate, keeps exactly the end of the first; one that
// starts with the frame over the rate keeps nothing.
func TestFrameCounterCutInsideRead(t *testing.T) {
	first, next := clientFrame(0x1, true, 300), clientFrame(0x9, true, 0)
	calls := 0
	f := &frameCounter{seen: func() bool { calls++; return calls == 1 }}
	if n := f.scan(first[:100]); n != 100 {
		t.Fatalf("first read: %d of 100 bytes kept", n)
	}
	read := append(bytes.Clone(first[100:]), next...)
	if n := f.scan(read); n != len(first)-100 {
		t.Fatalf("the read with the boundary: %d bytes kept, want %d (the end of the first frame)", n, len(first)-100)
	}
	g := &frameCounter{seen: func() bool { return false }}
	if n := g.scan(next); n != 0 || !g.over {
		t.Fatalf("a read starting with the frame over the rate: %d bytes kept (over %v), want 0", n, g.over)
	}
}
