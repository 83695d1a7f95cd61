// Package cluster is the bridge between one node's actors and the other nodes of a
// cluster: several herald serve processes on one PostgreSQL database, each delivering
// live to every socket of a user whichever node stored the change.
//
// # What it owns
//
// A Bridge owns the node's connection to the bus, NATS core: an embedded nats-server
// (github.com/nats-io/nats-server/v2) that meshes with the other nodes' over routes
// (Options.Addr, Options.Peers; the routes authenticate with a password derived from
// Options.Secret), or, with Options.URL, an external NATS cluster and no embedded
// server. It owns one hollywood actor beside the inbox router, which holds one
// subscription per user the node has an inbox for, on that user's subject (herald.u.
// and a hash of the id): NATS's interest graph is the cluster's registry, and an entry
// crosses the network only to the nodes with its user's sockets. And it owns the
// goroutine that reads what arrives.
//
// # What it accepts
//
//   - OnCommit, the persistence actor's hook: each committed batch is published, one
//     message per user (several when a user's part exceeds 512 KiB), carrying the
//     entries in a binary form (their times as the text the WebSocket shows) and the
//     origin's commit time, so that
//     herald_ws_delivery_latency_seconds covers remote deliveries.
//   - Interest, the router's hook: the node now holds an inbox for a user, or no longer.
//   - Uncertain, the persistence actor's hook for a batch whose commit went unanswered,
//     once the store answers: every other node checks those users' heads (a request on
//     herald.ctl.check), so their sockets get the entries if the batch landed.
//
// What arrives goes to the router as an inbox.Committed, as if committed here.
//
// # Why delivery is exact
//
// The bus is at most once; the store has every entry, and an inbox already drops what
// it has sent and repairs a gap from the store when a later entry shows it. What no
// later entry reveals is a lost last entry: a write on another node before this node's
// new subscription reached it (interest spreads asynchronously), or messages dropped by
// a fault. So the bridge asks the router for head checks (inbox.CheckHeads: one store
// read for many users, and an inbox behind the store has its sockets read what they
// missed): for the users subscribed to, SpreadWait (0.25 s) and 8 × SpreadWait after;
// for every user, SpreadWait after any bus fault (disconnect, reconnect, slow consumer,
// a route lost or added, another node's publishes lost: it asks every node on
// herald.ctl.check once reconnected) and on a sweep every 30 s. In steady state nothing is
// behind, and nothing else is read.
//
// # How it stops
//
// Close, after the persistence actor has drained: the messages of the last commits are
// published, the bridge actor stops, the connection drains (its subscriptions end and
// what is buffered is flushed), the receiving goroutine ends, and the embedded server
// shuts down, within the context given. The node's SIGTERM handling does all of this;
// the embedded server handles no signal itself.
package cluster
