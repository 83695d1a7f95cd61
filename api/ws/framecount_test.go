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
		f := &frameCounter{seen: func() { seen++ }}
		for b := stream; len(b) > 0; {
			k := min(size, len(b))
			f.scan(b[:k])
			b = b[k:]
		}
		if seen != frames || f.state != fcFirst {
			t.Errorf("reads of %d bytes: %d frames counted (state %d), want %d", size, seen, f.state, frames)
		}
	}
}
