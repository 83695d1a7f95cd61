package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The limits of the contract ("Limits that protect the node").
const (
	// DefaultReadTimeout bounds reading one whole request that is not a WebSocket: its
	// headers, its body and the discard of a body the handler left unread.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection that sends no new request.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds a request that is not a WebSocket from the end of its
	// headers to the end of its answer: a client that does not read what it asked for
	// is closed then, rather than holding the connection and its kernel buffers.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxHeaderBytes limits the request line and headers; beyond, 431.
	DefaultMaxHeaderBytes = 64 << 10
)

// headerTimeout is the longest the headers of a request may take, within its read
// timeout.
const headerTimeout = 10 * time.Second

// fallbackConnLimit is the cap where the file limit cannot be read.
const fallbackConnLimit = 10000

// bufioSlop is what net/http adds to Server.MaxHeaderBytes for its read buffer: the
// bytes it reads before giving up on the headers are MaxHeaderBytes + bufioSlop.
const bufioSlop = 4096

// HTTPOptions are the limits of the HTTP server that NewHTTPServer configures. Zero
// fields mean the defaults.
type HTTPOptions struct {
	// ReadTimeout bounds reading one whole request, from its first byte to the end of
	// its body, including the discard of a body the handler did not read: a client
	// that sends headers and then stalls is closed when it ends. A WebSocket loses it
	// when upgraded. Default DefaultReadTimeout (30 s).
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request. Default
	// DefaultIdleTimeout (60 s).
	IdleTimeout time.Duration
	// WriteTimeout bounds each request that is not a WebSocket from the end of its
	// headers to the end of its answer, handler included (keep it above the API's own
	// wait for a commit, api.Options.WriteTimeout, 15 s by default). A WebSocket loses it when upgraded. Default
	// DefaultWriteTimeout (30 s); negative: none (a listener that streams long answers,
	// such as profiles).
	WriteTimeout time.Duration
	// MaxHeaderBytes limits the request line and headers; a request with more is
	// answered 431. At least MinHeaderBytes (8 KiB). Default DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int
	// MaxConns caps the open connections, WebSockets included (see Listener). Zero
	// means the limit that ConnLimit derives from the file limit; a value above it is
	// an error.
	MaxConns int
	// Registry receives the connection metrics. Nil: they are not registered.
	Registry prometheus.Registerer
	// Log receives the server's errors and the notice that the cap was reached.
	// Default slog.Default().
	Log *slog.Logger
}

// MinHeaderBytes is the smallest MaxHeaderBytes accepted: below, net/http's own read
// buffer would let more through than asked.
const MinHeaderBytes = 8 << 10

// NewHTTPServer returns an http.Server serving h with the limits of o, and ln wrapped
// in the Listener that caps its connections. Serve the one on the other:
//
//	srv, l, err := api.NewHTTPServer(ln, handler, api.HTTPOptions{})
//	...
//	go srv.Serve(l)
//
// The server's ConnState is the listener's: replace it and WebSockets are no longer
// told apart from plain connections.
func NewHTTPServer(ln net.Listener, h http.Handler, o HTTPOptions) (*http.Server, *Listener, error) {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case o.WriteTimeout == 0:
		o.WriteTimeout = DefaultWriteTimeout
	case o.WriteTimeout < 0:
		o.WriteTimeout = 0
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxHeaderBytes < MinHeaderBytes {
		return nil, nil, fmt.Errorf("MaxHeaderBytes: %d is below the minimum of %d", o.MaxHeaderBytes, MinHeaderBytes)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	limit, err := ConnLimit(o.MaxConns)
	if err != nil {
		return nil, nil, fmt.Errorf("MaxConns: %w", err)
	}
	l := &Listener{Listener: ln, max: limit, metrics: newConnMetrics(o.Registry), log: o.Log}
	l.metrics.max.Set(float64(limit))
	srv := &http.Server{
		Handler: h,
		// ReadTimeout is the request's one read deadline: net/http sets it when the
		// request's first byte arrives, it holds while the handler reads the body and
		// while net/http discards what the handler left unread (before answering, or
		// after), and a hijack clears it.
		ReadTimeout:       o.ReadTimeout,
		ReadHeaderTimeout: min(headerTimeout, o.ReadTimeout),
		IdleTimeout:       o.IdleTimeout,
		// WriteTimeout is set when a request's headers have been read and cleared by a
		// hijack: a client that pipelines requests and never reads the answers is
		// dropped when it passes.
		WriteTimeout:   o.WriteTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes - bufioSlop,
		ConnState:      l.connState,
		ErrorLog:       slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	return srv, l, nil
}

// ConnLimit is the connection cap for max: max itself when it is positive and at most
// the derived limit, the derived limit when it is zero. The derived limit is the
// process's soft RLIMIT_NOFILE (which the Go runtime raises to the hard limit at
// start) less a reserve for what else the node opens (the store's pool and files, SMTP
// and webhook connections, listeners): a tenth of the limit, at least 256.
func ConnLimit(max int) (int, error) {
	derived, files, ok := derivedConnLimit()
	switch {
	case max < 0:
		return 0, errors.New("must not be negative (0: derived from the file limit)")
	case !ok && max == 0:
		return derived, nil
	case !ok:
		return max, nil
	case max > derived:
		return 0, fmt.Errorf("%d is above what the file limit allows: %d (RLIMIT_NOFILE %d less a reserve of %d for the store and outbound connections); raise the limit (ulimit -n) or lower the cap",
			max, derived, files, files-derived)
	case max == 0:
		return derived, nil
	}
	return max, nil
}

// Listener caps the open connections of a listener. A connection counts from its
// accept to its Close, also after being hijacked as a WebSocket. At the cap, a new
// connection closes the plain one (not a WebSocket) that has gone longest without
// starting or finishing a request: a plain connection lives at most a request's read
// timeout plus its handler, or an idle timeout, so the one that has waited longest is
// the likeliest to be stalled, and a client whose requests make progress keeps its
// connection. A flood of plain connections can thus neither exhaust the file
// descriptors nor lock other clients out, and no WebSocket is ever dropped for it; only
// when every counted connection is a WebSocket is the new one refused (closed at
// once).
//
// A request survives a flood as long as fewer than the cap's worth of connections
// arrive while it runs: with a cap of 18,000 and 15,000 new connections a second, a
// little over a second.
//
// It tells WebSockets apart through the http.Server's ConnState (StateHijacked); the
// server of NewHTTPServer has it.
type Listener struct {
	net.Listener
	max     int
	metrics *connMetrics
	log     *slog.Logger
	capHit  atomic.Bool

	mu         sync.Mutex
	open       int
	sockets    int        // of open, the WebSockets
	head, tail *connEntry // the plain connections, oldest first
}

// SocketsFull reports whether the WebSockets use all of the cap they may: the cap less
// a reserve for plain requests (a twentieth, at least 16; none under a cap of 64), so
// that however many sockets users open, /healthz, reads and creates still find a
// place. The handshake refuses a new WebSocket then.
func (l *Listener) SocketsFull() bool {
	reserve := 0
	if l.max >= 64 {
		reserve = max(16, l.max/20)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sockets >= l.max-reserve
}

// Max is the cap.
func (l *Listener) Max() int { return l.max }

// Open is how many connections are counted now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Accept waits for a connection it can admit, closing the oldest plain connection or
// refusing the new one at the cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, e := track(c, l)
		l.mu.Lock()
		victim := (*connEntry)(nil)
		if l.open >= l.max {
			if victim = l.head; victim == nil {
				l.mu.Unlock()
				// Counted before the close, so that a peer that sees it closed finds it
				// counted too.
				l.metrics.refused.Inc()
				_ = c.Close()
				l.reachedCap()
				continue
			}
			l.unlink(victim)
			victim.closed = true
			l.open--
		}
		l.open++
		l.push(e)
		l.mu.Unlock()
		if victim != nil {
			l.metrics.evicted.Inc() // before the close, as for a refusal
			_ = victim.raw.Close()
			l.reachedCap()
		} else {
			l.metrics.open.Inc()
		}
		return tc, nil
	}
}

func (l *Listener) reachedCap() {
	if !l.capHit.Swap(true) {
		l.log.Warn("open connections reached the cap: each new one closes the oldest that is not a WebSocket, or is refused when all are (HERALD_MAX_CONNS)",
			"max", l.max)
	}
}

// connState keeps the plain connections in the order of their last request (the one
// that has gone longest without starting or finishing one is the first a new
// connection closes), and takes hijacked connections (WebSockets) off that list.
func (l *Listener) connState(c net.Conn, s http.ConnState) {
	if s != http.StateActive && s != http.StateIdle && s != http.StateHijacked {
		return
	}
	var e *connEntry
	switch c := c.(type) {
	case *trackedTCP:
		e = &c.connEntry
	case *trackedConn:
		e = &c.connEntry
	default:
		return
	}
	l.mu.Lock()
	if e.listed {
		l.unlink(e)
		if s != http.StateHijacked {
			l.push(e)
		} else if !e.closed {
			e.socket = true
			l.sockets++
		}
	}
	l.mu.Unlock()
}

func (l *Listener) push(e *connEntry) {
	e.prev, e.listed = l.tail, true
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *Listener) unlink(e *connEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.listed = nil, nil, false
}

// connEntry is a counted connection. Its fields are the listener's, under its mutex.
type connEntry struct {
	l          *Listener
	raw        net.Conn
	prev, next *connEntry
	listed     bool // among the plain connections a new one may close
	closed     bool // no longer counted
	socket     bool // hijacked: a WebSocket
}

func (e *connEntry) close() error {
	l := e.l
	l.mu.Lock()
	counted := !e.closed
	if counted {
		e.closed = true
		if e.listed {
			l.unlink(e)
		}
		if e.socket {
			l.sockets--
		}
		l.open--
	}
	l.mu.Unlock()
	if counted {
		l.metrics.open.Dec()
	}
	return e.raw.Close()
}

// trackedTCP is a counted TCP connection. It embeds the *net.TCPConn itself, not a
// net.Conn, so that what the TCP connection does beyond net.Conn carries over: the
// vectored writes of net.Buffers (a WebSocket's batches), sendfile and splice.
type trackedTCP struct {
	*net.TCPConn
	connEntry
}

func (c *trackedTCP) Close() error { return c.connEntry.close() }

// trackedConn is a counted connection of another kind.
type trackedConn struct {
	net.Conn
	connEntry
}

func (c *trackedConn) Close() error { return c.connEntry.close() }

func track(c net.Conn, l *Listener) (net.Conn, *connEntry) {
	if tcp, ok := c.(*net.TCPConn); ok {
		t := &trackedTCP{TCPConn: tcp, connEntry: connEntry{l: l, raw: c}}
		return t, &t.connEntry
	}
	t := &trackedConn{Conn: c, connEntry: connEntry{l: l, raw: c}}
	return t, &t.connEntry
}

// connMetrics count the connections of the listeners on one registry.
type connMetrics struct {
	max     prometheus.Gauge
	open    prometheus.Gauge
	refused prometheus.Counter
	evicted prometheus.Counter
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{
		max: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_http_connections_max",
			Help: "The cap on open HTTP connections (HERALD_MAX_CONNS, or derived from the file limit).",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_http_connections_open",
			Help: "Open HTTP connections, WebSockets included.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_http_connections_refused_total",
			Help: "Connections closed at accept because the cap was reached and every open connection was a WebSocket.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_http_connections_evicted_total",
			Help: "Plain (not WebSocket) connections closed to admit a new one at the cap.",
		}),
	}
	if reg != nil {
		m.max = register(reg, m.max)
		m.open = register(reg, m.open)
		m.refused = register(reg, m.refused)
		m.evicted = register(reg, m.evicted)
	}
	return m
}

// register registers c, or returns the collector already registered under its name
// (a second listener on the same registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
