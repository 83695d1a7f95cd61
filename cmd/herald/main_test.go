package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var readyLine = regexp.MustCompile(`herald ready: listening on (http://\S+)`)

// lines collects a process's output and signals the ready line.
type lines struct {
	ready     chan string
	all       chan string
	readyLine string // the whole ready line, set before its base is sent on ready
}

func watch(r io.Reader) *lines {
	l := &lines{ready: make(chan string, 1), all: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if m := readyLine.FindStringSubmatch(line); m != nil {
				l.readyLine = line
				l.ready <- m[1]
			}
			select {
			case l.all <- line:
			default:
			}
		}
		close(l.all)
	}()
	return l
}

func (l *lines) waitReady(t *testing.T) string {
	t.Helper()
	select {
	case base := <-l.ready:
		return base
	case <-time.After(60 * time.Second):
		t.Fatal("herald did not print its ready line within 60s")
		return ""
	}
}

func request(t *testing.T, method, url, cred, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestServeDev runs the real main in process on a free port, as `make run` does, and
// follows the curl lines it prints.
func TestServeDev(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev"}, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + dir}, pw, io.Discard)
		pw.Close()
	}()
	out := watch(pr)
	base := out.waitReady(t)

	var printed []string
	deadline := time.After(10 * time.Second)
	for len(printed) == 0 || !strings.Contains(strings.Join(printed, "\n"), "/notifications/unread") {
		select {
		case l := <-out.all:
			printed = append(printed, l)
		case <-deadline:
			t.Fatalf("dev output incomplete: %q", printed)
		}
	}
	text := strings.Join(printed, "\n")
	key := regexp.MustCompile(`API key:\s+(\S+)`).FindStringSubmatch(text)
	tok := regexp.MustCompile(`token for "alice":\s+(\S+)`).FindStringSubmatch(text)
	body := regexp.MustCompile(`-d '(\{.*\})'`).FindStringSubmatch(text)
	if key == nil || tok == nil || body == nil {
		t.Fatalf("dev output lacks the key, the token or the curl body:\n%s", text)
	}
	if code, b := request(t, "POST", base+"/notifications", key[1], body[1]); code != 201 {
		t.Fatalf("printed create: %d %s", code, b)
	}
	code, b := request(t, "GET", base+"/notifications/unread", tok[1], "")
	var page struct {
		Data  []map[string]any `json:"data"`
		Total int              `json:"total"`
	}
	if code != 200 || json.Unmarshal(b, &page) != nil || page.Total != 1 || page.Data[0]["receiverId"] != "alice" {
		t.Fatalf("printed list: %d %s", code, b)
	}

	// `herald token` falls back to the dev credentials of the data directory.
	var tokOut strings.Builder
	if rc := run(ctx, []string{"token", "--user", "alice"}, []string{"HERALD_DATA_DIR=" + dir}, &tokOut, io.Discard); rc != 0 {
		t.Fatalf("token exit %d", rc)
	}
	if code, _ := request(t, "GET", base+"/notifications/unread/count", strings.TrimSpace(tokOut.String()), ""); code != 200 {
		t.Fatalf("token from `herald token` refused: %d", code)
	}

	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("serve exited %d after cancel", rc)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s")
	}
}

func TestServeRefusesWithoutSecret(t *testing.T) {
	var errOut strings.Builder
	rc := run(context.Background(), []string{"serve"}, []string{"HERALD_DATA_DIR=" + t.TempDir()}, io.Discard, &errOut)
	if rc == 0 || !strings.Contains(errOut.String(), "HERALD_JWT_SECRET") {
		t.Fatalf("serve without a secret: exit %d, %q", rc, errOut.String())
	}
}

// buildHerald builds the real binary once per test.
func buildHerald(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

type proc struct {
	cmd   *exec.Cmd
	base  string
	ready string // its ready line
}

func startHerald(t *testing.T, bin string, env []string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	l := watch(stdout)
	base := l.waitReady(t)
	return &proc{cmd: cmd, base: base, ready: l.readyLine}
}

const secret = "kill-test-secret-0123456789abcdef"

// TestKillLosesNothing kills Herald with SIGKILL right after a 201 and right after a
// mark-read 200, on both stores, and finds both changes after a restart.
func TestKillLosesNothing(t *testing.T) {
	bin := buildHerald(t)
	stores := map[string]func(t *testing.T) []string{
		"embedded": func(t *testing.T) []string { return []string{"HERALD_DATA_DIR=" + t.TempDir()} },
		"postgres": func(t *testing.T) []string {
			return []string{"HERALD_DATABASE_URL=" + pgtest.Shared(t).NewDatabase(t)}
		},
	}
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			env := append(stores[name](t), "HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET="+secret, "HERALD_API_KEYS=k1")
			user, _ := auth.SignUserToken([]byte(secret), "victim", "", time.Hour)

			p := startHerald(t, bin, env)
			code, b := request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"victim","type":"t"}`)
			if code != 201 {
				t.Fatalf("create: %d %s", code, b)
			}
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()
			var n struct {
				ID     string  `json:"id"`
				ReadAt *string `json:"readAt"`
			}
			_ = json.Unmarshal(b, &n)

			p = startHerald(t, bin, env)
			code, b = request(t, "GET", p.base+"/notifications/unread", user, "")
			if code != 200 || !strings.Contains(string(b), n.ID) {
				t.Fatalf("after SIGKILL the created notification is gone: %d %s", code, b)
			}
			if code, b := request(t, "PATCH", p.base+"/notifications/"+n.ID+"/read", user, ""); code != 200 {
				t.Fatalf("mark read: %d %s", code, b)
			}
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()

			p = startHerald(t, bin, env)
			code, b = request(t, "GET", p.base+"/notifications?since=0", user, "")
			if code != 200 || !strings.Contains(string(b), n.ID) || strings.Contains(string(b), `"readAt":null`) {
				t.Fatalf("after SIGKILL the mark-read is gone: %d %s", code, b)
			}

			// SIGTERM drains and exits 0.
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if err := p.cmd.Wait(); err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
		})
	}
}

// TestPostgresOutage stops PostgreSQL under a running Herald: creates get 503, /readyz
// 503, /healthz 200; once PostgreSQL is back, Herald recovers without a restart.
func TestPostgresOutage(t *testing.T) {
	pg := pgtest.Own(t)
	url := pg.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATABASE_URL=" + url,
			"HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1", "HERALD_LOG_LEVEL=error"}, pw, io.Discard)
		pw.Close()
	}()
	base := watch(pr).waitReady(t)
	create := func() int {
		code, _ := request(t, "POST", base+"/notifications", "k1", `{"receiverId":"u","type":"t"}`)
		return code
	}
	if c := create(); c != 201 {
		t.Fatalf("create before the outage: %d", c)
	}
	pg.Stop()
	if c := create(); c != 503 {
		t.Fatalf("create during the outage: %d, want 503", c)
	}
	if c, _ := request(t, "GET", base+"/readyz", "", ""); c != 503 {
		t.Fatalf("readyz during the outage: %d", c)
	}
	if c, _ := request(t, "GET", base+"/healthz", "", ""); c != 200 {
		t.Fatalf("healthz during the outage: %d", c)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "Herald to store notifications again after PostgreSQL came back", 30*time.Second, func() bool { return create() == 201 })
	if c, _ := request(t, "GET", base+"/readyz", "", ""); c != 200 {
		t.Fatalf("readyz after the outage: %d", c)
	}
	user, _ := auth.SignUserToken([]byte(secret), "u", "", time.Hour)
	_, b := request(t, "GET", base+"/notifications/unread", user, "")
	var page struct{ Total int }
	if json.Unmarshal(b, &page); page.Total != 2 {
		t.Fatalf("after recovery: %s, want exactly the 2 acknowledged notifications", b)
	}
	cancel()
	if rc := <-done; rc != 0 {
		t.Fatalf("exit %d", rc)
	}
}

// TestConfigRefusesBadValues: a bad value is refused before serve opens anything, and
// the error names its variable; lists are trimmed.
func TestConfigRefusesBadValues(t *testing.T) {
	for _, kv := range []string{
		"HERALD_JWT_SECRET=short",
		"HERALD_LOG_RETENTION=-1h",
		"HERALD_BATCH_DELAY=-1ms",
		"HERALD_SHUTDOWN_TIMEOUT=0s",
		"HERALD_LOG_LEVEL=loud",
		"HERALD_MAX_PAYLOAD=zero",
		"HERALD_USER_READ_BURST=0",
		"HERALD_BODY_BYTES_IN_FLIGHT=1000",
		"HERALD_WS_FRAME_RATE=-1",
		"HERALD_WS_FRAME_RATE=NaN",
		"HERALD_WS_FRAME_BURST=0",
		"HERALD_JWT_MAX_TTL=-1h",
		"HERALD_JWT_MAX_TTL=forever",
		"HERALD_JWKS=http://issuer.example/.well-known/jwks.json",
		"HERALD_JWKS=http://10.0.0.7/jwks.json",
		"HERALD_MAX_CONNS=-1",
		"HERALD_HTTP_READ_TIMEOUT=0s",
		"HERALD_HTTP_IDLE_TIMEOUT=-1s",
		"HERALD_HTTP_MAX_HEADER_BYTES=100",
	} {
		if _, err := checkConfig([]string{"HERALD_JWT_SECRET=" + secret, kv}); err == nil {
			t.Errorf("%s accepted", kv)
		} else if name, _, _ := strings.Cut(kv, "="); !names(err, name) {
			t.Errorf("%s: error %q does not name the variable", kv, err)
		}
	}
	c, err := checkConfig([]string{"HERALD_API_KEYS= a, ,b ", "HERALD_JWT_SECRET=" + secret})
	if err != nil || len(c.APIKeys) != 2 || c.APIKeys[0] != "a" || c.APIKeys[1] != "b" || c.Addr != "127.0.0.1:8080" {
		t.Fatalf("config %+v, %v", c, err)
	}
}

// names reports whether err names the variable v: "v: ..." or "v must ...", not a
// longer variable that starts with v.
func names(err error, v string) bool {
	return strings.Contains(err.Error(), v+":") || strings.Contains(err.Error(), v+" ")
}

// TestJWTMaxTTL runs the real binary with HERALD_JWT_MAX_TTL: a user JWT that lives
// longer is refused, one within it is not.
func TestJWTMaxTTL(t *testing.T) {
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{
		"HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + t.TempDir(),
		"HERALD_JWT_SECRET=" + secret, "HERALD_JWT_MAX_TTL=1h",
	})
	long, _ := auth.SignUserToken([]byte(secret), "u", "", 2*time.Hour)
	code, body := request(t, "GET", p.base+"/notifications/unread", long, "")
	if code != 401 || !strings.Contains(string(body), "token exp is more than 1h0m0s ahead") {
		t.Fatalf("a 2 h token with HERALD_JWT_MAX_TTL=1h: %d %s", code, body)
	}
	short, _ := auth.SignUserToken([]byte(secret), "u", "", 30*time.Minute)
	if code, body := request(t, "GET", p.base+"/notifications/unread", short, ""); code != 200 {
		t.Fatalf("a 30 min token with HERALD_JWT_MAX_TTL=1h: %d %s", code, body)
	}
}

// TestSIGTERMUnderLoad sends SIGTERM while creates are in flight: the process exits 0,
// and every create that was acknowledged is there after a restart.
func TestSIGTERMUnderLoad(t *testing.T) {
	bin := buildHerald(t)
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			env := []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1", "HERALD_LOG_LEVEL=error"}
			if name == "embedded" {
				env = append(env, "HERALD_DATA_DIR="+t.TempDir())
			} else {
				env = append(env, "HERALD_DATABASE_URL="+pgtest.Shared(t).NewDatabase(t))
			}
			p := startHerald(t, bin, env)
			client := &http.Client{Timeout: 20 * time.Second}

			acked := make(chan string, 100000)
			enough := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			var count atomic.Int64
			for w := 0; w < 30; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 2000; i++ { // bounded; the server stops long before
						req, _ := http.NewRequest("POST", p.base+"/notifications", strings.NewReader(`{"receiverId":"load","type":"t"}`))
						req.Header.Set("X-Api-Key", "k1")
						resp, err := client.Do(req)
						if err != nil {
							return // the server is gone
						}
						var n struct{ ID string }
						ok := resp.StatusCode == 201 && json.NewDecoder(resp.Body).Decode(&n) == nil
						resp.Body.Close()
						if ok {
							acked <- n.ID
							if count.Add(1) == 300 {
								once.Do(func() { close(enough) })
							}
						}
					}
				}()
			}
			select {
			case <-enough:
			case <-time.After(60 * time.Second):
				t.Fatal("300 creates were not acknowledged within 60s")
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			waitErr := p.cmd.Wait()
			wg.Wait()
			close(acked)
			if waitErr != nil {
				t.Fatalf("exit after SIGTERM under load: %v", waitErr)
			}

			p = startHerald(t, bin, env)
			user, _ := auth.SignUserToken([]byte(secret), "load", "", time.Hour)
			stored := map[string]bool{}
			for since := "0"; since != ""; {
				code, b := request(t, "GET", p.base+"/notifications?limit=500&since="+since, user, "")
				var page struct {
					Data []struct{ ID string }
					Next *int64
				}
				if code != 200 || json.Unmarshal(b, &page) != nil {
					t.Fatalf("feed: %d %s", code, b)
				}
				for _, n := range page.Data {
					stored[n.ID] = true
				}
				since = ""
				if page.Next != nil {
					since = fmt.Sprint(*page.Next)
				}
			}
			n := 0
			for id := range acked {
				n++
				if !stored[id] {
					t.Fatalf("acknowledged notification %s is missing after SIGTERM", id)
				}
			}
			t.Logf("%d acknowledged, %d stored", n, len(stored))
		})
	}
}

// TestShutdownWithinBudgetWhenStorageHangs: SIGTERM while a commit is with a stopped
// PostgreSQL (its COMMIT sent, unanswered, holding a pooled connection, and its request
// waiting): the whole shutdown fits HERALD_SHUTDOWN_TIMEOUT, pool close included, and
// herald exits 1 saying that nothing acknowledged is lost; the waiting request is never
// answered with success.
func TestShutdownWithinBudgetWhenStorageHangs(t *testing.T) {
	pg := pgtest.OwnWith(t, pgtest.Options{Settings: []string{"synchronous_commit=on"}})
	url := pg.NewDatabase(t)
	bin := buildHerald(t)
	const budget = 2 * time.Second
	cmd, stderr := heraldCmd(bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATABASE_URL=" + url,
		"HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1", "HERALD_SHUTDOWN_TIMEOUT=" + budget.String()})
	p := startCmd(t, cmd)
	if code, b := request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"u","type":"t"}`); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}

	ctx := context.Background()
	watcher, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	release := pg.HoldCommits(t, url)
	answered := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", p.base+"/notifications", strings.NewReader(`{"receiverId":"u","type":"t","idempotencyKey":"k"}`))
		req.Header.Set("X-Api-Key", "k1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		resp.Body.Close()
		answered <- resp.Status
	}()
	poll.Until(t, "the create's COMMIT to reach PostgreSQL", 10*time.Second, func() bool {
		var n int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event = 'SyncRep' AND query = 'COMMIT' AND datname = current_database()`).Scan(&n)
		return err == nil && n > 0
	})
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Resume(); release() })

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	took := time.Since(start)
	t.Logf("exit after %v: %v", took.Round(time.Millisecond), err)
	if limit := budget + time.Second; took > limit {
		t.Fatalf("SIGTERM with storage stopped: exit after %v, over the %v budget and a second", took, budget)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit with storage stopped: %v, want status 1", err)
	}
	out := stderr.String()
	if !strings.Contains(out, "nothing acknowledged is lost") || !strings.Contains(out, "HERALD_SHUTDOWN_TIMEOUT (2s)") {
		t.Fatalf("shutdown log does not say what was lost:\n%s", out)
	}
	if a := <-answered; strings.HasPrefix(a, "2") {
		t.Fatalf("the create waiting on the stopped store was answered %s", a)
	}
}
