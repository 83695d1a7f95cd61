package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
)

var clusterLine = regexp.MustCompile(`cluster: (\S+) at (\S+)\)`)

// clusterNode is a herald serve process of a test cluster.
type clusterNode struct {
	*proc
	id, addr string
	env      []string
}

// testCluster starts n nodes on one fresh PostgreSQL database: the first lists no
// peer, each other lists the first. It returns once every node has a route to every
// other (herald_cluster_routes) and answers /readyz 200.
type testCluster struct {
	t     *testing.T
	bin   string
	db    string
	nodes []*clusterNode
}

func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, bin: buildHerald(t), db: pgtest.Shared(t).NewDatabase(t)}
	for i := range n {
		peers := ""
		if i > 0 {
			peers = c.nodes[0].addr
		}
		c.nodes = append(c.nodes, c.start(fmt.Sprintf("n%d", i+1), "127.0.0.1:0", peers, extra...))
	}
	c.waitMesh()
	return c
}

// nodeEnv is the environment of a test cluster's node id on database db: no rate
// limits, a small pool, and extra.
func nodeEnv(db, id string, extra ...string) []string {
	return append([]string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1",
		"HERALD_DATABASE_URL=" + db, "HERALD_DB_MAX_CONNS=8", "HERALD_LOG_LEVEL=warn", "HERALD_NODE_ID=" + id,
		"HERALD_USER_RATE=0", "HERALD_USER_READ_RATE=0", "HERALD_SERVICE_RATE=0"}, extra...)
}

// start runs one node; it returns once the node has printed its ready line.
func (c *testCluster) start(id, addr, peers string, extra ...string) *clusterNode {
	t := c.t
	t.Helper()
	env := nodeEnv(c.db, id, append([]string{"HERALD_CLUSTER_ADDR=" + addr, "HERALD_CLUSTER_PEERS=" + peers}, extra...)...)
	node := &clusterNode{proc: startHerald(t, c.bin, env), env: env}
	if m := clusterLine.FindStringSubmatch(node.ready); m != nil {
		node.id, node.addr = m[1], m[2]
	}
	if node.addr == "" || node.id != id {
		t.Fatalf("node %s: no cluster address in its ready line", id)
	}
	return node
}

// waitMesh waits until every running node routes to every other and is ready.
func (c *testCluster) waitMesh() {
	c.t.Helper()
	want := float64(len(c.nodes) - 1)
	for _, n := range c.nodes {
		poll.Until(c.t, fmt.Sprintf("node %s routes to the %v others and is ready", n.id, want), 30*time.Second, func() bool {
			code, _ := request(c.t, "GET", n.base+"/readyz", "", "")
			return code == 200 && scrape(c.t, n.base, "herald_cluster_routes") == want
		})
	}
}

// scrape reads one metric without labels from base's /metrics (-1 when absent).
func scrape(t *testing.T, base, name string) float64 {
	t.Helper()
	_, b := request(t, "GET", base+"/metrics", "", "")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// wsFrame is what a test socket reads: the log frames' fields.
type wsFrame struct {
	Event  string          `json:"event"`
	Seq    int64           `json:"seq"`
	Unread int64           `json:"unread"`
	Data   json.RawMessage `json:"data"`
	Ref    string          `json:"ref"`
}

// testSocket is a real WebSocket client whose frames a goroutine reads into a channel.
type testSocket struct {
	c      *websocket.Conn
	frames chan wsFrame
	err    chan error
}

func dialTestSocket(t *testing.T, base, user, query string) *testSocket {
	t.Helper()
	tok, _ := auth.SignUserToken([]byte(secret), user, "", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/notifications/ws?token="+tok+query, nil)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", base, user, err)
	}
	c.SetReadLimit(1 << 22)
	s := &testSocket{c: c, frames: make(chan wsFrame, 100000), err: make(chan error, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				s.err <- err
				return
			}
			var f wsFrame
			if err := json.Unmarshal(b, &f); err != nil {
				s.err <- fmt.Errorf("frame %s: %w", b, err)
				return
			}
			if f.Event == "pong" {
				continue
			}
			s.frames <- f
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return s
}

// next returns the socket's next frame, failing the test after wait.
func (s *testSocket) next(t *testing.T, wait time.Duration) wsFrame {
	t.Helper()
	select {
	case f := <-s.frames:
		return f
	case err := <-s.err:
		t.Fatalf("socket ended: %v", err)
	case <-time.After(wait):
		t.Fatalf("no frame within %s", wait)
	}
	return wsFrame{}
}

// snapshot reads the first frame, which must be the unread snapshot.
func (s *testSocket) snapshot(t *testing.T) wsFrame {
	t.Helper()
	f := s.next(t, 20*time.Second)
	if f.Event != "unread-notifications" {
		t.Fatalf("first frame %+v, want the unread snapshot", f)
	}
	return f
}

// logOf reads the events feed of user from base: every entry's event and seq.
func logOf(t *testing.T, base, user string) []wsFrame {
	t.Helper()
	tok, _ := auth.SignUserToken([]byte(secret), user, "", time.Hour)
	var all []wsFrame
	since := int64(0)
	for {
		code, b := request(t, "GET", fmt.Sprintf("%s/notifications/events?since=%d&limit=500", base, since), tok, "")
		if code != 200 {
			t.Fatalf("events: %d %s", code, b)
		}
		var page struct {
			Data []wsFrame `json:"data"`
			Next *int64    `json:"next"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatalf("events %s: %v", b, err)
		}
		all = append(all, page.Data...)
		if page.Next == nil {
			return all
		}
		since = *page.Next
	}
}

func brief(fs []wsFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf("%d:%s:%d", f.Seq, f.Event, f.Unread)
	}
	return out
}

// TestClusterDeliversAcrossNodes: a create on node 1 reaches the user's sockets on
// nodes 2 and 3, a mark-read frame on 2 reaches 1 and 3, a REST read-all on 3 reaches
// all of them; every socket gets exactly the log 1..N, with the right unread count.
func TestClusterDeliversAcrossNodes(t *testing.T) {
	c := startCluster(t, 3)
	socks := make([]*testSocket, 3)
	for i, n := range c.nodes {
		socks[i] = dialTestSocket(t, n.base, "ada", "")
		socks[i].snapshot(t)
	}
	const creates = 20
	var first string
	for i := range creates {
		code, b := request(t, "POST", c.nodes[0].base+"/notifications", "k1", fmt.Sprintf(`{"receiverId":"ada","type":"t","payload":{"i":%d}}`, i))
		if code != 201 {
			t.Fatalf("create on node 1: %d %s", code, b)
		}
		if i == 0 {
			var n struct{ ID string }
			_ = json.Unmarshal(b, &n)
			first = n.ID
		}
	}
	got := make([][]wsFrame, 3)
	read := func(want int) {
		for i, s := range socks {
			for len(got[i]) < want {
				got[i] = append(got[i], s.next(t, 10*time.Second))
			}
		}
	}
	read(creates)
	if err := socks[1].c.Write(context.Background(), websocket.MessageText, []byte(`{"event":"mark-read","data":{"id":"`+first+`"}}`)); err != nil {
		t.Fatal(err)
	}
	read(creates + 1)
	tok, _ := auth.SignUserToken([]byte(secret), "ada", "", time.Hour)
	if code, b := request(t, "PATCH", c.nodes[2].base+"/notifications/read-all", tok, ""); code != 200 {
		t.Fatalf("read-all on node 3: %d %s", code, b)
	}
	read(creates + 2)
	want := logOf(t, c.nodes[1].base, "ada")
	if len(want) != creates+2 {
		t.Fatalf("the store has %d entries, want %d", len(want), creates+2)
	}
	for i := range want {
		if want[i].Seq != int64(i+1) {
			t.Fatalf("store entry %d has seq %d", i, want[i].Seq)
		}
	}
	if last := want[len(want)-1]; last.Event != "all-notifications-read" || last.Unread != 0 || want[creates].Event != "notification-read" || want[creates].Unread != creates-1 {
		t.Fatalf("store log ends %v", brief(want[creates:]))
	}
	for i := range socks {
		if !slices.Equal(brief(got[i]), brief(want)) {
			t.Errorf("socket on node %d got %v\nwant %v", i+1, brief(got[i]), brief(want))
		}
	}
}

// TestClusterInterestRace: a socket opened on node 2 right before a write on node 1,
// with nothing written after, still gets the entry: the node's head check after its
// new subscription has had time to spread finds what the bus dropped.
func TestClusterInterestRace(t *testing.T) {
	c := startCluster(t, 2)
	const rounds = 100
	misses := 0
	for i := range rounds {
		user := fmt.Sprintf("race-%d", i)
		s := dialTestSocket(t, c.nodes[1].base, user, "")
		// The write goes out as soon as the handshake is done, while the new inbox
		// reads its snapshot and its subscription spreads.
		if code, b := request(t, "POST", c.nodes[0].base+"/notifications", "k1", `{"receiverId":"`+user+`","type":"t"}`); code != 201 {
			t.Fatalf("create: %d %s", code, b)
		}
		if f := s.snapshot(t); f.Seq == 1 {
			s.c.CloseNow()
			continue // the snapshot has it: the read came after the commit
		}
		select {
		case f := <-s.frames:
			if f.Seq != 1 || f.Event != "new-notification" {
				t.Fatalf("round %d: frame %+v, want seq 1", i, f)
			}
		case err := <-s.err:
			t.Fatalf("round %d: socket ended: %v", i, err)
		case <-time.After(10 * time.Second):
			misses++
		}
		s.c.CloseNow()
	}
	if misses > 0 {
		t.Fatalf("%d of %d rounds never got the entry", misses, rounds)
	}
	t.Logf("head checks repaired %v entries in %d rounds", scrape(t, c.nodes[1].base, "herald_head_check_repaired_entries_total"), rounds)
}

// TestClusterRefusesEmbeddedStore: cluster settings without HERALD_DATABASE_URL refuse
// to start, naming the variable.
func TestClusterRefusesEmbeddedStore(t *testing.T) {
	for _, kv := range []string{"HERALD_CLUSTER_ADDR=127.0.0.1:0", "HERALD_NATS_URL=nats://127.0.0.1:4222"} {
		_, err := checkConfig([]string{"HERALD_JWT_SECRET=" + secret, kv})
		if err == nil || !names(err, "HERALD_DATABASE_URL") || !strings.Contains(err.Error(), "embedded store") {
			t.Errorf("%s on the embedded store: %v, want a refusal naming HERALD_DATABASE_URL", kv, err)
		}
	}
	if _, err := checkConfig([]string{"HERALD_JWT_SECRET=" + secret, "HERALD_CLUSTER_PEERS=127.0.0.1:7000", "HERALD_DATABASE_URL=postgres://x/y"}); err == nil || !names(err, "HERALD_CLUSTER_PEERS") {
		t.Errorf("peers without a cluster address: %v", err)
	}
}

// collect reads frames from s until it has n log frames (snapshots skipped), within
// wait for each.
func (s *testSocket) collect(t *testing.T, n int, wait time.Duration) []wsFrame {
	t.Helper()
	var got []wsFrame
	for len(got) < n {
		if f := s.next(t, wait); f.Event != "unread-notifications" {
			got = append(got, f)
		}
	}
	return got
}

// drain returns the frames s read before its connection ended, once it has.
func (s *testSocket) drain(t *testing.T) []wsFrame {
	t.Helper()
	var got []wsFrame
	for {
		select {
		case f := <-s.frames:
			got = append(got, f)
		case <-s.err:
			for {
				select {
				case f := <-s.frames:
					got = append(got, f)
				default:
					return got
				}
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the socket did not end within 20 s")
		}
	}
}

func create(t *testing.T, base, user string, i int) {
	t.Helper()
	if code, b := request(t, "POST", base+"/notifications", "k1", fmt.Sprintf(`{"receiverId":%q,"type":"t","payload":{"i":%d}}`, user, i)); code != 201 {
		t.Fatalf("create on %s: %d %s", base, code, b)
	}
}

// TestClusterConcurrentPublishers: publishers on all three nodes at once for one user,
// with sockets on all three: every socket gets 1..N in order, the same as the store's
// log.
func TestClusterConcurrentPublishers(t *testing.T) {
	c := startCluster(t, 3)
	socks := make([]*testSocket, 3)
	for i, n := range c.nodes {
		socks[i] = dialTestSocket(t, n.base, "zed", "")
		socks[i].snapshot(t)
	}
	const each = 60
	var wg sync.WaitGroup
	errs := make(chan string, 3*each)
	for _, n := range c.nodes {
		for p := range 2 { // two publishers per node
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each / 2 {
					code, b := request(t, "POST", n.base+"/notifications", "k1", fmt.Sprintf(`{"receiverId":"zed","type":"t","payload":{"p":%d,"i":%d}}`, p, i))
					if code != 201 {
						errs <- fmt.Sprintf("create on %s: %d %s", n.id, code, b)
					}
				}
			}()
		}
	}
	began := time.Now()
	wg.Wait()
	t.Logf("%d creates from 6 publishers on 3 nodes in %s", 3*each, time.Since(began))
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	want := logOf(t, c.nodes[0].base, "zed")
	if len(want) != 3*each || want[len(want)-1].Seq != 3*each || want[len(want)-1].Unread != 3*each {
		t.Fatalf("the store's log: %d entries, ending %v", len(want), brief(want[len(want)-1:]))
	}
	for i, s := range socks {
		if got := s.collect(t, 3*each, 10*time.Second); !slices.Equal(brief(got), brief(want)) {
			t.Errorf("socket on node %d got %v\nwant %v", i+1, brief(got), brief(want))
		}
	}
}

// TestClusterSurvivesStoppedNode: with one node stopped (SIGSTOP, a partition for 5 s)
// the others keep delivering to their sockets, and once it resumes its own socket gets
// everything it missed, in order.
func TestClusterSurvivesStoppedNode(t *testing.T) {
	c := startCluster(t, 3)
	socks := make([]*testSocket, 3)
	for i, n := range c.nodes {
		socks[i] = dialTestSocket(t, n.base, "kim", "")
		socks[i].snapshot(t)
	}
	create(t, c.nodes[0].base, "kim", 0)
	for _, s := range socks {
		s.collect(t, 1, 10*time.Second)
	}
	stopped := c.nodes[2].cmd.Process
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = stopped.Signal(syscall.SIGCONT)
		}
	}()
	// While it is stopped, each create on node 1 reaches node 2 before the next is made.
	stop := time.Now()
	var worst time.Duration
	n := 1
	for time.Since(stop) < 5*time.Second {
		start := time.Now()
		create(t, c.nodes[0].base, "kim", n)
		n++
		if f := socks[1].next(t, 3*time.Second); f.Seq != int64(n) {
			t.Fatalf("node 2 got %+v while node 3 was stopped, want seq %d", f, n)
		}
		worst = max(worst, time.Since(start))
		if f := socks[0].next(t, 3*time.Second); f.Seq != int64(n) {
			t.Fatalf("node 1 got %+v while node 3 was stopped, want seq %d", f, n)
		}
	}
	t.Logf("%d creates while node 3 was stopped for 5 s; slowest create->node 2 socket: %s", n-1, worst)
	if err := stopped.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	got := socks[2].collect(t, n-1, 20*time.Second)
	for i, f := range got {
		if f.Seq != int64(i+2) {
			t.Fatalf("the resumed node's socket got %v, want seqs 2..%d", brief(got), n)
		}
	}
}

// TestClusterKilledNode: a node killed under load loses nothing: its clients resume on
// another node with since and get exactly what they missed, and the surviving nodes'
// sockets get every entry meanwhile.
func TestClusterKilledNode(t *testing.T) {
	c := startCluster(t, 3)
	const users = 20
	victims := make([]*testSocket, users)   // on node 3, which is killed
	survivors := make([]*testSocket, users) // on node 2
	for u := range users {
		victims[u] = dialTestSocket(t, c.nodes[2].base, fmt.Sprintf("k%d", u), "")
		victims[u].snapshot(t)
		survivors[u] = dialTestSocket(t, c.nodes[1].base, fmt.Sprintf("k%d", u), "")
		survivors[u].snapshot(t)
	}
	const rounds = 30
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range rounds {
			for u := range users {
				code, _ := request(t, "POST", c.nodes[0].base+"/notifications", "k1", fmt.Sprintf(`{"receiverId":"k%d","type":"t","payload":{"r":%d}}`, u, r))
				if code != 201 {
					t.Errorf("create: %d", code)
					return
				}
			}
		}
	}()
	// Kill node 3 once every victim has had something.
	last := make([]int64, users)
	for u, s := range victims {
		last[u] = s.collect(t, 1, 10*time.Second)[0].Seq
	}
	_ = c.nodes[2].cmd.Process.Signal(syscall.SIGKILL)
	_ = c.nodes[2].cmd.Wait()
	// The victims read what reached them before the kill, then resume on node 1.
	for u, s := range victims {
		for _, f := range s.drain(t) {
			if f.Seq != last[u]+1 {
				t.Fatalf("user %d on the killed node: seq %d after %d", u, f.Seq, last[u])
			}
			last[u] = f.Seq
		}
	}
	<-done
	for u := range users {
		user := fmt.Sprintf("k%d", u)
		s := dialTestSocket(t, c.nodes[0].base, user, fmt.Sprintf("&since=%d", last[u]))
		got := s.collect(t, rounds-int(last[u]), 10*time.Second)
		for i, f := range got {
			if f.Seq != last[u]+int64(i)+1 {
				t.Fatalf("user %d resumed after %d: got %v", u, last[u], brief(got))
			}
		}
		if sv := survivors[u].collect(t, rounds, 10*time.Second); sv[rounds-1].Seq != rounds {
			t.Fatalf("user %d's socket on a surviving node: %v", u, brief(sv))
		}
	}
}

// TestClusterRejoin: a node restarted, and a fourth node joining through a member other
// than the first, deliver both ways without any other node restarting.
func TestClusterRejoin(t *testing.T) {
	c := startCluster(t, 3)
	n2 := c.nodes[1]
	_ = n2.cmd.Process.Signal(syscall.SIGTERM)
	if err := n2.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	c.nodes[1] = c.start("n2", "127.0.0.1:0", c.nodes[0].addr)
	c.nodes = append(c.nodes, c.start("n4", "127.0.0.1:0", c.nodes[2].addr))
	c.waitMesh()
	for i, from := range c.nodes {
		user := fmt.Sprintf("j%d", i)
		socks := make([]*testSocket, 0, len(c.nodes)-1)
		for j, n := range c.nodes {
			if j != i {
				s := dialTestSocket(t, n.base, user, "")
				s.snapshot(t)
				socks = append(socks, s)
			}
		}
		create(t, from.base, user, 1)
		for _, s := range socks {
			if f := s.collect(t, 1, 10*time.Second)[0]; f.Seq != 1 {
				t.Fatalf("a create on %s reached another node as %+v", from.id, f)
			}
		}
	}
}

// TestClusterExternalNATS: with HERALD_NATS_URL the nodes embed no server and meet on
// an external NATS (a real nats-server on loopback, run by the test), with the same
// delivery across nodes.
func TestClusterExternalNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown) // after the nodes' cleanups, which stop them

	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	url := ns.ClientURL()
	c := &testCluster{t: t, bin: buildHerald(t), db: pgtest.Shared(t).NewDatabase(t)}
	var bases []string
	for _, id := range []string{"x1", "x2"} {
		p := startHerald(t, c.bin, nodeEnv(c.db, id, "HERALD_NATS_URL="+url))
		bases = append(bases, p.base)
		line := p.ready
		if !strings.Contains(line, "cluster: "+id+" via "+url) {
			t.Fatalf("ready line %q does not name the external NATS", line)
		}
	}
	s := dialTestSocket(t, bases[1], "eve", "")
	s.snapshot(t)
	poll.Until(t, "node 2 subscribed", 10*time.Second, func() bool { return scrape(t, bases[1], "herald_cluster_subscriptions") == 1 })
	create(t, bases[0], "eve", 1)
	if f := s.collect(t, 1, 10*time.Second)[0]; f.Seq != 1 || f.Event != "new-notification" {
		t.Fatalf("frame %+v", f)
	}
}

// TestClusterRefusesPoolBeyondMaxConnections: a node whose pool alone exceeds
// PostgreSQL's max_connections refuses to start, naming HERALD_DB_MAX_CONNS.
func TestClusterRefusesPoolBeyondMaxConnections(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	cmd := exec.Command(buildHerald(t), "serve")
	cmd.Env = append(os.Environ(), "HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET="+secret, "HERALD_DATABASE_URL="+db,
		"HERALD_CLUSTER_ADDR=127.0.0.1:0", "HERALD_DB_MAX_CONNS=100000")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HERALD_DB_MAX_CONNS") || !strings.Contains(string(out), "max_connections") {
		t.Fatalf("a pool of 100000 in a cluster: %v\n%s", err, out)
	}
}
