package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/api/auth"
)

// stalledRequest is the start of a request whose body never comes.
func stalledRequest(method, path, cred string) string {
	r := method + " " + path + " HTTP/1.1\r\nHost: herald\r\nContent-Length: 1000\r\n"
	if cred != "" {
		r += "Authorization: Bearer " + cred + "\r\n"
	}
	return r + "\r\n"
}

// dialSend opens a connection to base and writes req on it.
func dialSend(t *testing.T, base, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	return c
}

// untilClosed reads c until the server closes it, and returns what it read and when
// the close came. A client-side deadline of limit marks a server that never closes.
func untilClosed(t *testing.T, c net.Conn, r io.Reader, limit time.Duration) (string, time.Time) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server did not close the connection within %s (read %q): %v", limit, b, err)
	}
	return string(b), time.Now()
}

// freshClient opens a new connection for each request.
var freshClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// dialSocket opens the WebSocket of user and reads its first frame.
func dialSocket(t *testing.T, base, user string) *websocket.Conn {
	t.Helper()
	tok, _ := auth.SignUserToken([]byte(secret), user, "", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/notifications/ws?token="+tok, nil)
	if err != nil {
		t.Fatalf("dial the WebSocket: %v", err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "unread-notifications") {
		t.Fatalf("first frame: %s %v", b, err)
	}
	return c
}

// createAndReceive creates a notification of type typ for the WebSocket's user and
// waits for its frame on ws.
// Each create is a new client (a new connection).
func createAndReceive(t *testing.T, base string, ws *websocket.Conn, user, typ string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/notifications", strings.NewReader(`{"receiverId":"`+user+`","type":"`+typ+`"}`))
	req.Header.Set("Authorization", "Bearer k1")
	resp, err := freshClient.Do(req)
	if err != nil {
		t.Fatalf("create %s: %v", typ, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %d %s", typ, resp.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("the WebSocket lost its connection waiting for %s: %v", typ, err)
		}
		if strings.Contains(string(b), `"type":"`+typ+`"`) {
			return
		}
	}
}

// TestStalledAndIdleConnectionsClose: a request whose body never comes is answered
// and closed when its read timeout ends, on /healthz (no credentials) and on an
// authenticated create; an idle keep-alive is closed after the idle timeout; a
// WebSocket opened before them outlives both and still receives a notification.
func TestStalledAndIdleConnectionsClose(t *testing.T) {
	const readTimeout, idleTimeout = time.Second, 2 * time.Second
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_API_KEYS=k1", "HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error",
		"HERALD_HTTP_READ_TIMEOUT=" + readTimeout.String(), "HERALD_HTTP_IDLE_TIMEOUT=" + idleTimeout.String()})
	ws := dialSocket(t, p.base, "alice")

	start := time.Now()
	health := dialSend(t, p.base, stalledRequest("GET", "/healthz", ""))
	create := dialSend(t, p.base, stalledRequest("POST", "/notifications", "k1"))
	idle := dialSend(t, p.base, "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive /healthz: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	answered := time.Now()

	// Well within the limit, so that a server that never closes fails here.
	const limit = 10 * time.Second
	for name, c := range map[string]net.Conn{"GET /healthz": health, "POST /notifications": create} {
		got, at := untilClosed(t, c, c, limit)
		if d := at.Sub(start); d < readTimeout/2 || d > readTimeout+3*time.Second {
			t.Errorf("%s with a stalled body closed after %s, want about %s", name, d, readTimeout)
		}
		if !strings.HasPrefix(got, "HTTP/1.1 ") {
			t.Errorf("%s with a stalled body: no answer before the close: %q", name, got)
		}
		t.Logf("%s, stalled body: %q after %s", name, firstLine(got), at.Sub(start).Round(time.Millisecond))
	}
	rest, at := untilClosed(t, idle, br, limit)
	if rest != "" {
		t.Errorf("idle keep-alive received %q", rest)
	}
	if d := at.Sub(answered); d < idleTimeout/2 || d > idleTimeout+3*time.Second {
		t.Errorf("idle keep-alive closed after %s, want about %s", d, idleTimeout)
	}

	// Both deadlines have passed since the WebSocket was opened.
	if d := time.Since(start); d < idleTimeout {
		t.Fatalf("only %s since the WebSocket opened", d)
	}
	createAndReceive(t, p.base, ws, "alice", "after-deadlines")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestHeadersOver64KiB: request line and headers of 64 KiB are served; a byte more is
// 431.
func TestHeadersOver64KiB(t *testing.T) {
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error"})
	for _, tc := range []struct {
		size int
		want int
	}{{64 << 10, 200}, {64<<10 + 1, 431}, {1 << 20, 431}} {
		// The whole header block, its final empty line included, is tc.size bytes.
		head := "GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: close\r\nX-Pad: "
		req := head + strings.Repeat("a", tc.size-len(head)-len("\r\n\r\n")) + "\r\n\r\n"
		if len(req) != tc.size {
			t.Fatalf("built %d bytes, want %d", len(req), tc.size)
		}
		c := dialSend(t, p.base, req)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes of headers: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of headers: %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// serverFDs counts the open file descriptors of process pid.
func serverFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("count the server's descriptors: %v", err)
	}
	return len(ents)
}

// raiseFileLimit raises the test's soft file limit to at least n, and the hard one when
// it is lower (which root may). When it cannot, the test is skipped, or fails when the
// environment variable CI is "true": CI must run it.
func raiseFileLimit(t *testing.T, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	if rl.Max < n {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err == nil {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("the file limit is %d and cannot be raised; this test needs %d descriptors (CI=true)", rl.Max, n)
		}
		t.Skipf("the file limit is %d; this test needs %d descriptors", rl.Max, n)
	}
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
}

// flood is the outcome of a flood of stalled connections.
type flood struct {
	maxFDs  int
	healthz []time.Duration // latency of each /healthz during the flood
	created int             // notifications created during the flood, all received
	held    []time.Duration // latency of /healthz after the flood, its connections open
	heldFDs int             // the server's descriptors then
}

// stallFlood opens n stalled connections (headers of a GET /healthz with a body that
// never comes) against p, from 4 dialers. Meanwhile it asks /healthz, each time on a
// new connection, and creates a notification for user, whose WebSocket ws must
// receive it, and samples the server's descriptors. It waits until at least
// n-serverHeld of the stalled connections have been closed by the server.
func stallFlood(t *testing.T, p *proc, ws *websocket.Conn, user string, n, serverHeld int) flood {
	var f flood
	var closedByServer atomic.Int64
	conns := make(chan net.Conn, n)
	var dialed atomic.Int64
	var dialers sync.WaitGroup
	addr := strings.TrimPrefix(p.base, "http://")
	req := []byte(stalledRequest("GET", "/healthz", ""))
	var dialErr atomic.Value
	for range 4 {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for dialed.Add(1) <= int64(n) {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					_, err = c.Write(req)
				}
				if err != nil {
					if c == nil {
						dialErr.Store(err)
						return
					}
					// Closed by the server before the write: it counts as closed.
				}
				conns <- c
				go func() {
					// The server closes it (evicted), or the test does at the end.
					var b [512]byte
					for {
						if _, err := c.Read(b[:]); err != nil {
							break
						}
					}
					closedByServer.Add(1)
					_ = c.Close() // the test's descriptor back
				}()
			}
		}()
	}
	floodStart := time.Now()
	floodDone := make(chan struct{})
	go func() { dialers.Wait(); close(floodDone) }()

	pid := p.cmd.Process.Pid
	for running := true; running; {
		select {
		case <-floodDone:
			running = false
		default:
		}
		f.maxFDs = max(f.maxFDs, serverFDs(t, pid))
		t0 := time.Now()
		resp, err := freshClient.Get(p.base + "/healthz")
		if err != nil {
			t.Fatalf("/healthz during the flood (%d dialed): %v", min(dialed.Load(), int64(n)), err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz during the flood: %d", resp.StatusCode)
		}
		f.healthz = append(f.healthz, time.Since(t0))
		if len(f.healthz)%3 == 1 { // the first, then every third
			f.created++
			createAndReceive(t, p.base, ws, user, "during-flood-"+strconv.Itoa(f.created))
		}
	}
	t.Logf("%d stalled connections opened in %s", n, time.Since(floodStart).Round(time.Millisecond))
	if err, _ := dialErr.Load().(error); err != nil {
		t.Fatalf("dial during the flood: %v", err)
	}
	// The server closes every connection beyond what it holds: wait for those closes.
	deadline := time.After(20 * time.Second)
	for closedByServer.Load() < int64(n-serverHeld) {
		f.maxFDs = max(f.maxFDs, serverFDs(t, pid))
		select {
		case <-deadline:
			t.Fatalf("after the flood the server still holds %d of %d stalled connections (fds %d), want at most %d",
				int64(n)-closedByServer.Load(), n, serverFDs(t, pid), serverHeld)
		case <-time.After(10 * time.Millisecond): // sampling the descriptors meanwhile
		}
	}
	// The flood's connections still open: /healthz again, and the descriptors.
	for range 100 {
		t0 := time.Now()
		resp, err := freshClient.Get(p.base + "/healthz")
		if err != nil {
			t.Fatalf("/healthz with the flood's connections open: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz with the flood's connections open: %d", resp.StatusCode)
		}
		f.held = append(f.held, time.Since(t0))
	}
	f.maxFDs = max(f.maxFDs, serverFDs(t, pid))
	f.heldFDs = serverFDs(t, pid)
	close(conns)
	for c := range conns {
		_ = c.Close()
	}
	return f
}

func latency(d []time.Duration) (p50, worst time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// metric reads one sample of /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	_, b := request(t, "GET", base+"/metrics", "", "")
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestStallFloodKeepsNodeUp floods the node with 3,000 stalled connections against a
// cap of 1000: the server's descriptors stay near the cap, /healthz keeps answering,
// and a WebSocket opened before keeps receiving the notifications created during the
// flood; the stalled connections beyond the cap are the ones closed.
func TestStallFloodKeepsNodeUp(t *testing.T) {
	// The cap leaves a request in flight the time of a cap's worth of new connections
	// (about 0.1-0.3 s at the rate four dialers reach here under -race) before it is the
	// oldest: enough for /healthz on a busy machine.
	const conns, maxConns = 3000, 1000
	raiseFileLimit(t, conns+1000)
	bin := buildHerald(t)
	cmd, stderr := heraldCmd(bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_API_KEYS=k1", "HERALD_DATA_DIR=" + t.TempDir(), "HERALD_MAX_CONNS=" + strconv.Itoa(maxConns)})
	p := startCmd(t, cmd)
	ws := dialSocket(t, p.base, "watcher")

	f := stallFlood(t, p, ws, "watcher", conns, maxConns)
	p50, worst := latency(f.healthz)
	h50, hworst := latency(f.held)
	t.Logf("%d stalled connections, cap %d: server fds at most %d (%d after); /healthz during %d answers, p50 %s, max %s; after, with the connections open, p50 %s, max %s; %d notifications received during the flood",
		conns, maxConns, f.maxFDs, f.heldFDs, len(f.healthz), p50, worst, h50, hworst, f.created)
	// The cap, plus the listener, the store's files, stdio and the runtime's own.
	if f.maxFDs > maxConns+50 {
		t.Errorf("the server held %d descriptors, want at most the cap %d + 50", f.maxFDs, maxConns)
	}
	if f.created == 0 {
		t.Errorf("no notification was created during the flood (%d /healthz)", len(f.healthz))
	}
	createAndReceive(t, p.base, ws, "watcher", "after-flood")
	if v := metric(t, p.base, "herald_http_connections_evicted_total"); v < conns-maxConns {
		t.Errorf("herald_http_connections_evicted_total %v, want at least %d", v, conns-maxConns)
	}
	if v := metric(t, p.base, "herald_http_connections_refused_total"); v != 0 {
		t.Errorf("herald_http_connections_refused_total %v with plain connections to close instead", v)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if n := strings.Count(stderr.String(), "reached the cap"); n != 1 {
		t.Errorf("the cap was logged %d times, want once:\n%s", n, stderr.String())
	}
}

// TestStallFloodMeasure measures a flood of HERALD_FLOOD (e.g. 15000) stalled
// connections against the real binary with the default cap; it runs only when asked.
func TestStallFloodMeasure(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HERALD_FLOOD"))
	if n == 0 {
		t.Skip("set HERALD_FLOOD=<connections> to measure a flood")
	}
	raiseFileLimit(t, uint64(n)+1000)
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	bin := buildHerald(t)
	cmd, _ := heraldCmd(bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_API_KEYS=k1", "HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error"})
	p := startCmd(t, cmd)
	ws := dialSocket(t, p.base, "watcher")
	limit := int(metric(t, p.base, "herald_http_connections_max"))
	start := time.Now()
	f := stallFlood(t, p, ws, "watcher", n, limit)
	p50, worst := latency(f.healthz)
	h50, hworst := latency(f.held)
	t.Logf("%d stalled connections in %s, default cap %d (file limit %d): server fds at most %d (%d after); /healthz during %d answers, p50 %s, max %s; after, with the connections open, p50 %s, max %s; %d notifications received during the flood",
		n, time.Since(start).Round(time.Millisecond), limit, rl.Max, f.maxFDs, f.heldFDs, len(f.healthz), p50, worst, h50, hworst, f.created)
	if f.maxFDs > limit+50 {
		t.Errorf("the server held %d descriptors, want at most the cap %d + 50", f.maxFDs, limit)
	}
}

// heraldCmd is the serve command of bin with env, its stderr kept.
func heraldCmd(bin string, env []string) (*exec.Cmd, *syncBuffer) {
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

// startCmd starts cmd and waits for its ready line.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &proc{cmd: cmd, base: watch(stdout).waitReady(t)}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMaxConnsAboveFileLimit: a cap the file limit cannot honour refuses to start,
// naming the variable.
func TestMaxConnsAboveFileLimit(t *testing.T) {
	var errOut strings.Builder
	rc := run(context.Background(), []string{"serve"}, []string{"HERALD_DATA_DIR=" + t.TempDir(),
		"HERALD_JWT_SECRET=" + secret, "HERALD_ADDR=127.0.0.1:0", "HERALD_MAX_CONNS=1000000000"}, io.Discard, &errOut)
	if rc == 0 || !strings.Contains(errOut.String(), "HERALD_MAX_CONNS") || !strings.Contains(errOut.String(), "file limit") {
		t.Fatalf("HERALD_MAX_CONNS above the file limit: exit %d, %q", rc, errOut.String())
	}
	t.Log(strings.TrimSpace(errOut.String()))
}

// TestClientThatDoesNotReadIsDropped: a client that pipelines requests and never reads
// the answers is dropped once an answer has waited the write timeout, instead of holding
// its connection and the kernel's buffers for it; the node serves others meanwhile.
func TestClientThatDoesNotReadIsDropped(t *testing.T) {
	const writeTimeout = time.Second
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_LOG_LEVEL=error",
		"HERALD_HTTP_WRITE_TIMEOUT=" + writeTimeout.String()})
	c, err := net.DialTCP("tcp", nil, func() *net.TCPAddr {
		a, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4096)
	// The writes block once the server stops reading (its answers fill both sides'
	// buffers); they fail when the server drops the connection.
	req := []byte("GET /metrics HTTP/1.1\r\nHost: herald\r\n\r\n")
	start := time.Now()
	dropped := make(chan error, 1)
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := c.Write(req); err != nil {
				dropped <- err
				return
			}
		}
	}()
	err = <-dropped
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a client that never reads still held its connection after 30 s")
	}
	if d := time.Since(start); d > writeTimeout+10*time.Second {
		t.Fatalf("dropped after %s, want about %s", d, writeTimeout)
	}
	t.Logf("a client that never reads was dropped after %s (%v)", time.Since(start).Round(time.Millisecond), err)
	if code, _ := request(t, "GET", p.base+"/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("/healthz after the drop: %d", code)
	}
}
