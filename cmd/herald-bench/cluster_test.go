package main

import (
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNodes runs the bench on two herald nodes it starts as one cluster on a throwaway
// PostgreSQL, at a tiny scale: deliver with every socket on the other node than its
// publisher's, deliver with a node killed halfway, and idle over both nodes and child
// processes. Nothing may be lost or duplicated, and the throwaway cluster and the nodes
// must be gone afterwards.
func TestNodes(t *testing.T) {
	needPostgres(t)
	bin := buildHerald(t)
	outDir := t.TempDir() // before TMPDIR changes
	tmp := privateTmp(t)
	common := []string{"-start-server", bin, "-postgres", "throwaway", "-nodes", "2", "-n", "20",
		"-drain", "30s", "-connect-timeout", "30s"}
	runNodes := func(t *testing.T, name string, args ...string) (*Result, string, string) {
		t.Helper()
		out := filepath.Join(outDir, name+".json")
		args = append(append(append([]string{}, common...), args...), "-out", out)
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		r, err := readResult(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Checks {
			if !c.OK {
				t.Errorf("check %q: %d", c.Name, c.Count)
			}
		}
		clusterGone(t, stdout.String(), tmp)
		return r, stdout.String(), stderr.String()
	}

	t.Run("deliver across nodes", func(t *testing.T) {
		// 2 s: the progress line comes each second, so a 1 s run may end before the first.
		r, md, stderr := runNodes(t, "deliver", "-scenario", "deliver", "-rate", "100", "-duration", "2s", "-publishers", "4")
		// Both nodes joined one cluster, each named with its cluster address.
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`- node 1: http://127\.0\.0\.1:\d+ \(node bench-node-1 at 127\.0\.0\.1:\d+, started by the bench, pid \d+, store: postgres\)`),
			regexp.MustCompile(`- node 2: http://127\.0\.0\.1:\d+ \(node bench-node-2 at 127\.0\.0\.1:\d+, `),
			regexp.MustCompile(`- PostgreSQL pool per node \(HERALD_DB_MAX_CONNS\): \d+`),
		} {
			if !want.MatchString(md) {
				t.Errorf("the conditions lack %s:\n%s", want, md)
			}
		}
		acked, delivered := metricValue(t, r, "published (201)"), metricValue(t, r, "delivered")
		if acked == 0 || delivered != acked {
			t.Errorf("published %v, delivered %v: want equal and positive (one socket per user)", acked, delivered)
		}
		// Half the users publish on each node and listen on the other: both nodes
		// received, everything crossed the bus, and the head checks were read.
		n1, n2 := metricValue(t, r, "node 1: received"), metricValue(t, r, "node 2: received")
		if n1 == 0 || n2 == 0 || n1+n2 != delivered {
			t.Errorf("node 1 received %v, node 2 %v, of %v delivered", n1, n2, delivered)
		}
		if v := metricValue(t, r, "bus messages received/s (all nodes)"); v == 0 {
			t.Errorf("no bus messages received: the sockets were not on other nodes than the publishers'")
		}
		metricValue(t, r, "head checks/s (all nodes)")
		metricValue(t, r, "node 2: latency (publish to socket) p99")
		if r.Params.Nodes != 2 || r.Params.Sockets != 1 {
			t.Errorf("params %+v: want 2 nodes, 1 socket per user", r.Params)
		}
		if !strings.Contains(stderr, "deliver 1s: published ") {
			t.Errorf("no progress line on stderr:\n%s", stderr)
		}
		var sum lockedBuffer
		if code := run(t.Context(), []string{"-summarize", filepath.Join(outDir, "deliver.json")}, nil, &sum, io.Discard); code != exitOK {
			t.Fatalf("-summarize: exit status %d", code)
		}
		if rows := tableRows(t, sum.String()); !strings.HasPrefix(rows[0][0], "deliver, single, 2 node(s), 1 socket(s) per user") || rows[0][9] != "0 / 0" {
			t.Errorf("summary row %q", rows[0])
		} else if notes := rows[0][11]; !strings.Contains(notes, "; bus ") || !strings.Contains(notes, "head checks ") || !strings.Contains(notes, "load average ") {
			t.Errorf("the summary's notes lack the bus, head checks or load: %q", notes)
		}
	})

	t.Run("deliver with a node killed", func(t *testing.T) {
		r, _, _ := runNodes(t, "kill", "-scenario", "deliver", "-rate", "100", "-duration", "3s", "-kill-at", "1s",
			"-publishers", "4", "-quiet")
		// User u's socket is on node 2 when u publishes on node 1: the even users.
		if v := metricValue(t, r, "sockets on node 2 when it was killed"); v != 10 {
			t.Errorf("%v sockets on node 2 when it was killed, want 10", v)
		}
		if v := metricValue(t, r, "of them resumed on another node with since"); v != 10 {
			t.Errorf("%v sockets resumed, want 10", v)
		}
		if v := metricValue(t, r, "time until every socket of the killed node resumed elsewhere"); v <= 0 {
			t.Errorf("resumed after %vs", v)
		}
		if acked, delivered := metricValue(t, r, "published (201)"), metricValue(t, r, "delivered"); acked == 0 || delivered < acked {
			t.Errorf("published %v, delivered %v", acked, delivered)
		}
		if notes := nodesNotes(r); !strings.Contains(notes, "; node 2 SIGKILLed: its 10 sockets resumed elsewhere in ") {
			t.Errorf("the summary's notes do not tell the kill: %q", notes)
		}
	})

	t.Run("idle over nodes and child processes", func(t *testing.T) {
		r, md, _ := runNodes(t, "idle", "-scenario", "idle", "-duration", "1s", "-per-process", "4", "-quiet")
		if v := metricValue(t, r, "connected"); v != 20 {
			t.Errorf("connected %v, want 20", v)
		}
		metricValue(t, r, "server RSS per connection")
		// 10 users a node, at most 4 a process: 3 children each.
		if !strings.Contains(md, "- bench processes holding them: 6\n") {
			t.Errorf("want 6 child processes:\n%s", md)
		}
	})
}

// TestNodesFlags checks what -nodes refuses, with the flag to change.
func TestNodesFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-scenario", "deliver", "-nodes", "2", "-start-server", "x"}, "-nodes above 1 needs -postgres throwaway"},
		{[]string{"-scenario", "deliver", "-nodes", "2", "-postgres", "throwaway"}, "-postgres needs -start-server"},
		{[]string{"-scenario", "deliver", "-nodes", "2", "-jwt-secret", "s", "-api-key", "k"}, "-nodes needs -start-server"},
		{[]string{"-scenario", "deliver", "-nodes", "3", "-sockets", "3", "-start-server", "x", "-postgres", "throwaway"}, "-sockets 3: with -nodes 3 a user has at most 2 sockets"},
		{[]string{"-scenario", "deliver", "-nodes", "2", "-publish", "batch", "-start-server", "x", "-postgres", "throwaway"}, "-nodes publishes single creates"},
		{[]string{"-scenario", "broadcast", "-nodes", "2", "-start-server", "x", "-postgres", "throwaway"}, "-nodes runs the deliver and idle scenarios"},
		{[]string{"-scenario", "deliver", "-nodes", "1", "-kill-at", "1s", "-start-server", "x"}, "-kill-at needs -nodes 2 or more"},
		{[]string{"-scenario", "deliver", "-sockets", "2", "-start-server", "x"}, "-sockets and -kill-at need -nodes"},
		{[]string{"-scenario", "deliver", "-nodes", "3", "-sockets", "2", "-n", "10000", "-start-server", "x", "-postgres", "throwaway"}, "-n 10000 × -sockets 2 exceeds -per-process 18000"},
		{[]string{"-scenario", "deliver", "-server-procs", "1", "-jwt-secret", "s", "-api-key", "k"}, "-server-procs needs -start-server"},
		{[]string{"-scenario", "deliver", "-server-procs", "-1", "-start-server", "x"}, "-server-procs must be within 0..1024"},
	} {
		_, err := parseOptions(tt.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
	if _, err := parseOptions([]string{"-scenario", "idle", "-nodes", "6", "-n", "100000", "-start-server", "x", "-postgres", "throwaway"}, io.Discard); err != nil {
		t.Errorf("idle over 6 nodes: %v", err)
	}
}

// TestPlacement checks that no socket of a user is on its publisher's node and that
// its sockets are on distinct nodes, and that idle connections split evenly.
func TestPlacement(t *testing.T) {
	for nodes := 2; nodes <= 6; nodes++ {
		perNode := make([]int, nodes)
		for u := range 600 {
			seen := map[int]bool{publisherNode(u, nodes): true}
			perNode[publisherNode(u, nodes)]++
			for c := range nodes - 1 {
				n := socketNode(u, c, nodes)
				if seen[n] {
					t.Fatalf("%d nodes, user %d: socket %d on node %d, already the publisher's or another socket's", nodes, u, c, n)
				}
				seen[n] = true
			}
		}
		for i, k := range perNode {
			if k != 600/nodes {
				t.Errorf("%d nodes: %d users publish on node %d, want %d", nodes, k, i, 600/nodes)
			}
		}
	}
	if socketNode(7, 1, 1) != 0 {
		t.Error("on one node every socket is on it")
	}
	counts := make([]int, 6)
	for u := range 100_000 {
		counts[idleNode(u, 100_000, 6)]++
	}
	for i, k := range counts {
		if k < 16_666 || k > 16_667 {
			t.Errorf("node %d holds %d of 100,000 idle connections", i, k)
		}
	}
}

func TestSplitClusterStore(t *testing.T) {
	store, id, addr, ok := splitClusterStore("postgres; cluster: bench-node-2 at 127.0.0.1:4242")
	if !ok || store != "postgres" || id != "bench-node-2" || addr != "127.0.0.1:4242" {
		t.Errorf("got %q %q %q %v", store, id, addr, ok)
	}
	if store, _, _, ok := splitClusterStore("postgres"); ok || store != "postgres" {
		t.Errorf("a lone node: %q %v", store, ok)
	}
	if _, _, _, ok := splitClusterStore("postgres; cluster: "); ok {
		t.Error("an empty cluster part is no cluster")
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP herald_cluster_routes Other nodes.
# TYPE herald_cluster_routes gauge
herald_cluster_routes 2
herald_cluster_faults_total{kind="disconnect"} 1
herald_cluster_faults_total{kind="route_lost"} 3
herald_head_checks_total 1.5e+06
weird{a="}"} 4
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"herald_cluster_routes": 2, "herald_cluster_faults_total": 4, "herald_head_checks_total": 1.5e6, "weird": 4}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := parseMetrics(strings.NewReader("herald_x{kind=\"a\" 1\n")); err == nil {
		t.Error("a line without its closing brace is an error")
	}
}

// TestOneNodeSockets runs -nodes 1 on the embedded store with two sockets per user: the
// baseline of a cluster run on the same client. Each socket is held to every
// notification, so twice as many receipts as notifications.
func TestOneNodeSockets(t *testing.T) {
	bin := buildHerald(t)
	out := filepath.Join(t.TempDir(), "one.json")
	args := []string{"-start-server", bin, "-nodes", "1", "-sockets", "2", "-scenario", "deliver", "-n", "10",
		"-rate", "100", "-duration", "1s", "-publishers", "2", "-drain", "10s", "-connect-timeout", "30s", "-quiet", "-out", out}
	var stdout, stderr lockedBuffer
	if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	r, err := readResult(out)
	if err != nil {
		t.Fatal(err)
	}
	acked, delivered := metricValue(t, r, "published (201)"), metricValue(t, r, "delivered")
	if acked == 0 || delivered != 2*acked || metricValue(t, r, "node 1: received") != delivered {
		t.Errorf("published %v, delivered %v (node 1: %v): want every notification on both sockets of its user",
			acked, delivered, metricValue(t, r, "node 1: received"))
	}
	if !strings.HasPrefix(r.Store, "embedded ") || strings.Contains(stdout.String(), "- postgres:") {
		t.Errorf("store %q: want the embedded store without -postgres", r.Store)
	}
	if !r.passed() {
		t.Errorf("checks failed: %+v", r.Checks)
	}
}
