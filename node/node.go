// Package node runs a whole Herald node: the store, the actors (persistence, inbox
// router, delivery dispatcher) and the HTTP API with its WebSocket, wired together. The
// herald command is one user of it; a Go application can be another, running Herald in
// its own process and emitting domain events without HTTP:
//
//	n, err := node.Open(ctx, node.Options{DataDir: "./data", JWTSecret: secret, RulesFile: "rules.yaml"})
//	...
//	srv, l, err := n.HTTPServer(ln)                // REST and WebSocket with the node's limits, as herald serve has them
//	go srv.Serve(l)
//	res, err := n.Emit(ctx, node.Event{Name: "project.created", Data: map[string]any{...}})
//	...
//	n.CloseSockets(ctx)                            // on shutdown, while the HTTP server stops
//	n.Close(ctx)                                   // then drain writes and deliveries
//
// # Who owns what
//
// A Node owns its store (it opens and closes it), its actor engine and every actor on
// it, the WebSocket connections, and a background goroutine that has the event log
// pruned past its retention, hourly. It hands the store to the persistence actor alone;
// the API, the inboxes and the dispatcher get its reads (persistence.Reader), the
// dispatcher its lease claims (persistence.Claimer), and every write, the prune loop's
// included, goes through the persistence actor's client. The HTTP server that serves Handler is the caller's: stop it
// (http.Server.Shutdown) at the same time as CloseSockets, since it cannot see the
// hijacked WebSocket connections, and before Close, which stops the writer that
// in-flight requests still need.
//
// # Options
//
// Options mirrors the HERALD_* variables of the herald command that configure a node:
// one field per variable, named after it (HERALD_DELIVERY_MAX_ATTEMPTS is
// DeliveryMaxAttempts), except RulesFile, which is HERALD_RULES, and SMTP, whose fields
// are the HERALD_SMTP_* ones; Rules, Registry and Log have no variable, and HERALD_ADDR,
// HERALD_SHUTDOWN_TIMEOUT, HERALD_LOG_LEVEL and HERALD_PPROF_ADDR are the command's own. The zero value of every field is the
// default of the README's configuration table: Options{JWTSecret: s} runs as herald
// serve does with only HERALD_JWT_SECRET set, limits included. No field takes a
// negative value. The one choice zero cannot spell is "no limit" for a rate (what 0
// means in a HERALD_*_RATE variable): that is math.Inf(1), an infinite rate.
//
// WithDefaults shows the options a node would run with. Validate checks them without
// opening anything (it reads the rules file). Open makes the same checks before it
// opens the store. Either refuses a value with an *OptionError whose Option is the
// field's name ("SMTP.Addr" for a nested one), which is how herald serve names the
// variable in its message.
//
// # Limits
//
// HTTPServer returns the server with the limits of the contract: a read deadline for
// every request's whole read (a client that stalls in its body is closed), an idle
// timeout, a header size limit and a cap on open connections (see api.Listener). A
// caller that serves Handler on an http.Server of its own sets those itself: the
// handler relies on the server's ReadTimeout to bound a request body.
package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/actors/supervise"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/events"
	"github.com/heraldhq/herald/api/events/rules"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/cluster"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

// Event is a domain event, as POST /events takes it.
type Event = events.Event

// EmitResult is what an event did: the notifications it stored and the rules it matched.
type EmitResult = events.Result

// Node is a running Herald node.
type Node struct {
	opts      Options
	log       *slog.Logger
	store     persistence.Store
	storeName string
	engine    *actor.Engine
	router    *actor.PID
	writerPID *actor.PID
	dispatch  *actor.PID
	wake      atomic.Pointer[actor.PID] // the dispatcher, while commits may wake it
	writer    persist.Client
	hub       *ws.Hub
	bridge    *cluster.Bridge // nil on a single node
	emitter   *events.Emitter
	handler   *api.Server

	stopPrune context.CancelFunc
	pruned    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens the store and starts the node. Close it with Close.
func Open(ctx context.Context, o Options) (*Node, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	o = o.WithDefaults()
	set, err := o.check()
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(auth.Config{
		JWTSecret: o.JWTSecret, JWKS: o.JWKS, JWKSMaxAge: o.JWKSMaxAge, Audience: o.JWTAudience,
		MaxTTL: o.JWTMaxTTL, APIKeys: o.APIKeys, WSTokenSecret: o.WSTokenSecret, WSTokenTTL: o.WSTokenTTL,
	})
	if err != nil {
		option := "JWTSecret"
		if o.JWKS != "" {
			option = "JWKS"
		}
		return nil, &OptionError{option, err}
	}
	n := &Node{opts: o, log: o.Log}
	if n.store, n.storeName, err = openStore(ctx, &o); err != nil {
		return nil, err
	}
	senders, err := channelSenders(&o, n.store)
	if err != nil {
		n.store.Close()
		return nil, err
	}
	if n.engine, err = actor.NewEngine(actor.NewEngineConfig()); err != nil {
		n.store.Close()
		return nil, err
	}
	reg, log := o.Registry, o.Log
	supervised := func(p actor.Producer) actor.Producer { return supervise.Recover(log, nil, p) }
	// The inboxes apply their clients' mark-reads through the writer, which hands its
	// commits to the inboxes: the router starts first, with a pointer to n.writer, set
	// below before any socket can exist.
	// A cluster node's router tells the bridge which users it holds, and the bridge
	// starts after the router: the router reaches it through a pointer set below,
	// before any socket can exist.
	var bridge atomic.Pointer[cluster.Bridge]
	var interest func(string, bool)
	if o.clustered() {
		interest = func(user string, on bool) { bridge.Load().Interest(user, on) }
	}
	n.router = n.engine.Spawn(supervised(inbox.NewRouter(inbox.Options{
		Store: n.store, Writer: &n.writer, MaxSockets: o.WSMaxPerUser, Interest: interest,
		OpTimeout: persist.DefaultWriteTimeout, Metrics: inbox.NewMetrics(reg), Log: log,
	})), "inbox", actor.WithID("router"))
	if o.clustered() {
		if n.bridge, err = startBridge(ctx, &o, n.engine, n.router, n.store); err != nil {
			n.engine.Poison(n.router)
			n.store.Close()
			return nil, err
		}
		bridge.Store(n.bridge)
	}
	// The writer wakes the dispatcher, and the dispatcher writes through the writer
	// (digests): the writer starts first and learns the dispatcher's PID after.
	n.writerPID = n.engine.Spawn(supervised(persist.New(n.store, persist.Options{
		MaxBatch:   o.BatchMax,
		FlushDelay: o.BatchDelay,
		InFlight:   o.CommitsInFlight,
		OnCommit: func(entries []herald.Entry) {
			at := time.Now()
			n.engine.Send(n.router, inbox.Committed{Entries: entries, At: at})
			if n.bridge != nil {
				n.bridge.OnCommit(entries, at)
			}
			if pid := n.wake.Load(); pid != nil && hasDeliveries(entries) {
				n.engine.Send(pid, dispatch.Wake{})
			}
		},
		// A batch whose commit went unanswered may be stored: once the store answers,
		// the router re-reads its users' heads, and their sockets get what it stored.
		OnUncertain: func(users []string) {
			n.engine.Send(n.router, inbox.CheckHeads{Users: users})
			if n.bridge != nil {
				n.bridge.Uncertain(users) // and the other nodes' sockets
			}
		},
		Metrics: persist.NewMetrics(reg),
		Log:     log,
	})), "persist", actor.WithID("writer"))
	n.writer = persist.Client{Engine: n.engine, PID: n.writerPID}
	d := dispatch.Options{
		Poll: o.DeliveryPoll, Concurrency: o.DeliveryConcurrency, SendTimeout: o.DeliveryTimeout,
		MaxAttempts: o.DeliveryMaxAttempts, BackoffBase: o.DeliveryBackoff, BackoffMax: o.DeliveryBackoffMax,
	}
	// The store's reads and its lease claims; every write goes through the writer.
	d.Claimer, d.Writer, d.Outbox, d.Digests = n.store, n.writer, n.store, n.store
	d.Senders, d.Metrics, d.Log = senders, dispatch.NewMetrics(reg), log
	n.dispatch = n.engine.Spawn(supervised(dispatch.New(d)), "dispatch", actor.WithID("outbox"))
	n.wake.Store(n.dispatch)
	n.hub = ws.NewHub(ws.Options{
		Engine: n.engine, Router: n.router,
		ReadLimit: o.WSReadLimit, QueueSize: o.WSQueue, WriteTimeout: o.WSWriteTimeout, PingInterval: o.WSPingInterval,
		FrameRate: wsFrameRate(o.WSFrameRate), FrameBurst: o.WSFrameBurst,
		Metrics: ws.NewMetrics(reg), Log: log,
	})
	n.emitter = events.New(n.writer, set, events.NewMetrics(reg))
	n.handler = api.New(api.Options{
		Store: n.store, Writer: n.writer, Auth: authn, MaxPayload: o.MaxPayload, WriteTimeout: persist.DefaultWriteTimeout,
		UserRate: apiRate(o.UserRate, o.UserBurst), ServiceRate: apiRate(o.ServiceRate, o.ServiceBurst),
		UserReadRate: apiRate(o.UserReadRate, o.UserReadBurst), BodyBytesInFlight: o.BodyBytesInFlight,
		Registry: reg, Log: log,
		Hub: n.hub, AllowedOrigins: o.AllowedOrigins, Events: n.emitter, Ready: n.ready,
		Wake: func() { n.engine.Send(n.dispatch, dispatch.Wake{}) },
	})

	pruneCtx, stop := context.WithCancel(context.Background())
	n.stopPrune, n.pruned = stop, make(chan struct{})
	go func() {
		defer close(n.pruned)
		pruneLoop(pruneCtx, n.writer, o.LogRetention, log)
	}()
	return n, nil
}

// Handler serves the REST API, the WebSocket and /metrics. A WebSocket connect without
// since answers its 101 from the hijacked connection, with its first frame: a middleware
// around Handler sees no WriteHeader(101) for it.
func (n *Node) Handler() http.Handler { return n.handler }

// HTTPServer returns an http.Server serving Handler with the node's HTTP limits, and ln
// wrapped in the listener that caps its connections; serve the one on the other
// (srv.Serve(l)). Stop it with srv.Shutdown alongside CloseSockets. Its connection
// metrics go to the node's registry.
func (n *Node) HTTPServer(ln net.Listener) (*http.Server, *api.Listener, error) {
	srv, l, err := api.NewHTTPServer(ln, n.handler, api.HTTPOptions{
		ReadTimeout: n.opts.HTTPReadTimeout, IdleTimeout: n.opts.HTTPIdleTimeout, WriteTimeout: n.opts.HTTPWriteTimeout,
		MaxHeaderBytes: n.opts.HTTPMaxHeaderBytes, MaxConns: n.opts.MaxConns,
		Registry: n.opts.Registry, Log: n.log,
	})
	if err != nil {
		return nil, nil, &OptionError{"HTTP", err}
	}
	n.handler.LimitSockets(l.SocketsFull)
	return srv, l, nil
}

// ready says why the node is not ready beyond its store: a cluster node that has not
// joined.
func (n *Node) ready() error {
	if n.bridge == nil {
		return nil
	}
	if err := n.bridge.Ready(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Cluster says how the node is clustered ("NODE_ID at HOST:PORT", "NODE_ID via
// nats://…"), or "" on a single node.
func (n *Node) Cluster() string {
	switch {
	case n.bridge == nil:
		return ""
	case n.bridge.Addr() != "":
		return n.bridge.NodeID() + " at " + n.bridge.Addr()
	default:
		return n.bridge.NodeID() + " via " + n.opts.NATSURL
	}
}

// StoreName says which store the node runs on ("postgres", "embedded ./data").
func (n *Node) StoreName() string { return n.storeName }

// RuleCount is how many routing rules are in force.
func (n *Node) RuleCount() int { return n.emitter.Rules().Len() }

// Emit routes a domain event through the rules and stores every notification it
// yields, all or nothing, exactly as POST /events does (without its rate limit).
func (n *Node) Emit(ctx context.Context, ev Event) (EmitResult, error) {
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	return n.emitter.Emit(ctx, ev)
}

// Notify stores one notification as a service would with POST /notifications. A
// suppressed notification (the receiver's preferences) is returned with an empty ID.
func (n *Node) Notify(ctx context.Context, nn herald.NewNotification) (herald.Notification, error) {
	if err := nn.Validate(herald.Caller{Service: true}, herald.ValidateOptions{MaxPayload: n.opts.MaxPayload}); err != nil {
		return herald.Notification{}, err
	}
	res, err := n.writer.Write(ctx, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{nn}})
	if err != nil {
		return herald.Notification{}, err
	}
	return res.Notifications[0], nil
}

// Reload loads the rules file again; when it is invalid, the rules in force stay and
// the error says why. With Options.Rules set, there is nothing to reload.
func (n *Node) Reload() error {
	if len(n.opts.Rules) > 0 || n.opts.RulesFile == "" {
		return errors.New("no rules file to reload")
	}
	set, err := loadRules(&n.opts)
	if err != nil {
		return err
	}
	n.emitter.SetRules(set)
	return nil
}

// CloseSockets refuses new WebSocket connections and closes the open ones with 1001,
// after what is queued for them; connections still open when ctx ends are dropped.
func (n *Node) CloseSockets(ctx context.Context) error { return n.hub.Shutdown(ctx) }

// Close stops the node: pending writes are committed, deliveries in flight finish, the
// actors stop and the store is closed, all within ctx: when ctx ends first (a store that
// does not answer), Close returns at once with an error that says what was not done.
// Nothing acknowledged is lost then: the writes left were never answered with success
// (those never sent are not written, those in an unanswered commit may be stored), and
// deliveries in flight are retried after their lease. Call it once the HTTP server has
// stopped.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() { n.closeErr = n.close(ctx) })
	return n.closeErr
}

func (n *Node) close(ctx context.Context) error {
	var left []string       // what ctx ended before, for the error
	_ = n.hub.Shutdown(ctx) // in case CloseSockets was not called
	n.stopPrune()
	<-n.pruned
	// The dispatcher first: its sends finish and their outcomes are recorded, and the
	// digests it is flushing go through the writer, which is still running.
	done := make(chan struct{})
	n.engine.Send(n.dispatch, dispatch.Drain{Done: done})
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Warn("deliveries still in flight at shutdown; they will be retried after their lease")
		left = append(left, "the delivery dispatcher did not drain (a delivery in flight is retried after its lease)")
	}
	n.wake.Store(nil)
	n.waitStopped(ctx, n.engine.Poison(n.dispatch), "dispatcher")
	if err := n.writer.Drain(ctx); err != nil {
		n.log.Error("shutdown: pending writes not committed in time", "err", err)
		left = append(left, err.Error())
	}
	n.waitStopped(ctx, n.engine.Poison(n.writerPID), "persistence actor")
	if n.bridge != nil {
		// The last commits' messages go out, the bus drains, the embedded server stops.
		if err := n.bridge.Close(ctx); err != nil {
			n.log.Warn("cluster bridge did not stop cleanly", "err", err)
		}
	}
	n.waitStopped(ctx, n.engine.Poison(n.router), "router")
	// A pool waits for the connections its commits hold (PostgreSQL), a file for its
	// last transaction: the store's close gets what is left of ctx, and no more.
	closed := make(chan error, 1)
	go func() { closed <- n.store.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			left = append(left, "the store did not close cleanly: "+err.Error())
		}
	case <-ctx.Done():
		n.log.Error("shutdown: the store did not close in time; leaving it open")
		left = append(left, "the store did not close in time (it is left to the process's exit)")
	}
	if len(left) > 0 {
		return &CloseError{Left: left}
	}
	return nil
}

// CloseError is a Close that could not do everything within its context: Left says
// what was not done. None of it loses an acknowledged change.
type CloseError struct{ Left []string }

func (e *CloseError) Error() string {
	return "not done in time: " + strings.Join(e.Left, "; ") + "; nothing acknowledged is lost"
}

// waitStopped waits a little for a poisoned actor, at most 5 s and no longer than ctx:
// its work is already drained, or given up on, and a shutdown must not hang on it.
func (n *Node) waitStopped(ctx context.Context, stopped context.Context, what string) {
	select {
	case <-stopped.Done():
		return
	default:
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-stopped.Done():
	case <-ctx.Done():
		n.log.Warn("actor did not stop within the shutdown's time; going on", "actor", what)
	case <-t.C:
		n.log.Warn("actor did not stop within 5s; going on", "actor", what)
	}
}

func loadRules(o *Options) (*rules.Set, error) {
	var set *rules.Set
	var err error
	switch {
	case len(o.Rules) > 0:
		if set, err = rules.Parse(o.Rules); err != nil {
			return nil, &OptionError{"Rules", err}
		}
	case o.RulesFile != "":
		if set, err = rules.Load(o.RulesFile); err != nil {
			return nil, &OptionError{"RulesFile", err}
		}
	default:
		return nil, nil
	}
	return set.WithMaxPayload(o.MaxPayload), nil
}

func openStore(ctx context.Context, o *Options) (persistence.Store, string, error) {
	if o.DatabaseURL == "" {
		dir := o.DataDir
		s, err := embedded.Open(dir, embedded.Options{Retention: o.LogRetention})
		if err != nil {
			return nil, "", &OptionError{"DataDir", fmt.Errorf("embedded store in %s: %w", dir, err)}
		}
		return s, "embedded " + dir, nil
	}
	s, err := postgres.OpenAndMigrate(ctx, o.DatabaseURL, postgres.Options{Retention: o.LogRetention, MaxConns: o.DBMaxConns})
	if err != nil {
		return nil, "", &OptionError{"DatabaseURL", fmt.Errorf("postgres: %w", err)}
	}
	return s, "postgres", nil
}

// channelSenders builds the email and webhook senders that are configured.
func channelSenders(o *Options, contacts dispatch.Contacts) (map[herald.Channel]dispatch.Sender, error) {
	senders := map[herald.Channel]dispatch.Sender{}
	if o.smtp() {
		s, err := email.New(o.SMTP)
		if err != nil {
			return nil, &OptionError{"SMTP", err}
		}
		senders[herald.ChannelEmail] = dispatch.Email{Sender: s, Contacts: contacts}
	}
	if len(o.WebhookURLs) > 0 {
		secret, err := webhook.ParseSecret(o.WebhookSecret)
		if err != nil {
			return nil, &OptionError{"WebhookSecret", err}
		}
		s, err := webhook.New(webhook.Options{Secret: secret, Timeout: o.DeliveryTimeout})
		if err != nil {
			return nil, &OptionError{"WebhookURLs", err}
		}
		senders[herald.ChannelWebhook] = dispatch.Webhook{Sender: s, URLs: o.WebhookURLs}
	}
	return senders, nil
}

// hasDeliveries reports whether a committed batch created a notification for email or
// webhook (escalations are due later: the dispatcher's poll finds them).
func hasDeliveries(entries []herald.Entry) bool {
	for i := range entries {
		if nt := entries[i].Notification; entries[i].Event == herald.EventCreated && nt != nil {
			for _, c := range nt.Channels {
				if c != herald.ChannelRealtime {
					return true
				}
			}
		}
	}
	return false
}

// pruneLoop deletes log entries past the retention, at start and then hourly, with
// OpPrune through the persistence actor: each op deletes a bounded chunk in the batch it
// joins, and the loop sends the next while the op says more are left.
func pruneLoop(ctx context.Context, w persistence.Writer, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-retention)
		var pruned int64
		for {
			res, err := w.Write(ctx, persistence.Op{Kind: persistence.OpPrune, Cutoff: cutoff})
			pruned += res.Pruned
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("log pruning failed; will retry", "err", err)
				}
				break
			}
			if !res.More {
				break
			}
		}
		if pruned > 0 {
			log.Info("pruned event log", "entries", pruned)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startBridge joins the cluster: it checks that the pools of the nodes can fit
// PostgreSQL's connections, names the node, and starts the bridge.
func startBridge(ctx context.Context, o *Options, engine *actor.Engine, router *actor.PID, store persistence.Store) (*cluster.Bridge, error) {
	if pg, ok := store.(*postgres.Store); ok {
		if err := checkPools(ctx, o, pg); err != nil {
			return nil, err
		}
	}
	id := o.NodeID
	if id == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "herald"
		}
		var suffix [3]byte
		_, _ = rand.Read(suffix[:])
		id = fmt.Sprintf("%s-%x", host, suffix)
	}
	b, err := cluster.Start(cluster.Options{
		NodeID: id, Addr: o.ClusterAddr, Peers: o.ClusterPeers, URL: o.NATSURL, Secret: clusterSecret(o),
		Engine: engine, Router: router, Registry: o.Registry, Log: o.Log,
	})
	if err != nil {
		option := "ClusterAddr"
		if o.NATSURL != "" {
			option = "NATSURL"
		}
		return nil, &OptionError{option, err}
	}
	return b, nil
}

// checkPools refuses a pool that alone does not fit PostgreSQL's connections for
// ordinary clients, and warns when the pools of the nodes it knows of (itself and its
// peers, each with the same pool) or the connections already open and its own pool do
// not fit together.
func checkPools(ctx context.Context, o *Options, pg *postgres.Store) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := pg.ConnLimits(cctx)
	if err != nil {
		return &OptionError{"DatabaseURL", fmt.Errorf("reading max_connections: %w", err)}
	}
	avail := l.Available()
	if l.Pool > avail {
		return optionErr("DBMaxConns", "a pool of %d does not fit PostgreSQL's max_connections of %d less %d reserved: every node of the cluster opens up to its pool, so their pools together must fit", l.Pool, l.Max, l.Reserved)
	}
	nodes := 1 + len(o.ClusterPeers)
	if l.Pool*nodes > avail || l.InUse+l.Pool > avail {
		o.Log.Warn("the PostgreSQL pools of the cluster's nodes may not fit max_connections: a node that cannot connect answers 503; lower HERALD_DB_MAX_CONNS or raise max_connections",
			"pool", l.Pool, "nodes_known", nodes, "connections_open", l.InUse, "max_connections", l.Max, "reserved", l.Reserved)
	}
	return nil
}

// clusterSecret is what the routes between nodes authenticate with: the ws-token
// secret, or else the JWT secret, which every node of a cluster shares.
func clusterSecret(o *Options) []byte {
	if len(o.WSTokenSecret) > 0 {
		return o.WSTokenSecret
	}
	return o.JWTSecret
}
