package ws

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
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

// TestNetConnCork: writes made while corked reach the peer in one network write, in
// order, with the writes made before and after; a corked batch over corkLimit is
// written out as it goes, never held whole.
func TestNetConnCork(t *testing.T) {
	client, server := tcpPair(t)
	cc := &countingConn{Conn: server}
	nc := NewNetConn(cc)
	read := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client) // until the server end closes
		read <- b
	}()

	var want bytes.Buffer
	write := func(s string) {
		t.Helper()
		if _, err := nc.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		want.WriteString(s)
	}
	write("before;")
	nc.cork()
	for i := range 50 {
		write(string(rune('a'+i%26)) + ";")
	}
	if cc.writes != 1 {
		t.Fatalf("corked writes reached the network: %d writes, want 1 (the one before cork)", cc.writes)
	}
	if err := nc.uncork(); err != nil {
		t.Fatal(err)
	}
	if cc.writes != 2 {
		t.Fatalf("uncork made %d network writes, want 1", cc.writes-1)
	}
	write("after;")

	big := bytes.Repeat([]byte("x"), corkLimit/2+1)
	nc.cork()
	for range 3 {
		write(string(big))
	}
	if cc.writes < 4 || len(nc.buf) > corkLimit {
		t.Fatalf("a corked batch of 3×%d bytes: %d network writes so far, %d bytes held (limit %d)", len(big), cc.writes-3, len(nc.buf), corkLimit)
	}
	if err := nc.uncork(); err != nil {
		t.Fatal(err)
	}
	if nc.buf != nil {
		t.Fatal("an uncorked connection keeps its buffer")
	}

	server.Close()
	if got := <-read; !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the peer read other bytes than were written, or in another order")
	}
}
