package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/events"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/persistence"
)

// Options configure a Server. Nil or zero fields mean the documented defaults.
type Options struct {
	Store  persistence.Reader  // reads; required
	Writer persistence.Writer  // writes, through the persistence actor; required
	Auth   *auth.Authenticator // required
	// MaxPayload is the payload limit in bytes. Default herald.DefaultMaxPayload (16 KiB).
	MaxPayload int
	// WriteTimeout bounds how long a request waits for its commit: more than the
	// persistence actor's commit timeout, so that a write that starts is answered with its
	// commit's outcome (persist.DefaultWriteTimeout). Default 15 s.
	WriteTimeout time.Duration
	// ReadTimeout bounds one store read of a request; when it passes, the request is
	// answered 503 unavailable instead of waiting on a store that does not answer.
	// Default 5 s.
	ReadTimeout time.Duration
	// UserRate limits the changes each user makes over REST with its token: the
	// notifications it creates, mark-read, read-all, PUT /preferences. Zero Per: no
	// limit.
	UserRate Rate
	// ServiceRate limits the write requests of each API key (single and batch creates,
	// POST /events). Zero Per: no limit.
	ServiceRate Rate
	// UserReadRate limits the reads of each user (the list routes, the unread count,
	// the preferences, ws-tokens, WebSocket connects). Zero Per: no limit.
	UserReadRate Rate
	// BodyBytesInFlight bounds the bytes of large request bodies (batch creates and
	// events) being handled at once; a request that would go over it is answered 503
	// with Retry-After, before its body is read. One request is always let through when
	// none is in flight. Default DefaultBodyBytesInFlight; negative: no bound.
	BodyBytesInFlight int64
	// Registry receives the HTTP metrics and serves /metrics. Default: a new registry.
	Registry *prometheus.Registry
	// Log receives server-side failures. Default slog.Default().
	Log *slog.Logger
	// Hub serves GET /notifications/ws. Nil: the route answers 404.
	Hub *ws.Hub
	// Wake, when not nil, is called after a dead letter is sent back to the outbox, so
	// that the dispatcher looks at it at once.
	Wake func()
	// Events turns POST /events into notifications. Default: an Emitter on Writer with
	// no rules (every event is unmatched).
	Events *events.Emitter
	// AllowedOrigins lists the browser origins that may open the WebSocket, get a
	// ws-token and read the REST API's answers (CORS) (see ValidOrigin). Requests
	// without an Origin header are always allowed.
	AllowedOrigins []string
	// Ready, when not nil, says why the node is not ready beyond its store (a cluster
	// node that has not joined): GET /readyz answers 503 with that reason while it
	// returns an error.
	Ready func() error
}

// Server serves the REST API. Create it with New; it is an http.Handler.
type Server struct {
	store        persistence.Reader
	writer       persistence.Writer
	auth         *auth.Authenticator
	maxPayload   int
	writeTimeout time.Duration
	readTimeout  time.Duration
	log          *slog.Logger
	mux          *http.ServeMux
	metrics      *httpMetrics
	handler      http.Handler
	userLimit    *limiter
	serviceLimit *limiter
	readLimit    *limiter
	bodies       *byteBudget
	hub          *ws.Hub
	origins      origins
	events       *events.Emitter
	wake         func()
	ready        func() error
	socketsFull  atomic.Pointer[func() bool] // see LimitSockets
}

// New returns a Server with every route of the contract registered.
func New(o Options) *Server {
	if o.MaxPayload <= 0 {
		o.MaxPayload = herald.DefaultMaxPayload
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 15 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Events == nil {
		o.Events = events.New(o.Writer, nil, nil)
	}
	s := &Server{
		store:        o.Store,
		writer:       o.Writer,
		ready:        o.Ready,
		auth:         o.Auth,
		maxPayload:   o.MaxPayload,
		writeTimeout: o.WriteTimeout,
		readTimeout:  o.ReadTimeout,
		log:          o.Log,
		mux:          http.NewServeMux(),
		metrics:      newHTTPMetrics(o.Registry),
		userLimit:    newLimiter(o.UserRate, time.Now),
		serviceLimit: newLimiter(o.ServiceRate, time.Now),
		readLimit:    newLimiter(o.UserReadRate, time.Now),
		bodies:       newByteBudget(o.BodyBytesInFlight),
		hub:          o.Hub,
		origins:      newOrigins(o.AllowedOrigins),
		events:       o.Events,
		wake:         o.Wake,
	}
	o.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_http_body_bytes_in_flight",
		Help: "Bytes of large request bodies (batch, events) being handled, as reserved against HERALD_BODY_BYTES_IN_FLIGHT.",
	}, func() float64 { return float64(s.bodies.used.Load()) }))
	s.route("POST /notifications", s.createNotification)
	s.route("POST /notifications/batch", s.createBatch)
	s.route("GET /notifications", s.listCreated)
	s.route("GET /notifications/unread", s.listUnread)
	s.route("GET /notifications/unread/count", s.unreadCount)
	s.route("GET /notifications/events", s.listEvents)
	s.route("PATCH /notifications/{id}/read", s.markRead)
	s.route("PATCH /notifications/read-all", s.markAllRead)
	s.route("GET /notifications/ws-token", s.wsToken)
	s.route("POST /events", s.postEvent)
	s.route("GET /deliveries", s.listDeliveries)
	s.route("POST /deliveries/{id}/retry", s.retryDelivery)
	s.route("PUT /contacts/{userId}", s.putContact)
	s.route("GET /contacts/{userId}", s.getContact)
	s.route("GET /preferences", s.getPreferences)
	s.route("PUT /preferences", s.putPreferences)
	if s.hub != nil {
		// Not instrumented as a request: a connection lasts as long as it lasts. The hub
		// has its own metrics.
		s.mux.Handle("GET /notifications/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := s.openWebSocket(w, r); err != nil {
				s.writeError(w, r, err)
			}
		}))
	}
	s.route("GET /healthz", s.healthz)
	s.route("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metrics.instrument("GET /metrics",
		promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))
	s.handler = http.HandlerFunc(s.serve)
	return s
}

// LimitSockets makes the WebSocket handshake refuse a new socket (503, before the
// upgrade) while full reports true: a Listener's SocketsFull, so that sockets leave
// the listener's reserve to plain requests. The last call wins.
func (s *Server) LimitSockets(full func() bool) { s.socketsFull.Store(&full) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// handlerFunc is a route handler: it returns an error instead of writing one.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) route(pattern string, h handlerFunc) {
	s.mux.Handle(pattern, s.metrics.instrument(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})))
}

// serve dispatches to the mux, answering unknown paths and methods with the contract's
// JSON errors instead of the mux's plain text.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" && s.cors(w, r, origin) {
		return // a preflight, answered
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values that Handler does not
		return
	}
	probe := &statusProbe{header: w.Header()}
	h.ServeHTTP(probe, r) // the mux's 404 or 405 (which sets Allow)
	s.metrics.observe("unmatched", probe.code, 0)
	if probe.code == http.StatusMethodNotAllowed {
		s.writeError(w, r, herald.Errorf(herald.CodeMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	s.writeError(w, r, herald.Errorf(herald.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
}

// statusProbe records the status a handler chose and discards its body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}
func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		if errors.Is(err, persistence.ErrCommitsFailing) {
			s.log.Warn("not ready: storage writes failing", "err", err)
			return herald.Errorf(herald.CodeUnavailable, "storage writes failing: the last commit failed and none has succeeded since")
		}
		s.log.Warn("not ready: store unreachable", "err", err)
		return herald.Errorf(herald.CodeUnavailable, "storage unreachable")
	}
	if s.ready != nil {
		if err := s.ready(); err != nil {
			return herald.Errorf(herald.CodeUnavailable, "%s", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
