package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Bounds and settings of the nodes the bench starts with -nodes.
const (
	// clusterJoinTimeout bounds the wait for every node to route to all the others
	// and answer /readyz 200.
	clusterJoinTimeout = time.Minute
	// nodePoolMax is the PostgreSQL pool each node gets at most (herald's default).
	nodePoolMax = 16
	// pgSpareConns are the connections of max_connections left to others than the
	// nodes' pools (the bench's own, psql).
	pgSpareConns   = 10
	metricsTimeout = 10 * time.Second
)

// The metrics the bench reads from each node's /metrics.
const (
	metricRoutes    = "herald_cluster_routes"
	metricBusPub    = "herald_cluster_published_messages_total"
	metricBusRecv   = "herald_cluster_received_messages_total"
	metricChecks    = "herald_head_checks_total"
	metricRepaired  = "herald_head_check_repaired_entries_total"
	metricSlow      = "herald_cluster_slow_consumer_total"
	metricBusFaults = "herald_cluster_faults_total"
)

// nodeSet is the herald nodes the bench started (-nodes) on one throwaway PostgreSQL:
// node 1 lists no peer, every other lists node 1.
type nodeSet struct {
	nodes []*target
	ids   []string // HERALD_NODE_ID of each ("" for a lone node)
	addrs []string // cluster address of each, as its ready line names it
	pool  int      // HERALD_DB_MAX_CONNS of each
	pg    *throwaway

	mu     sync.Mutex
	killed map[int]bool // nodes the bench killed on purpose
}

// startNodes starts a throwaway PostgreSQL and o.nodes herald nodes on it, and waits
// until they form one cluster: each routes to all the others and answers /readyz 200.
// A single node (-nodes 1) runs without cluster settings, as one node does.
func startNodes(ctx context.Context, o *options, rules []byte, logs io.Writer) (*nodeSet, error) {
	ns := &nodeSet{killed: map[int]bool{}}
	if o.postgres == postgresThrowaway {
		pg, err := startPostgres(ctx)
		if err != nil {
			return nil, err
		}
		ns.pg = pg
	}
	if err := ns.start(ctx, o, rules, logs); err != nil {
		if serr := ns.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return ns, nil
}

func (ns *nodeSet) start(ctx context.Context, o *options, rules []byte, logs io.Writer) error {
	var env0 []string // a lone node without -postgres runs on the embedded store
	if ns.pg != nil {
		pool, err := nodePool(ctx, ns.pg.url, o.nodes)
		if err != nil {
			return err
		}
		ns.pool = pool
		env0 = []string{"HERALD_DATABASE_URL=" + ns.pg.url, "HERALD_DB_MAX_CONNS=" + strconv.Itoa(pool)}
	}
	for i := range o.nodes {
		env := o.serverEnv(env0...)
		id := ""
		if o.nodes > 1 {
			id = "bench-node-" + strconv.Itoa(i+1)
			env = append(env, "HERALD_CLUSTER_ADDR=127.0.0.1:0", "HERALD_NODE_ID="+id)
			if i > 0 {
				env = append(env, "HERALD_CLUSTER_PEERS="+ns.addrs[0])
			}
		}
		t, err := startServer(ctx, o.startServer, o.secret, o.apiKey, rules, env, prefixed(logs, fmt.Sprintf("node %d: ", i+1)))
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		ns.nodes = append(ns.nodes, t)
		store, gotID, addr, clustered := splitClusterStore(t.store)
		if clustered != (o.nodes > 1) || clustered && gotID != id {
			return fmt.Errorf("node %d: the ready line says store %q: want a cluster address and node id %q", i+1, t.store, id)
		}
		if ns.pg != nil {
			t.store = ns.pg.store
		}
		t.desc = fmt.Sprintf("%s (node %d, started by the bench, pid %d, store: %s)", t.base, i+1, t.pid, store)
		if clustered {
			t.desc = fmt.Sprintf("%s (node %s at %s, started by the bench, pid %d, store: %s)", t.base, id, addr, t.pid, store)
		}
		ns.ids, ns.addrs = append(ns.ids, id), append(ns.addrs, addr)
	}
	return ns.waitJoined(ctx, clusterJoinTimeout)
}

// nodePool returns the pool size of each of n nodes: herald's default, or less when n
// of those would not fit PostgreSQL's max_connections.
func nodePool(ctx context.Context, url string, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, pgSetupTimeout)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("reading max_connections: %w", err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("reading max_connections: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 {
		return 0, errors.New("reading max_connections: unexpected answer")
	}
	avail, err := strconv.Atoi(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("reading max_connections: %w", err)
	}
	pool := min(nodePoolMax, (avail-pgSpareConns)/n)
	if pool < 2 {
		return 0, fmt.Errorf("%d nodes do not fit PostgreSQL's %d connections for clients with a pool of 2 each", n, avail)
	}
	return pool, nil
}

// splitClusterStore reads the store part of a clustered node's ready line,
// "postgres; cluster: NODE_ID at HOST:PORT".
func splitClusterStore(s string) (store, id, addr string, clustered bool) {
	store, rest, ok := strings.Cut(s, "; cluster: ")
	if !ok {
		return s, "", "", false
	}
	id, addr, ok = strings.Cut(rest, " at ")
	return store, id, addr, ok && id != "" && addr != ""
}

// waitJoined waits until every node routes to all the others and answers /readyz 200.
func (ns *nodeSet) waitJoined(ctx context.Context, timeout time.Duration) error {
	want := float64(len(ns.nodes) - 1)
	client := &http.Client{Timeout: metricsTimeout}
	var last error
	ok := pollUntil(ctx, timeout, 50*time.Millisecond, func() bool {
		for i, t := range ns.nodes {
			if len(ns.nodes) > 1 {
				m, err := scrapeMetrics(ctx, client, t.base)
				if err != nil {
					last = fmt.Errorf("node %d: %w", i+1, err)
					return false
				}
				if got := m[metricRoutes]; got != want {
					last = fmt.Errorf("node %d routes to %v other nodes, want %v", i+1, got, want)
					return false
				}
			}
			if code, err := getStatus(ctx, client, t.base+"/readyz"); code != http.StatusOK {
				last = fmt.Errorf("node %d: GET /readyz answered %d (%v)", i+1, code, err)
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("the nodes did not form a cluster within %s: %v", timeout, last)
	}
	return nil
}

func getStatus(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// scrapeMetrics reads a node's /metrics: each metric's value, summed over its labels.
func scrapeMetrics(ctx context.Context, client *http.Client, base string) (map[string]float64, error) {
	var m map[string]float64
	err := getMetrics(ctx, client, base, func(r io.Reader) (err error) {
		m, err = parseMetrics(r)
		return err
	})
	return m, err
}

// getMetrics GETs base's /metrics and hands the body to parse.
func getMetrics(ctx context.Context, client *http.Client, base string, parse func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics answered %s", resp.Status)
	}
	return parse(resp.Body)
}

// parseMetrics reads the Prometheus text format: each sample's value, summed by
// metric name over its labels.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	err := eachSample(r, func(name, _ string, v float64) error {
		m[name] += v
		return nil
	})
	return m, err
}

// eachSample calls f with the name, the labels (between the braces, "" when none) and
// the value of every sample of the Prometheus text format in r.
func eachSample(r io.Reader, f func(name, labels string, v float64) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, labels := line, "", ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
			rest = line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return fmt.Errorf("metrics: malformed line %q", line)
			}
			labels, rest = rest[1:j], rest[j+1:]
		}
		fs := strings.Fields(rest)
		if len(fs) < 1 {
			return fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			return fmt.Errorf("metrics: %q: %w", line, err)
		}
		if err := f(name, labels, v); err != nil {
			return err
		}
	}
	return sc.Err()
}

// scrape reads every node's metrics (a killed node's are left out).
func (ns *nodeSet) scrape(ctx context.Context) ([]map[string]float64, error) {
	client := &http.Client{Timeout: metricsTimeout}
	out := make([]map[string]float64, len(ns.nodes))
	for i, t := range ns.nodes {
		if ns.isKilled(i) {
			continue
		}
		m, err := scrapeMetrics(ctx, client, t.base)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
		out[i] = m
	}
	return out, nil
}

// kill ends node i with SIGKILL, as a crash would.
func (ns *nodeSet) kill(i int) error {
	ns.mu.Lock()
	ns.killed[i] = true
	ns.mu.Unlock()
	return ns.nodes[i].cmd.Process.Kill()
}

func (ns *nodeSet) isKilled(i int) bool {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.killed[i]
}

// pids returns the pids of the nodes still running.
func (ns *nodeSet) pids() []int {
	var pids []int
	for i, t := range ns.nodes {
		if !ns.isKilled(i) {
			pids = append(pids, t.pid)
		}
	}
	return pids
}

// stop stops every node (at once: each drains on SIGTERM) and then PostgreSQL.
func (ns *nodeSet) stop() error {
	errs := make([]error, len(ns.nodes))
	var wg sync.WaitGroup
	for i, t := range ns.nodes {
		wg.Go(func() {
			if ns.isKilled(i) {
				<-t.exited
				_ = t.removeTemp()
				return
			}
			if err := t.stopServer(); err != nil {
				errs[i] = fmt.Errorf("node %d: %w", i+1, err)
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if ns.pg != nil {
		if cerr := ns.pg.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		ns.pg = nil
	}
	return err
}

// removeTemp removes the temporary directory of a server the bench started.
func (t *target) removeTemp() error {
	if t.tmpDir == "" {
		return nil
	}
	return os.RemoveAll(t.tmpDir)
}

// prefixed writes each line written to w with prefix in front: the nodes' logs, told
// apart.
func prefixed(w io.Writer, prefix string) io.Writer {
	return &prefixWriter{w: w, prefix: prefix, start: true}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	start  bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]byte, 0, len(b)+len(p.prefix))
	for _, c := range b {
		if p.start {
			out = append(out, p.prefix...)
			p.start = false
		}
		out = append(out, c)
		if c == '\n' {
			p.start = true
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// connectTargets is connectTarget, or with -nodes the nodes the bench starts: the
// target is then node 1, and ns all of them.
func connectTargets(ctx context.Context, o *options, logs io.Writer) (*target, *nodeSet, error) {
	if o.nodes == 0 {
		t, err := connectTarget(ctx, o, logs)
		return t, nil, err
	}
	if o.secret == "" {
		o.secret = randomSecret()
	}
	if o.apiKey == "" {
		o.apiKey = "bench-" + randomSecret()
	}
	ns, err := startNodes(ctx, o, nil, logs)
	if err != nil {
		return nil, nil, err
	}
	return ns.nodes[0], ns, nil
}

// stopTargets stops what connectTargets started.
func stopTargets(t *target, ns *nodeSet) error {
	if ns != nil {
		return ns.stop()
	}
	return t.stop()
}

// runOnNodes runs the scenario on the nodes (-nodes).
func (s *session) runOnNodes(ctx context.Context, r *Result) error {
	if s.nodes.pg != nil {
		r.cond("postgres", s.nodes.pg.desc)
	}
	r.cond("load average (1, 5, 15 min) at the start", loadAverage())
	defer func() { r.cond("load average (1, 5, 15 min) at the end", loadAverage()) }()
	if s.o.scenario == scenarioIdle {
		return s.clusterIdle(ctx, r)
	}
	return s.clusterDeliver(ctx, r)
}

// loadAverage returns the machine's load averages, as /proc/loadavg gives them, or
// "unknown": the machine is shared, and a run's figures depend on what else ran.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "unknown"
}

// validateNodes checks the flags of a run on several nodes.
func (o *options) validateNodes() error {
	switch {
	case o.nodes < 0 || o.nodes > 32:
		return errors.New("-nodes must be within 0..32")
	case o.sockets < 1 || o.sockets > 16:
		return errors.New("-sockets must be within 1..16")
	case o.nodes == 0 && (o.sockets != 1 || o.killAt != 0):
		return errors.New("-sockets and -kill-at need -nodes")
	case o.nodes == 0:
		return nil
	case o.startServer == "":
		return errors.New("-nodes needs -start-server: the bench runs only nodes it starts")
	case o.nodes > 1 && o.postgres != postgresThrowaway:
		return errors.New("-nodes above 1 needs -postgres throwaway: the nodes share one PostgreSQL, which the bench starts")
	case o.scenario != scenarioDeliver && o.scenario != scenarioIdle:
		return fmt.Errorf("-nodes runs the deliver and idle scenarios, not %s", o.scenario)
	case o.scenario == scenarioDeliver && o.publish != publishSingle:
		return errors.New("-nodes publishes single creates (-publish single): a batch's users have publishers on different nodes")
	case o.nodes > 1 && o.sockets >= o.nodes:
		return fmt.Errorf("-sockets %d: with -nodes %d a user has at most %d sockets on nodes other than its publisher's", o.sockets, o.nodes, o.nodes-1)
	case o.killAt < 0 || o.killAt > 0 && (o.nodes < 2 || o.scenario != scenarioDeliver || o.killAt >= o.duration):
		return errors.New("-kill-at needs -nodes 2 or more and the deliver scenario, and must fall within -duration")
	case o.scenario == scenarioDeliver && o.n*o.sockets > o.perProcess:
		return fmt.Errorf("-n %d × -sockets %d exceeds -per-process %d: only idle spreads over processes", o.n, o.sockets, o.perProcess)
	}
	return nil
}
