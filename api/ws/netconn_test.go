package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws/wire"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readFrame reads one frame as RFC 6455 lays it out: FIN and opcode, the mask bit and
// length (7 bits, or 126 and 16 bits, or 127 and 64 bits), then the payload.
func readFrame(r *bufio.Reader) (first byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("a server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(r, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
		if n < 126 {
			return 0, nil, errors.New("16-bit length for a short frame")
		}
	case 127:
		var l [8]byte
		_, err = io.ReadFull(r, l[:])
		n = binary.BigEndian.Uint64(l[:])
		if n <= 0xffff {
			return 0, nil, errors.New("64-bit length for a frame under 64 KiB")
		}
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0], payload, err
}

// TestNetConnFrames: a batch of data frames of every length class reaches the peer
// whole and in order, each a final unmasked text frame with the shortest length form,
// between control frames written by the library before and after.
func TestNetConnFrames(t *testing.T) {
	client, server := tcpPair(t)
	nc := NewNetConn(server)
	sizes := []int{0, 1, 125, 126, 127, 1000, 0xffff, 0x10000, 300_000}
	frames := make([]inbox.Frame, len(sizes))
	for i, n := range sizes {
		frames[i].Data = bytes.Repeat([]byte{byte('a' + i)}, n)
	}
	got := make(chan error, 1)
	go func() {
		r := bufio.NewReader(client)
		expect := func(first byte, payload []byte) error {
			f, p, err := readFrame(r)
			if err != nil {
				return err
			}
			if f != first || !bytes.Equal(p, payload) {
				return errors.New("a frame differs from what was written")
			}
			return nil
		}
		err := expect(0x89, []byte("hi")) // the library's ping
		for i := 0; err == nil && i < len(frames); i++ {
			err = expect(0x81, frames[i].Data)
		}
		if err == nil {
			err = expect(0x8a, nil) // the library's pong
		}
		got <- err
	}()
	if _, err := nc.Write([]byte{0x89, 2, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	if err := nc.writeText(frames, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte{0x8a, 0}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestNetConnNoDataAfterClose: once the library has written a close frame, data frames
// are refused and nothing more reaches the peer.
func TestNetConnNoDataAfterClose(t *testing.T) {
	client, server := tcpPair(t)
	nc := NewNetConn(server)
	if _, err := nc.Write([]byte{0x88, 2, 0x03, 0xe8}); err != nil { // close, 1000
		t.Fatal(err)
	}
	if err := nc.writeText([]inbox.Frame{{Data: []byte("late")}}, time.Minute); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a data frame after the close frame: %v, want net.ErrClosed", err)
	}
	server.Close()
	rest, _ := io.ReadAll(client)
	if !bytes.Equal(rest, []byte{0x88, 2, 0x03, 0xe8}) {
		t.Fatalf("the peer read %q, want the close frame only", rest)
	}
}

// hookConn calls onWrite before each write to the network.
type hookConn struct {
	net.Conn
	onWrite func()
}

func (h *hookConn) Write(p []byte) (int, error) {
	h.onWrite()
	return h.Conn.Write(p)
}

// TestNetConnControlFrameInBurst: a control frame the library writes while a burst
// bigger than one write is going out lands between two whole data frames, and every
// data frame arrives whole and in order.
func TestNetConnControlFrameInBurst(t *testing.T) {
	client, server := tcpPair(t)
	pinged := make(chan error, 1)
	var nc *NetConn
	var once sync.Once
	nc = NewNetConn(&hookConn{Conn: server, onWrite: func() {
		// During the first data write: the ping waits for the mutex, which the
		// writer releases between groups.
		once.Do(func() {
			go func() {
				_, err := nc.Write([]byte{0x89, 0})
				pinged <- err
			}()
		})
	}})
	frames := make([]inbox.Frame, 40)
	for i := range frames {
		frames[i].Data = bytes.Repeat([]byte{byte('a' + i%26)}, 10<<10) // 400 KiB in all
	}
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReader(client)
		pings, next := 0, 0
		for next < len(frames) || pings == 0 {
			first, p, err := readFrame(r)
			switch {
			case err != nil:
				done <- err
				return
			case first == 0x89:
				pings++
			case first != 0x81 || !bytes.Equal(p, frames[next].Data):
				done <- errors.New("a data frame differs, or came out of order")
				return
			default:
				next++
			}
		}
		if pings != 1 {
			done <- errors.New("the ping came more than once")
			return
		}
		done <- nil
	}()
	if err := nc.writeText(frames, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// accepted is the server side of a connection accepted through the hijacker.
type accepted struct {
	c  *websocket.Conn
	nc *NetConn
}

// acceptPair dials a server that accepts through the hijacker, as Accept does, and
// returns the client and the server's side; both are closed when the test ends.
func acceptPair(t *testing.T, ctx context.Context) (*websocket.Conn, accepted) {
	t.Helper()
	got := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacker{ResponseWriter: w}
		c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Error(err)
			return
		}
		got <- accepted{c, hj.conn}
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CloseNow() })
	a := <-got
	t.Cleanup(func() { _ = a.c.CloseNow() })
	return client, a
}

// TestNetConnWithLibrary pins what NetConn assumes of github.com/coder/websocket
// (checked against v1.8.15, the version in go.mod): that the library writes each control
// frame in one Write, flushing its buffer at the frame's end. Data frames written by
// NetConn in bursts bigger than one vectored write, interleaved with the library's own
// pings (each waiting for the real client's pong) and then its close, reach the library's
// real client reader as whole messages, in order, with nothing after the close frame;
// and NetConn refuses data once the close is out. A library that split a control frame
// over two writes, or buffered one past its end, would break a frame here.
func TestNetConnWithLibrary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, a := acceptPair(t, ctx)
	client.SetReadLimit(1 << 20)
	server := a.c
	// The server's reader: it reads the client's pongs and close (the client sends no data).
	serverRead := make(chan error, 1)
	go func() {
		_, _, err := server.Read(ctx)
		serverRead <- err
	}()

	// 20 batches of 1 B to 100 KiB frames (over a megabyte, so each batch goes out in
	// several vectored writes with the mutex released between them).
	var want [][]byte
	var batches [][]inbox.Frame
	for b := range 20 {
		var batch []inbox.Frame
		for i, n := range []int{1, 125, 126, 0xffff, 0x10000, 100 << 10, 3} {
			d := bytes.Repeat([]byte{byte('a' + (b+i)%26)}, n)
			d[0] = byte(len(want)) // each message tells its place
			want = append(want, d)
			batch = append(batch, inbox.Frame{Data: d})
		}
		batches = append(batches, batch)
	}
	messages := make(chan error, 1)
	go func() {
		for i := range want {
			typ, p, err := client.Read(ctx)
			switch {
			case err != nil:
				messages <- fmt.Errorf("message %d: %w", i, err)
				return
			case typ != websocket.MessageText || !bytes.Equal(p, want[i]):
				messages <- fmt.Errorf("message %d differs from what was written (%d bytes, want %d)", i, len(p), len(want[i]))
				return
			}
		}
		_, _, err := client.Read(ctx) // the close, and nothing else
		messages <- err
	}()

	pings := make(chan error, 1)
	go func() {
		for range 50 {
			if err := server.Ping(ctx); err != nil {
				pings <- err
				return
			}
		}
		pings <- nil
	}()
	for _, batch := range batches {
		if err := a.nc.writeText(batch, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pings; err != nil {
		t.Fatalf("pings: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- server.Close(websocket.StatusCode(wire.CloseGoingAway), "server shutting down") }()
	err := <-messages
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusCode(wire.CloseGoingAway) || ce.Reason != "server shutting down" {
		t.Fatalf("after the data: %v, want close 1001 with its reason", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	<-serverRead
	if err := a.nc.writeText([]inbox.Frame{{Data: []byte("late")}}, time.Minute); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a data frame after the library's close: %v, want net.ErrClosed", err)
	}
}

// writeLog records the writes that reach the network connection.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// TestLargestControlFrameOneWrite: the buffer the library writes its control frames
// through (writeBuffer) holds the largest one, a close with a 123-byte reason, so it
// reaches NetConn in one Write, as NetConn's ordering of data and close frames needs.
func TestLargestControlFrameOneWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, a := acceptPair(t, ctx)
	server, nc := a.c, a.nc
	nc.mu.Lock() // the handshake's answer went (the client has it), under the lock
	log := &writeLog{Conn: nc.Conn}
	nc.Conn = log // nothing else has read or written through nc yet
	nc.mu.Unlock()
	reason := strings.Repeat("r", 123)
	closed := make(chan error, 1)
	go func() { closed <- server.Close(websocket.StatusCode(wire.CloseGoingAway), reason) }()
	_, _, err := client.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Reason != reason {
		t.Fatalf("client read: %v, want the close with its 123-byte reason", err)
	}
	<-closed
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.writes) == 0 || log.writes[0][0] != 0x88 || len(log.writes[0]) != 2+2+123 {
		lens := make([]int, len(log.writes))
		for i, w := range log.writes {
			lens[i] = len(w)
		}
		t.Fatalf("writes of the close: lengths %v, want one of %d bytes starting with 0x88", lens, 2+2+123)
	}
}

// TestNetConnReadCutsAtFrameOverRate: over a real socket, the library (reading 256 bytes
// at a time, as through its buffer) gets exactly the client's frames before the first one
// over the rate, with every length class before it (7-, 16-, 64-bit lengths, masked),
// frames split over reads and a cut inside a read, also when the stream starts with
// what net/http read ahead (cut there, or with a header split between it and the socket);
// after the cut it gets no byte, and once the client's close frame has gone by
// errOverRate, at once and ever after, with the client's end still open.
func TestNetConnReadCutsAtFrameOverRate(t *testing.T) {
	within := [][]byte{clientFrame(0x9, true, 0), clientFrame(0x1, true, 126), clientFrame(0x2, true, 70000)}
	var stream []byte
	var starts []int
	for _, f := range append(within, clientFrame(0x9, true, 0), clientFrame(0x1, true, 10), clientFrame(0x9, true, 3)) {
		starts = append(starts, len(stream))
		stream = append(stream, f...)
	}
	closing := clientFrame(0x8, true, 2)
	for _, tc := range []struct {
		allowed, ahead int // frames within the rate; bytes read ahead
	}{
		{3, 0}, {3, 145}, {1, 145}, {0, 0}, {2, 5},
	} {
		t.Run(fmt.Sprintf("allowed=%d,ahead=%d", tc.allowed, tc.ahead), func(t *testing.T) {
			client, server := tcpPair(t)
			_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
			seen := 0
			nc := &NetConn{Conn: server, ahead: bytes.Clone(stream[:tc.ahead])}
			nc.frames.seen = func() bool { seen++; return seen <= tc.allowed }
			written := make(chan error, 1)
			go func() {
				_, err := client.Write(stream[tc.ahead:])
				if err == nil {
					_, err = client.Write(closing)
				}
				written <- err
			}()
			var got []byte
			buf := make([]byte, 256)
			var err error
			for {
				var n int
				n, err = nc.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
				if n == 0 {
					t.Fatal("a read returned no bytes and no error")
				}
			}
			if !errors.Is(err, errOverRate) {
				t.Fatalf("the read after the client's close: %v, want errOverRate", err)
			}
			if want := stream[:starts[tc.allowed]]; !bytes.Equal(got, want) {
				t.Fatalf("the library read %d bytes, want the %d of the frames within the rate", len(got), len(want))
			}
			if seen != tc.allowed+1 {
				t.Fatalf("%d frames seen, want %d (those within the rate and the first over it)", seen, tc.allowed+1)
			}
			if n, err := nc.Read(buf); n != 0 || !errors.Is(err, errOverRate) {
				t.Fatalf("a read after errOverRate: %d bytes, %v", n, err)
			}
			if err := <-written; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// streamConn is a connection whose reads return the same frames over and over.
type streamConn struct {
	net.Conn
	frames []byte
	at     int
}

func (s *streamConn) Read(p []byte) (int, error) {
	n := copy(p, s.frames[s.at:])
	s.at = (s.at + n) % len(s.frames)
	return n, nil
}

// TestNetConnReadNoAlloc: a read under the rate allocates nothing.
func TestNetConnReadNoAlloc(t *testing.T) {
	var frames []byte
	for _, n := range []int{0, 5, 125, 126, 300} {
		frames = append(frames, clientFrame(0x1, true, n)...)
	}
	nc := &NetConn{Conn: &streamConn{frames: frames}}
	count := 0
	nc.frames.seen = func() bool { count++; return true }
	buf := make([]byte, 256)
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := nc.Read(buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("a read under the rate: %v allocations, want 0", allocs)
	}
	if count == 0 {
		t.Fatal("no frame counted")
	}
}

// BenchmarkNetConnRead: reads of 256 bytes (the library's buffer) of small client
// frames under the rate.
func BenchmarkNetConnRead(b *testing.B) {
	var frames []byte
	for _, n := range []int{0, 5, 30, 125, 126, 300} {
		frames = append(frames, clientFrame(0x1, true, n)...)
	}
	nc := &NetConn{Conn: &streamConn{frames: frames}}
	nc.frames.seen = func() bool { return true }
	buf := make([]byte, 256)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = nc.Read(buf)
	}
}
