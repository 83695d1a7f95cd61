// Command herald-bench puts load on a running Herald server through its public contract
// only: the REST API and the WebSocket at GET /notifications/ws (see the wire contract).
// It mints its own user JWTs (HS256, -jwt-secret or HERALD_JWT_SECRET) and publishes with
// a service API key (-api-key or the first of HERALD_API_KEYS). Every user id belongs to
// one run (bench-<run>-<i>), so every user starts at seq 0.
//
// Scenarios (-scenario):
//
//   - idle: opens -n WebSocket connections, one user each, spread over the source
//     addresses 127.0.0.1..127.0.0.x and, above -per-process connections, over child
//     processes of itself. A connection counts once its first frame,
//     unread-notifications, has arrived. It measures the connect rate (connections/s,
//     snapshot frame included) and the server's resident memory per connection: VmRSS
//     of the server process before connecting and once all are connected and the figure
//     has settled, divided by -n. The connections are then held for -duration, and any
//     the server drops meanwhile are counted.
//
//     Beside VmRSS it reports RssAnon, the anonymous memory: on the embedded store
//     VmRSS also counts the pages of the store's mapped file that connecting read.
//
//   - idle-unread: idle, over unread state: first every user is given -unread
//     notifications (100) of -unread-bytes of payload (500) each, through POST
//     /notifications/batch with receiverIds (1,000 users a request, -publishers at once),
//     so that each connection's snapshot is a full one. A server the bench started is
//     then restarted on the same data, so that the memory figures start from a process
//     that has not done the seeding (the store's files or database stay); for one it
//     did not start, a note says that its figures include what seeding left behind.
//     Then it connects and measures as idle does.
//
//   - deliver: -n users connected, one socket each; -publishers concurrent publishers
//     send notifications for -duration at -rate notifications/s (0: as fast as the
//     server acknowledges) through POST /notifications or POST /notifications/batch
//     (-publish, -batch-size: single creates, batches of items, both alternately, or
//     multicast, one body to -batch-size receiverIds). Each payload carries its publish
//     time (Unix ns) and a marker (multicast: its first receiver's, each receiver
//     booking its own from its place in the list), so the receiving socket measures
//     create→socket latency and the bench knows exactly what it is owed. It reports published/s (201s), delivered/s, latency
//     p50/p90/p99/max (and, apart, the request's own latency until its 201, which tells
//     commit time from delivery time), lost (acknowledged but not received within -drain
//     of the end of publishing), duplicates (a seq or id seen twice on one socket) and
//     gaps (a socket's seq not growing by exactly one).
//
//   - broadcast: -n users connected; one notification to all of them as POST
//     /notifications/batch with receiverIds, in chunks of 1,000 sent concurrently. It
//     measures the time until the last user has it (and the spread of receipt times),
//     -rounds times.
//
//   - reconnect-storm: -n users connected while publishing goes on at -rate; at
//     -storm-at every client drops its connection at once and reconnects with
//     ?since=<last seq seen>. It measures the time until every client is back and the
//     time to converge: until every notification acknowledged before the last client
//     was back has been received. Missed, duplicates and gaps must be 0.
//
//   - events: -n users connected, as for deliver; -publishers concurrent publishers post
//     domain events for -duration at -rate events/s (0: flat out) through POST /events.
//     Each event, bench.fanout, names -fanout of the users (1..1000, at most -n) in its
//     data's receiverIds, with its publish time and marker, and the rule
//     herald-bench-fanout turns it into one notification for each, whose payload
//     carries the time and marker back (as strings: a rule's templates render strings)
//     to the sockets. Before connecting, one probe event for a user that never connects
//     checks that the server routes it that way. It reports events/s accepted (202s),
//     notifications/s stored (as the 202s count them) and delivered, event→socket
//     latency p50/p90/p99/max, the request's own latency until its 202, lost, duplicates,
//     gaps, and events whose 202 counted other than -fanout notifications (another rule
//     matching bench.fanout, say). With -start-server the bench writes the rule into a
//     rules file in the server's temporary directory and sets HERALD_RULES (over the
//     caller's); for a server it does not start, -print-rules prints the rule to add to
//     the server's HERALD_RULES file (reloaded on SIGHUP).
//
// With -window D (deliver and events, on one server) the run is also cut into windows
// of D of publishing: for each, the notifications acknowledged per second (events: stored,
// as the 202s count them), the request's latency p50 and p99 until its 201 (202), the
// first receipts on sockets and their publish→socket latency p50, p99 and max (the last
// window's receipts include the drain's), the server's CPU over the window and its
// RssAnon at the window's end. The report gets a "per window" table with one row each
// and a drift line, the last window's p50, p99 and server CPU over the first's; the
// JSON, windows and drift. A progress line closes each window. A receipt costs one more
// histogram's atomic adds (a histogram per window, swapped when the window closes); a
// run without -window, one atomic load.
//
// While running it prints a progress line on stderr every second; at the end a Markdown
// table on stdout and, with -out, the same figures as JSON. The exit status is 1 when a
// check failed (anything lost, duplicated or skipped, a connection that failed), 2 when
// the run could not be made. -timeout bounds a run (by default, the sum of its phases'
// limits); stopping the server and PostgreSQL afterwards has bounds of its own.
// -summarize prints one Markdown table of several -out files, one row each (make
// bench-load runs a standard suite and tabulates it so).
//
// The server is either one already running (-url, with -server-pid for its memory and
// CPU) or one the bench starts itself (-start-server /path/to/herald): on loopback, with
// the embedded store in a temporary directory unless HERALD_DATABASE_URL or
// HERALD_DATA_DIR says otherwise, rate limits off, the generated secret and API key,
// and for events the bench's rules file. With -postgres throwaway as well, the bench first
// starts a PostgreSQL cluster of its own (internal/pgtest: initdb into a temporary
// directory, a free port of 127.0.0.1, fsync and synchronous_commit on), creates a
// database in it, writes and checkpoints 640 MB of WAL so that the run reuses WAL files
// as a long-running cluster does (a new one stalls commits while it creates each 16 MB
// file), and points the server's HERALD_DATABASE_URL at it (over the caller's);
// the conditions say "store: postgres (throwaway, fsync on)" and give PostgreSQL's
// version and settings. After the run, also on failure or interrupt, it stops the server
// and then the cluster, and removes the cluster's files. PostgreSQL's binaries are looked
// up on PATH, then under /usr/lib/postgresql/*/bin; as root they run as the postgres
// user. The server and PostgreSQL get a parent-death signal on Linux, so that a bench
// that is killed leaves neither running.
//
// -server-procs P sets GOMAXPROCS=P for every server the bench starts (0, the default,
// leaves Go's: one per CPU), as a container's CPU limit would for nodes that share a
// machine. Every report gives the GOMAXPROCS each server reports on its /metrics
// (herald_go_sched_gomaxprocs_threads), whoever started it.
//
// With -nodes N (and -start-server, and -postgres throwaway above one node) the bench
// starts N herald serve nodes on the one throwaway PostgreSQL, as one cluster: node 1
// with HERALD_CLUSTER_ADDR=127.0.0.1:0 and no peer, every other listing node 1's
// cluster address as its ready line names it, each with its HERALD_NODE_ID
// (bench-node-I) and a PostgreSQL pool (HERALD_DB_MAX_CONNS) of at most 16, small
// enough that the N pools fit max_connections. It waits until every node's
// herald_cluster_routes is N-1 and its /readyz answers 200. -nodes 1 is one node without
// cluster settings, the baseline on the same client (on the embedded store without
// -postgres). The conditions give the machine's load averages at the start and the end. Two scenarios run across nodes:
//
//   - deliver (single creates only): user u's notifications are published on node
//     u mod N + 1, and its -sockets sockets (1..N-1) open on the nodes after that one,
//     never on the publisher's. Each socket is held to every notification exactly
//     once. It reports, per receiving node, received, publish→socket latency p50, p99
//     and max, and lost; over all, stored notifications/s (the 201s), lost and
//     duplicated, and from the nodes' /metrics, read before and after, bus messages
//     published and received per second (herald_cluster_published_messages_total,
//     herald_cluster_received_messages_total), head checks per second
//     (herald_head_checks_total), the entries they repaired, slow-consumer events and
//     bus faults. With -kill-at the last node gets SIGKILL that long after publishing
//     starts: its clients move to the next node and resume with ?since=, its users'
//     publishers move there too, and the bench reports how long until every socket
//     that was on it has resumed, and the surviving nodes' publish→socket latency for
//     what was published in the 5 s from the kill (p50, p99, max: do they stall?);
//     nothing acknowledged may be lost.
//   - idle: the -n connections split evenly over the nodes (each node's share held by
//     child processes above -per-process); the memory per connection is the growth of
//     the nodes' resident memory together, divided by -n.
//
// Requests to a plain http:// server go over the bench's own HTTP/1.1 keep-alive
// connections (httpclient.go), one request at a time on each, each waiting for its
// answer, as many connections as publishers: the workload a pool of net/http clients
// makes, at about half the bench's CPU per request (net/http's transport hands each
// request and answer between two goroutines of its own and the caller's), which on a
// shared machine leaves that CPU to the server. https:// goes through net/http.
//
// WebSockets to a plain ws:// endpoint are the bench's own too (wsclient.go): a TCP
// connect, one write of the upgrade request, the answer's head checked (101, Upgrade,
// Connection, Sec-WebSocket-Accept), then frames read off a 2 KiB buffer, pings
// answered, the close handshake echoed. Through net/http's transport and the WebSocket
// library a connect cost the bench about 260 µs of CPU; now about 150 µs, most of it
// the kernel's TCP connect (2,000 users, 128 dialers, 2026-12-02). wss:// goes through
// the library.
//
// CPU figures are cores used (CPU seconds per second of wall time) over the measured
// phase, read from /proc/PID/stat.
//
// Examples:
//
//	herald-bench -start-server ./herald -scenario idle -n 15000 -duration 30s
//	herald-bench -start-server ./herald -scenario idle-unread -n 10000 -unread 100 -unread-bytes 500
//	herald-bench -start-server ./herald -scenario deliver -n 1000 -rate 10000 -duration 20s -out deliver.json
//	herald-bench -start-server ./herald -postgres throwaway -scenario deliver -n 5000 -rate 0 -publish batch -out pg.json
//	herald-bench -start-server ./herald -postgres throwaway -nodes 3 -sockets 2 -scenario deliver -n 5000 -rate 10000 -publishers 48
//	herald-bench -start-server ./herald -postgres throwaway -nodes 6 -scenario idle -n 100000 -source-ips 20
//	herald-bench -start-server ./herald -postgres throwaway -nodes 6 -sockets 2 -scenario deliver -n 6000 -rate 2000 -duration 20s -kill-at 10s -drain 40s
//	herald-bench -start-server ./herald -scenario deliver -publish single -publishers 64 -n 2000 -rate 2000 -duration 10m -window 1m -out win.json
//	herald-bench -summarize deliver.json pg.json
//	herald-bench -url http://127.0.0.1:8080 -server-pid 4242 -scenario broadcast -n 5000
//	herald-bench -start-server ./herald -scenario reconnect-storm -n 2000 -rate 2000 -duration 20s
//	herald-bench -start-server ./herald -scenario events -n 1000 -fanout 10 -rate 1000 -duration 20s
//	herald-bench -print-rules > bench-rules.yaml # HERALD_RULES=bench-rules.yaml, or add its rule to the server's file
//	herald-bench -url http://127.0.0.1:8080 -server-pid 4242 -scenario events -n 1000 -rate 0
package main
