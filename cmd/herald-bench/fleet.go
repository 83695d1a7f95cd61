package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Bounds of a client's attempts to (re)connect.
const (
	dialTimeout   = 30 * time.Second
	dialAttempts  = 5                      // per connection, before the client gives up
	dialBackoff   = 100 * time.Millisecond // doubled after each failed attempt
	maxDrops      = 20                     // unexpected closes a client recovers from
	readLimit     = 1 << 20                // a snapshot holds up to 100 notifications
	initialBuffer = 1 << 10
)

// fleetConfig says which users a fleet connects and how.
type fleetConfig struct {
	wsURL       string // ws://host:port/notifications/ws
	secret      []byte
	run         string
	offset      int // index of the fleet's first user in the run
	n           int // users, one connection each
	sourceIPs   int // connections are spread over 127.0.0.1..127.0.0.sourceIPs
	concurrency int // dials in flight at once
	tokenTTL    time.Duration
	// nodeURLs, when set, are the WebSocket endpoints of several nodes (it overrides
	// wsURL): a user's socket opens on nodeURLs[nodeOf(idx)], and after a drop, or a
	// failed dial, it moves on to the next node, as behind a load balancer.
	nodeURLs []string
	nodeOf   func(idx int) int
	// onNote is called on the client's goroutine for each new-notification frame whose
	// notification is new to the socket. now is the receipt time, Unix ns.
	onNote func(c *client, d *frameData, now int64)
}

// fleet is a set of WebSocket clients, one per user, each on its own goroutine that
// reads frames, keeps its stream's books and reconnects with ?since= after a drop.
type fleet struct {
	cfg     fleetConfig
	clients []*client
	dialers []*net.Dialer  // one per source address
	http    []*http.Client // one per source address, for wss:// (over dialers)
	dialSem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	ready     chan struct{} // closed when every client has connected or given up
	settled   atomic.Int64
	connected atomic.Int64 // clients whose first snapshot arrived
	failed    atomic.Int64 // clients that never connected
	lastFirst atomic.Int64 // Unix ns of the last first snapshot

	gaveUp      atomic.Int64 // clients that connected, lost the connection and could not get it back
	resumed     atomic.Int64 // reconnections with since= that succeeded
	lastResume  atomic.Int64 // Unix ns of the last of them
	drops       atomic.Int64 // connections closed by the server or the network
	dialErrors  atomic.Int64 // failed dial attempts
	badFrames   atomic.Int64 // frames that were not a JSON object of the contract
	errorFrames atomic.Int64 // "error" frames
	frames      atomic.Int64 // frames received

	mu         sync.Mutex
	closeCodes map[string]int64 // why connections ended unexpectedly
	firstErr   error            // the first dial error
	firstClose error            // the first unexpected close of no known kind
}

// client is one user's connection.
type client struct {
	idx    int // the user's index in the run
	user   string
	token  string
	fl     *fleet
	dialer *net.Dialer
	http   *http.Client
	node   int // index in cfg.nodeURLs of the node it connects to; owned by its goroutine
	home   int // the node it connected to first

	conn atomic.Pointer[sock]
	drop atomic.Bool // the bench closed the connection on purpose: reconnect at once

	// Owned by the client's goroutine; read by others only after the fleet stopped.
	st      stream
	buf     []byte
	fr      frame
	settled bool // the fleet has counted this client as connected or failed
}

func newFleet(cfg fleetConfig) (*fleet, error) {
	if cfg.sourceIPs < 1 || cfg.sourceIPs > 254 {
		return nil, fmt.Errorf("source addresses: %d is not within 1..254", cfg.sourceIPs)
	}
	f := &fleet{
		cfg:        cfg,
		dialSem:    make(chan struct{}, max(cfg.concurrency, 1)),
		ready:      make(chan struct{}),
		closeCodes: map[string]int64{},
	}
	for i := range cfg.sourceIPs {
		d := &net.Dialer{
			Timeout:   dialTimeout,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))},
			Control:   bindAddressNoPort,
		}
		f.dialers = append(f.dialers, d)
		f.http = append(f.http, &http.Client{Transport: &http.Transport{
			DialContext:        d.DialContext,
			DisableCompression: true,
		}})
	}
	f.clients = make([]*client, cfg.n)
	for i := range f.clients {
		idx := cfg.offset + i
		user := userID(cfg.run, idx)
		tok, err := mintToken(cfg.secret, user, cfg.tokenTTL)
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", user, err)
		}
		f.clients[i] = &client{
			idx: idx, user: user, token: tok, fl: f,
			dialer: f.dialers[idx%cfg.sourceIPs],
			http:   f.http[idx%cfg.sourceIPs],
			buf:    make([]byte, 0, initialBuffer),
		}
		if cfg.nodeOf != nil {
			f.clients[i].node = cfg.nodeOf(idx)
			f.clients[i].home = f.clients[i].node
		}
	}
	if cfg.n == 0 {
		close(f.ready)
	}
	return f, nil
}

// start connects every client, cfg.concurrency dials at a time.
func (f *fleet) start(ctx context.Context) {
	f.ctx, f.cancel = context.WithCancel(ctx)
	for _, c := range f.clients {
		f.wg.Add(1)
		go c.run()
	}
}

// waitReady waits until every client has connected (or given up), the context ends or
// timeout passes, and reports whether all connected.
func (f *fleet) waitReady(ctx context.Context, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.ready:
	case <-ctx.Done():
	case <-t.C:
	}
	return f.connected.Load() == int64(f.cfg.n)
}

// stop closes every connection and waits for the clients' goroutines.
func (f *fleet) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	for _, c := range f.clients {
		if conn := c.conn.Load(); conn != nil {
			_ = conn.closeNow()
		}
	}
	f.wg.Wait()
}

// dropAll closes every open connection abruptly; the clients reconnect at once with
// ?since= their last seq.
func (f *fleet) dropAll() {
	for _, c := range f.clients {
		if conn := c.conn.Load(); conn != nil {
			c.drop.Store(true)
			_ = conn.closeNow()
		}
	}
}

// counts sums the streams' books. Call it after stop.
func (f *fleet) counts() streamCounts {
	var s streamCounts
	for _, c := range f.clients {
		s.add(c.st.counts)
	}
	return s
}

// closeReasons returns how many connections ended unexpectedly, by reason.
func (f *fleet) closeReasons() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int64, len(f.closeCodes))
	for k, v := range f.closeCodes {
		out[k] = v
	}
	return out
}

// firstError returns the first dial error, if any.
func (f *fleet) firstError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstErr
}

func (f *fleet) settle(ok bool) {
	if ok {
		f.connected.Add(1)
		storeMax(&f.lastFirst, time.Now().UnixNano())
	} else {
		f.failed.Add(1)
	}
	if f.settled.Add(1) == int64(f.cfg.n) {
		close(f.ready)
	}
}

// run is the client's goroutine: connect, read until the connection ends, reconnect
// from the last seq seen, until the fleet stops or the client gives up.
func (c *client) run() {
	f := c.fl
	defer f.wg.Done()
	drops := 0
	for {
		since := int64(-1)
		if c.st.started {
			since = c.st.last
		}
		conn, err := c.dial(since)
		if err != nil {
			switch {
			case !c.settled:
				c.settled = true
				f.settle(false)
			case f.ctx.Err() == nil:
				f.gaveUp.Add(1)
			}
			return
		}
		if since >= 0 {
			f.resumed.Add(1)
			storeMax(&f.lastResume, time.Now().UnixNano())
		}
		c.conn.Store(conn)
		if f.ctx.Err() != nil { // stop ran before the Store: it did not see conn
			_ = conn.closeNow()
		}
		err = c.read(conn)
		c.conn.Store(nil)
		_ = conn.closeNow()
		if f.ctx.Err() != nil {
			return
		}
		if c.drop.Swap(false) {
			continue
		}
		f.drops.Add(1)
		f.noteClose(err)
		c.nextNode()
		if drops++; drops > maxDrops {
			f.gaveUp.Add(1)
			return
		}
	}
}

// dial connects, retrying with backoff, and gives up after dialAttempts.
func (c *client) dial(since int64) (*sock, error) {
	f := c.fl
	backoff := dialBackoff
	for attempt := 1; ; attempt++ {
		u := c.url() + "?token=" + c.token
		if since >= 0 {
			u += "&since=" + strconv.FormatInt(since, 10)
		}
		conn, err := c.dialOnce(u)
		if err == nil {
			return conn, nil
		}
		if f.ctx.Err() != nil {
			return nil, f.ctx.Err()
		}
		f.dialErrors.Add(1)
		f.mu.Lock()
		if f.firstErr == nil {
			f.firstErr = err
		}
		f.mu.Unlock()
		if attempt == dialAttempts {
			return nil, err
		}
		if since >= 0 { // a first socket keeps its node; a resuming one tries the next
			c.nextNode()
		}
		t := time.NewTimer(backoff)
		select {
		case <-f.ctx.Done():
			t.Stop()
			return nil, f.ctx.Err()
		case <-t.C:
		}
		backoff *= 2
	}
}

// url is the WebSocket endpoint the client dials.
func (c *client) url() string {
	if urls := c.fl.cfg.nodeURLs; len(urls) > 0 {
		return urls[c.node]
	}
	return c.fl.cfg.wsURL
}

// nextNode moves the client on to the next node, when there are several.
func (c *client) nextNode() {
	if n := len(c.fl.cfg.nodeURLs); n > 0 {
		c.node = (c.node + 1) % n
	}
}

// dialOnce makes one attempt: a rawWS for ws://, the library for anything else.
func (c *client) dialOnce(u string) (*sock, error) {
	f := c.fl
	select {
	case f.dialSem <- struct{}{}:
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
	defer func() { <-f.dialSem }()
	ctx, cancel := context.WithTimeout(f.ctx, dialTimeout)
	defer cancel()
	if pu, err := url.Parse(u); err == nil && pu.Scheme == "ws" {
		raw, err := dialRaw(ctx, c.dialer, pu, readLimit)
		if err != nil {
			return nil, err
		}
		return &sock{raw: raw}, nil
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      c.http,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake answered %s: %w", resp.Status, err)
		}
		return nil, err
	}
	conn.SetReadLimit(readLimit)
	return &sock{lib: conn}, nil
}

// read handles frames until the connection ends, and returns why it ended.
func (c *client) read(conn *sock) error {
	f := c.fl
	for {
		text, msg, err := conn.next(c.buf)
		c.buf = msg
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		f.frames.Add(1)
		if !text || decodeFrame(c.buf, &c.fr) != nil {
			f.badFrames.Add(1)
			continue
		}
		c.handle(&c.fr, now)
	}
}

// handle keeps the books of one decoded frame.
func (c *client) handle(fr *frame, now int64) {
	f := c.fl
	switch {
	case fr.Event == eventSnapshot:
		c.st.snapshot(fr.Seq)
		if !c.settled {
			c.settled = true
			f.settle(true)
		}
	case fr.Event.logEntry():
		if fresh := c.st.entry(fr.Seq, fr.Data.ID); fresh && fr.Event == eventNew && f.cfg.onNote != nil {
			f.cfg.onNote(c, &fr.Data, now)
		}
	case fr.Event == eventError:
		f.errorFrames.Add(1)
	}
}

// noteClose counts why a connection ended unexpectedly: the close code the server
// sent, or what happened to the TCP connection.
func (f *fleet) noteClose(err error) {
	var reason string
	switch code := closeStatus(err); {
	case code != -1:
		reason = "close " + strconv.Itoa(int(code))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		reason = "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		reason = "reset"
	default:
		reason = "other"
	}
	f.mu.Lock()
	f.closeCodes[reason]++
	if reason == "other" && f.firstClose == nil {
		f.firstClose = err
	}
	f.mu.Unlock()
}

// readAll appends everything r holds to buf, growing it as needed, and returns it.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}
