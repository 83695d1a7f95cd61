package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/actors/supervise"
)

// Options configure a node's bridge. Zero fields mean the defaults.
type Options struct {
	// NodeID names the node on the bus, unique within the cluster. Required.
	NodeID string
	// Addr is the host:port where the embedded NATS server accepts the other nodes'
	// routes (port 0: a free one). Set it or URL, not both.
	Addr string
	// Peers are the route addresses (host:port) of other nodes: one that answers is
	// enough to join, since the servers tell each other of the rest. The first node
	// lists none.
	Peers []string
	// URL is an external NATS cluster's client URL (comma-separated for several
	// servers): no server is embedded then.
	URL string
	// Secret authenticates the nodes' routes to each other: each derives the route
	// password from it (HMAC-SHA256), so every node needs the same one, and a process
	// without it cannot join the bus or publish on it. Required with Addr.
	Secret []byte
	// Engine runs the bridge actor; Router is the inbox router it hands entries and
	// head checks to. Required.
	Engine *actor.Engine
	Router *actor.PID
	// SpreadWait is how long after subscribing to a user the bridge asks the router to
	// check that user's head (interest reaches the other servers asynchronously; a
	// second check follows at 8 × SpreadWait), and how long after a bus fault it checks
	// every user. Default 250 ms.
	SpreadWait time.Duration
	// Sweep is how often every connected user's head is checked however quiet the bus
	// has been. Default 30 s.
	Sweep time.Duration
	// Queue is how many received messages wait for the router; beyond, the bus drops
	// them and reports a slow consumer, which starts a head check. Default 65,536.
	Queue int
	// Registry receives the cluster metrics. Required.
	Registry prometheus.Registerer
	// Log receives bus faults. Default slog.Default().
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.SpreadWait <= 0 {
		o.SpreadWait = 250 * time.Millisecond
	}
	if o.Sweep <= 0 {
		o.Sweep = 30 * time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 1 << 16
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// clusterName is the NATS cluster name of every Herald node's embedded server.
const clusterName = "herald"

// ctlCheck is the subject on which a node asks every other to check all its users'
// heads: it publishes there after its own publishes may have been lost (a reconnect
// after its buffer overflowed), which no other node could see as a fault.
const ctlCheck = "herald.ctl.check"

// maxMessage is the most bytes of entries one message carries: a user's part of a batch
// that is bigger goes in several (NATS refuses payloads over 1 MiB by default).
const maxMessage = 512 << 10

// tickEvery is how often the bridge looks at its routes.
const tickEvery = 250 * time.Millisecond

// Bridge connects a node's actors to the other nodes. Start it after the router, hand
// its OnCommit and Interest to the persistence actor and the router, and Close it after
// the persistence actor has drained.
type Bridge struct {
	opts    Options
	srv     *server.Server // the embedded server; nil with Options.URL
	nc      *nats.Conn
	pid     *actor.PID
	msgs    chan *nats.Msg
	stop    chan struct{}
	recv    sync.WaitGroup
	closed  chan struct{} // the connection has closed (after Drain)
	metrics *metrics
	once    sync.Once
	err     error
	closing atomic.Bool  // Close has begun: the connection's end is no fault
	peers   atomic.Int64 // other nodes routed to, as the last tick counted them
}

// Start starts the embedded NATS server (unless Options.URL names an external one),
// connects to it and spawns the bridge actor.
func Start(o Options) (*Bridge, error) {
	o.defaults()
	switch {
	case o.NodeID == "":
		return nil, errors.New("cluster: a node id is required")
	case o.Engine == nil || o.Router == nil || o.Registry == nil:
		return nil, errors.New("cluster: Engine, Router and Registry are required")
	case o.URL != "" && (o.Addr != "" || len(o.Peers) > 0):
		return nil, errors.New("cluster: an external NATS URL and a cluster address (or peers) exclude each other")
	case o.URL == "" && o.Addr == "":
		return nil, errors.New("cluster: a cluster address or an external NATS URL is required")
	case o.URL == "" && len(o.Secret) == 0:
		return nil, errors.New("cluster: a secret is required to authenticate the routes")
	}
	b := &Bridge{opts: o, msgs: make(chan *nats.Msg, o.Queue), stop: make(chan struct{}), closed: make(chan struct{})}
	connOpts := []nats.Option{
		nats.Name(o.NodeID), nats.NoEcho(), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(32 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.fault("disconnect", err) }),
		nats.ReconnectHandler(func(*nats.Conn) { b.fault("reconnect", nil) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.fault("slow_consumer", err)
				return
			}
			b.fault("error", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	var err error
	if o.URL == "" {
		var token string
		if b.srv, token, err = startServer(o); err != nil {
			return nil, err
		}
		b.nc, err = nats.Connect("", append(connOpts, nats.InProcessServer(b.srv), nats.Token(token))...)
	} else {
		b.nc, err = nats.Connect(o.URL, append(connOpts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("cluster: connecting to the bus: %w", err)
	}
	if _, err := b.nc.ChanSubscribe(ctlCheck, b.msgs); err != nil {
		b.nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("cluster: subscribing: %w", err)
	}
	b.metrics = newMetrics(o.Registry, b)
	b.pid = o.Engine.Spawn(supervise.Recover(o.Log, nil, func() actor.Receiver { return newBridgeActor(b) }), "cluster",
		actor.WithID("bridge"))
	b.recv.Add(1)
	go b.receive()
	return b, nil
}

// startServer starts the embedded NATS server, with routes on Options.Addr, and no
// signal handling of its own (the node's SIGTERM drains it). The node connects in
// process; the server still needs a client port for its routes to start (DontListen
// keeps them from starting), so it has one on loopback, which only the token it returns
// opens. Routes authenticate with the password derived from Options.Secret. They are
// pinged every second and dropped after three missed answers, so a stopped node is
// seen within about 4 s.
func startServer(o Options) (*server.Server, string, error) {
	host, port, err := splitAddr(o.Addr)
	if err != nil {
		return nil, "", fmt.Errorf("cluster address %q: %w", o.Addr, err)
	}
	user, pass := routeUser, routePassword(o.Secret)
	var routes []*url.URL
	for _, p := range o.Peers {
		if _, _, err := splitAddr(p); err != nil {
			return nil, "", fmt.Errorf("cluster peer %q: %w", p, err)
		}
		routes = append(routes, &url.URL{Scheme: "nats-route", User: url.UserPassword(user, pass), Host: p})
	}
	var tok [24]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	srv, err := server.NewServer(&server.Options{
		ServerName:    o.NodeID,
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: token,
		NoSigs:        true,
		NoLog:         true,
		Cluster: server.ClusterOpts{
			Name: clusterName, Host: host, Port: port,
			Username: user, Password: pass, NoAdvertise: true,
			PoolSize: 1, PingInterval: time.Second, MaxPingsOut: 3,
		},
		Routes: routes,
	})
	if err != nil {
		return nil, "", fmt.Errorf("cluster: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", fmt.Errorf("cluster: the embedded NATS server did not start on %s", o.Addr)
	}
	return srv, token, nil
}

// routeUser is the user name of the routes between nodes.
const routeUser = "herald"

// routePassword is the routes' password: HMAC-SHA256 of a label, keyed with the
// cluster's secret, so that the secret itself never crosses the network.
func routePassword(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("herald cluster route v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// splitAddr parses host:port; port 0 asks for a free port.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Addr is where the embedded server accepts routes ("" with an external NATS).
func (b *Bridge) Addr() string {
	if b.srv == nil {
		return ""
	}
	if a := b.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// NodeID is the node's name on the bus.
func (b *Bridge) NodeID() string { return b.opts.NodeID }

// OnCommit is the persistence actor's commit hook: the batch's entries go to the nodes
// holding their users' sockets. It returns at once.
func (b *Bridge) OnCommit(entries []herald.Entry, at time.Time) {
	b.opts.Engine.Send(b.pid, committed{entries: entries, at: at})
}

// Interest is the router's hook: the node holds an inbox for user (on) or no longer
// does. It returns at once.
func (b *Bridge) Interest(user string, on bool) {
	b.opts.Engine.Send(b.pid, interest{user: user, on: on})
}

// Uncertain is the persistence actor's hook for a batch whose commit went unanswered
// and may have landed, once the store answers again: every other node checks those
// users' heads (this node's own router is told by the node). It returns at once.
func (b *Bridge) Uncertain(users []string) {
	b.opts.Engine.Send(b.pid, uncertain{users: users})
}

// Ready reports why the node is not part of the cluster yet: it is not connected to the
// bus, or it has peers configured and reaches none of them.
func (b *Bridge) Ready() error {
	if !b.nc.IsConnected() {
		return errors.New("not connected to the cluster bus")
	}
	if b.srv != nil && len(b.opts.Peers) > 0 && b.peers.Load() == 0 {
		return errors.New("no route to any cluster peer yet")
	}
	return nil
}

// routes counts the embedded server's route connections (several per peer: one per
// account pinned to its own, the system account's included).
func (b *Bridge) routes() int {
	if b.srv == nil {
		return 0
	}
	return b.srv.NumRoutes()
}

// countPeers counts the other nodes the embedded server has a route to.
func (b *Bridge) countPeers() {
	if b.srv == nil {
		return
	}
	rz, err := b.srv.Routez(nil)
	if err != nil {
		return
	}
	seen := make(map[string]struct{}, len(rz.Routes))
	for _, r := range rz.Routes {
		seen[r.RemoteID] = struct{}{}
	}
	b.peers.Store(int64(len(seen)))
}

// fault reports a bus fault to the bridge actor, which checks every user's head.
func (b *Bridge) fault(kind string, err error) {
	if b.closing.Load() {
		return
	}
	if kind != "reconnect" {
		b.opts.Log.Warn("cluster: bus fault; checking connected users against the store", "kind", kind, "err", err)
	} else {
		b.opts.Log.Info("cluster: reconnected to the bus; checking connected users against the store")
	}
	if b.pid != nil {
		b.opts.Engine.Send(b.pid, fault{kind: kind})
	}
}

// receive hands what arrives to the router as if committed here.
func (b *Bridge) receive() {
	defer b.recv.Done()
	for {
		var m *nats.Msg
		select {
		case m = <-b.msgs:
		case <-b.stop:
			return
		}
		if m.Subject == ctlCheck {
			if len(m.Data) == 0 {
				b.opts.Engine.Send(b.pid, fault{kind: "peer_fault"})
				continue
			}
			users, err := decodeUsers(m.Data)
			if err != nil {
				b.metrics.badMsgs.Inc()
				continue
			}
			b.opts.Engine.Send(b.opts.Router, inbox.CheckHeads{Users: users})
			continue
		}
		b.metrics.recvMsgs.Inc()
		b.metrics.recvBytes.Add(float64(len(m.Data)))
		entries, at, err := decodeMessage(m.Data)
		if err != nil {
			b.metrics.badMsgs.Inc()
			b.opts.Log.Error("cluster: dropped a bus message", "subject", m.Subject, "err", err)
			continue
		}
		b.opts.Engine.Send(b.opts.Router, inbox.Committed{Entries: entries, At: at})
	}
}

// Close stops the bridge once the persistence actor has drained: the messages of the
// last commits are sent, the connection drains, and the embedded server stops, within
// ctx.
func (b *Bridge) Close(ctx context.Context) error {
	b.once.Do(func() { b.err = b.close(ctx) })
	return b.err
}

func (b *Bridge) close(ctx context.Context) error {
	b.closing.Store(true)
	var errs []error
	done := make(chan struct{})
	b.opts.Engine.Send(b.pid, flush{done: done})
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, errors.New("cluster: the last commits were not all published in time"))
	}
	stopped := b.opts.Engine.Poison(b.pid)
	select {
	case <-stopped.Done():
	case <-ctx.Done():
	}
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
	}
	select {
	case <-b.closed:
	case <-ctx.Done():
		b.nc.Close()
		errs = append(errs, errors.New("cluster: the bus connection did not drain in time"))
	}
	close(b.stop)
	b.recv.Wait()
	b.shutdownServer()
	return errors.Join(errs...)
}

func (b *Bridge) shutdownServer() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}
