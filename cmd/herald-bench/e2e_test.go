package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestScenariosAgainstTheServer builds the real server, starts it on the embedded store
// with the events scenario's rule, and runs every scenario at a tiny scale: nothing may
// be lost or duplicated.
func TestScenariosAgainstTheServer(t *testing.T) {
	bin := buildHerald(t)
	secret, key := randomSecret(), "bench-test-"+randomSecret()
	var logs lockedBuffer
	srv, err := startServer(t.Context(), bin, secret, key, []byte(fanoutRules), nil, &logs)
	if err != nil {
		t.Fatalf("starting the server: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
		if t.Failed() {
			t.Logf("server output:\n%s", logs.String())
		}
	})
	probeWebSocket(t, srv)

	common := []string{
		"-url", srv.base, "-server-pid", strconv.Itoa(srv.pid), "-jwt-secret", secret, "-api-key", key,
		"-n", "20", "-duration", "2s", "-drain", "10s", "-connect-timeout", "30s", "-quiet",
	}
	tests := []struct {
		name string
		args []string
		// delivered is the metric that must equal the acknowledged count ("" for idle).
		delivered, acked string
	}{
		{name: "idle", args: []string{"-scenario", "idle"}},
		{name: "idle over 3 child processes", args: []string{"-scenario", "idle", "-per-process", "8", "-source-ips", "2"}},
		{name: "idle-unread", args: []string{"-scenario", "idle-unread", "-unread", "3", "-unread-bytes", "200"}},
		{name: "deliver single", args: []string{"-scenario", "deliver", "-rate", "200"}, delivered: "delivered", acked: "published (201)"},
		{name: "deliver batch and single", args: []string{"-scenario", "deliver", "-rate", "400", "-publish", "both", "-batch-size", "10", "-publishers", "4"}, delivered: "delivered", acked: "published (201)"},
		// 7 receivers a body: each user's receipt is booked under its own marker, and a
		// misrouted or unknown one fails the checks.
		{name: "deliver multicast", args: []string{"-scenario", "deliver", "-rate", "400", "-publish", "multicast", "-batch-size", "7", "-publishers", "4"}, delivered: "delivered", acked: "published (201)"},
		{name: "broadcast", args: []string{"-scenario", "broadcast", "-rounds", "2"}, delivered: "delivered", acked: "acknowledged notifications"},
		{name: "reconnect-storm", args: []string{"-scenario", "reconnect-storm", "-rate", "200"}, delivered: "delivered", acked: "published (201)"},
		{name: "events", args: []string{"-scenario", "events", "-rate", "40", "-fanout", "7", "-publishers", "4"}, delivered: "delivered", acked: "notifications stored"},
		{name: "events flat out", args: []string{"-scenario", "events", "-rate", "0", "-fanout", "20", "-duration", "1s", "-publishers", "2"}, delivered: "delivered", acked: "notifications stored"},
	}
	var results []string // for -summarize
	resultsDir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(resultsDir, strconv.Itoa(i)+".json")
			results = append(results, out)
			args := append(append(append([]string{}, common...), tt.args...), "-out", out)
			r, stdout, _ := runResult(t, args, out)
			for _, c := range r.Checks {
				if !c.OK {
					t.Errorf("check %q: %d", c.Name, c.Count)
				}
			}
			if !strings.Contains(stdout, "| measure | value |") {
				t.Errorf("no Markdown table on stdout:\n%s", stdout)
			}
			if tt.delivered == "" {
				if got := metricValue(t, &r, "connected"); got != 20 {
					t.Errorf("connected %v, want 20", got)
				}
				if r.Scenario == scenarioIdleUnread {
					if got := metricValue(t, &r, "unread notifications seeded"); got != 60 {
						t.Errorf("seeded %v, want 60 (20 users × 3)", got)
					}
					if len(r.Notes) == 0 || !strings.Contains(strings.Join(r.Notes, "\n"), "not restarted") {
						t.Errorf("no note that the server was not restarted after seeding: %q", r.Notes)
					}
				}
				return
			}
			if r.Scenario == scenarioBroadcast {
				// One chunk a round: a commit each, from the server's own histograms.
				if commits := metricValue(t, &r, "store commits (server)"); commits < 2 {
					t.Errorf("%v store commits reported for 2 rounds", commits)
				}
				metricValue(t, &r, "commit time (server: one transaction) p50")
			}
			acked, delivered := metricValue(t, &r, tt.acked), metricValue(t, &r, tt.delivered)
			if acked == 0 || delivered != acked {
				t.Errorf("acknowledged %v, delivered %v: want equal and positive", acked, delivered)
			}
			if r.Scenario == scenarioEvents {
				fanout := float64(7)
				if tt.name == "events flat out" {
					fanout = 20
				}
				if events := metricValue(t, &r, "events accepted (202)"); events == 0 || acked != events*fanout {
					t.Errorf("%v events accepted, %v notifications stored: want %v each", events, acked, fanout)
				}
			}
		})
	}

	// One row for each result, every cell the scenario has filled in.
	t.Run("summarize", func(t *testing.T) {
		if len(results) != len(tests) {
			t.Skipf("needs the results of all %d scenario subtests (%d ran)", len(tests), len(results))
		}
		missing := filepath.Join(resultsDir, "never-written.json")
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), append([]string{"-summarize"}, append(results, missing)...), nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit status %d\n%s", code, stderr.String())
		}
		rows := tableRows(t, stdout.String())
		if len(rows) != len(tests)+1 {
			t.Fatalf("%d rows for %d results and a missing one:\n%s", len(rows), len(tests), stdout.String())
		}
		for i, tt := range tests {
			row := rows[i]
			if !strings.HasPrefix(row[0], tt.args[1]) {
				t.Errorf("row %d is %q, want scenario %s", i, row[0], tt.args[1])
			}
			if row[1] != "—" || row[2] != "20" || row[10] != "ok" {
				t.Errorf("row %d: store %q (want — for a server the bench did not start), N %q, checks %q", i, row[1], row[2], row[10])
			}
			want := map[int]string{4: "achieved", 7: "server CPU", 8: "bench CPU"}
			if tt.delivered != "" {
				want[5], want[9] = "p50 / p99", "lost / dup."
			} else {
				want[6] = "RSS per connection"
			}
			for col, what := range want {
				if strings.Contains(row[col], "—") || row[col] == "" {
					t.Errorf("row %d (%s): %s is %q", i, tt.name, what, row[col])
				}
			}
			if strings.Contains(row[11], "—") {
				t.Errorf("row %d (%s): notes %q lack a figure", i, tt.name, row[11])
			}
			if tt.delivered != "" && row[9] != "0 / 0" {
				t.Errorf("row %d (%s): lost / dup. %q", i, tt.name, row[9])
			}
		}
		if last := rows[len(rows)-1]; last[0] != "never-written" || !strings.Contains(last[10], "no result") {
			t.Errorf("the missing result's row: %q", last)
		}
	})

	// With -start-server, the bench loads its rule into the server it starts.
	t.Run("events on a server the bench starts", func(t *testing.T) {
		args := []string{"-start-server", bin, "-scenario", "events", "-n", "10", "-fanout", "3", "-rate", "50",
			"-duration", "1s", "-drain", "10s", "-connect-timeout", "30s", "-quiet"}
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "| lost (acknowledged, never received) | 0 (ok) |") {
			t.Errorf("no clean result:\n%s", stdout.String())
		}
	})

	// A server without the rule: the bench says which rule to load, before connecting.
	t.Run("events without the rule", func(t *testing.T) {
		var logs lockedBuffer
		bare, err := startServer(t.Context(), bin, secret, key, nil, nil, &logs)
		if err != nil {
			t.Fatalf("starting a server without rules: %v\n%s", err, logs.String())
		}
		defer bare.stop()
		args := []string{"-url", bare.base, "-jwt-secret", secret, "-api-key", key, "-scenario", "events", "-n", "5", "-fanout", "2", "-quiet"}
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitError {
			t.Fatalf("exit status %d, want %d\n%s", code, exitError, stderr.String())
		}
		if !strings.Contains(stderr.String(), "-print-rules") {
			t.Errorf("the error does not point at -print-rules:\n%s", stderr.String())
		}
	})

	t.Run("progress lines", func(t *testing.T) {
		args := append(append([]string{}, common...), "-scenario", "deliver", "-rate", "100")
		args = slicesWithout(args, "-quiet")
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit status %d\n%s", code, stderr.String())
		}
		if !strings.Contains(stderr.String(), "deliver 1s: published ") {
			t.Errorf("no progress line on stderr:\n%s", stderr.String())
		}
	})

	// -window: one row per window, which add up to the run's figures.
	for _, tt := range []struct {
		scenario, acked string
		args            []string
		windows         int
	}{
		{scenarioDeliver, "published (201)", []string{"-rate", "200", "-duration", "2s"}, 4},
		{scenarioEvents, "notifications stored", []string{"-rate", "40", "-fanout", "5", "-publishers", "4", "-duration", "1s"}, 2},
	} {
		t.Run(tt.scenario+" per window", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append(slicesWithout(append([]string{}, common...), "-quiet"), "-scenario", tt.scenario, "-window", "500ms", "-out", out)
			args = append(args, tt.args...)
			r, stdout, stderr := runResult(t, args, out)
			if len(r.Windows) != tt.windows || r.Drift == nil {
				t.Fatalf("%d windows (want %d), drift %v:\n%s", len(r.Windows), tt.windows, r.Drift, stdout)
			}
			var acked, received int64
			for i, w := range r.Windows {
				acked += w.Acked
				received += w.Received
				if w.AckedPerSecond <= 0 || w.LatencyP99 <= 0 || w.RequestP99 <= 0 || w.ServerCPU == nil || w.ServerAnon == nil || *w.ServerAnon <= 0 {
					t.Errorf("window %d lacks a figure: %+v", i+1, w)
				}
				if i > 0 && w.From != r.Windows[i-1].To {
					t.Errorf("window %d starts at %v, the previous ended at %v", i+1, w.From, r.Windows[i-1].To)
				}
			}
			if want := metricValue(t, &r, tt.acked); float64(acked) != want {
				t.Errorf("the windows acknowledged %d in all, the run %v", acked, want)
			}
			if want := metricValue(t, &r, "delivered"); float64(received) != want {
				t.Errorf("the windows received %d in all, the run %v", received, want)
			}
			for _, want := range []string{"### per window", "| 0s–", "drift (last window / first window): to socket p50 ×"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("the report lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.scenario+" window 1 (0s–") {
				t.Errorf("no progress line for the first window:\n%s", stderr)
			}
		})
	}
}

// buildHerald builds the server into a temporary directory and returns its path.
func buildHerald(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the server: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/heraldhq/herald/cmd/herald").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/herald: %v\n%s", err, out)
	}
	return bin
}

// tableRows returns the cells of the rows of the first Markdown table in md, header
// and separator left out.
func tableRows(t *testing.T, md string) [][]string {
	t.Helper()
	var rows [][]string
	seen := false
	for line := range strings.Lines(md) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if seen {
				break
			}
			continue
		}
		seen = true
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 {
		t.Fatalf("no Markdown table in:\n%s", md)
	}
	return rows[2:]
}

// probeWebSocket fails the test at once, with the server's answer, when it does not
// upgrade GET /notifications/ws: every scenario needs the WebSocket.
func probeWebSocket(t *testing.T, srv *target) {
	t.Helper()
	tok, err := mintToken(srv.secret, "bench-probe", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, srv.wsURL()+"?token="+tok, nil)
	if err != nil {
		status := "no answer"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("the server does not upgrade GET %s (%s): %v", srv.wsURL(), status, err)
	}
	conn.CloseNow()
}

func metricValue(t *testing.T, r *Result, name string) float64 {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("no metric %q in %+v", name, r.Metrics)
	return 0
}

func slicesWithout(s []string, drop string) []string {
	out := s[:0:0]
	for _, v := range s {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// runResult runs the bench with args, which write their JSON result to out, and returns
// that result and what the bench printed; a run that does not exit cleanly fails t.
func runResult(t *testing.T, args []string, out string) (r Result, stdout, stderr string) {
	t.Helper()
	var so, se lockedBuffer
	if code := run(t.Context(), args, nil, &so, &se); code != exitOK {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, so.String(), se.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, so.String(), se.String()
}

// TestIdleUnreadRestartsServer: with a server it starts, idle-unread seeds the unread
// state, restarts the server on the same data and then connects: the users' snapshots
// are those of the seeded state, served by a process that did not do the seeding.
func TestIdleUnreadRestartsServer(t *testing.T) {
	bin := buildHerald(t)
	out := filepath.Join(t.TempDir(), "r.json")
	r, _, _ := runResult(t, []string{"-start-server", bin, "-scenario", "idle-unread", "-n", "5", "-unread", "4",
		"-unread-bytes", "100", "-duration", "1s", "-connect-timeout", "30s", "-quiet", "-out", out}, out)
	if got := metricValue(t, &r, "unread notifications seeded"); got != 20 {
		t.Errorf("seeded %v, want 20", got)
	}
	if got := metricValue(t, &r, "connected"); got != 5 {
		t.Errorf("connected %v, want 5", got)
	}
	var restarted string
	for _, c := range r.Conditions {
		if c.Name == "server after seeding" {
			restarted = c.Value
		}
	}
	if !strings.HasPrefix(restarted, "restarted on the same data") {
		t.Errorf("condition \"server after seeding\" is %q", restarted)
	}
	for _, name := range []string{"server RssAnon per connection", "server RSS per connection"} {
		metricValue(t, &r, name)
	}
}

// TestServerProcs: -server-procs sets the GOMAXPROCS of the server the bench starts,
// and the report says what the server itself reports.
func TestServerProcs(t *testing.T) {
	bin := buildHerald(t)
	for _, procs := range []string{"1", "0"} {
		out := filepath.Join(t.TempDir(), "r.json")
		r, _, _ := runResult(t, []string{"-start-server", bin, "-server-procs", procs, "-scenario", "idle", "-n", "2",
			"-duration", "1s", "-connect-timeout", "30s", "-quiet", "-out", out}, out)
		want := procs
		if procs == "0" {
			want = strconv.Itoa(runtime.NumCPU())
		}
		var got string
		for _, c := range r.Conditions {
			if c.Name == "server GOMAXPROCS" {
				got = c.Value
			}
		}
		if got != want {
			t.Errorf("-server-procs %s: the report says server GOMAXPROCS %q, want %q", procs, got, want)
		}
	}
}

func TestUnreadPayload(t *testing.T) {
	for _, n := range []int{12, 100, 500} {
		p := unreadPayload(n)
		if len(p) != n || !json.Valid([]byte(p)) {
			t.Errorf("unreadPayload(%d) = %d bytes, valid JSON %v", n, len(p), json.Valid([]byte(p)))
		}
	}
}
