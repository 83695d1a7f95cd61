// Package pgtest runs a throwaway PostgreSQL for tests.
//
// A package whose tests use PostgreSQL calls Main from its TestMain, so that the server
// shared by the test binary is stopped and its files removed when the tests end, and
// then no goroutine of the tests may be left (goleak):
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Tests then ask for a fresh database on the shared server:
//
//	url := pgtest.Shared(t).NewDatabase(t)
//
// and a test that stops and restarts PostgreSQL takes a cluster of its own with Own.
//
// The server is initdb'd into a temporary directory, listens on a free port of 127.0.0.1
// only (its unix socket lives in the data directory) and trusts every local connection.
// initdb and postgres refuse to run as root: when the tests run as root, both run as the
// postgres user, which owns the temporary directory. The postgres binaries are looked up
// on PATH, then under /usr/lib/postgresql/*/bin.
//
// When HERALD_TEST_DATABASE_URL is set, Shared uses that server instead of starting one:
// databases are created through that URL, and Stop and Start return an error. A test that
// stops PostgreSQL therefore takes its own cluster with Own, which skips the test when it
// cannot start one while HERALD_TEST_DATABASE_URL is set.
//
// When PostgreSQL cannot be started, Shared and Own skip the test, or fail it when the
// environment variable CI is "true".
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

// EnvURL names the environment variable that points Shared at an existing server.
const EnvURL = "HERALD_TEST_DATABASE_URL"

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
	logName      = "postgres.log"
	dirPrefix    = "herald-pgtest-"
)

// Options tunes a server started by Start.
type Options struct {
	// Fsync makes the server durable: fsync, synchronous_commit and full_page_writes
	// stay on. Off by default, which is what tests want; benchmarks that should reflect
	// production turn it on.
	Fsync bool
	// Settings are more server settings, each "name=value" (passed as -c).
	Settings []string
}

// Server is a PostgreSQL server for tests: one started by Start, or an existing one
// reached through HERALD_TEST_DATABASE_URL.
type Server struct {
	external *url.URL // the existing server's URL; nil for a server started here

	opts     Options
	dir      string // temporary directory, removed by Close
	data     string // data directory, inside dir
	port     int
	postgres string               // path of the postgres binary
	attr     *syscall.SysProcAttr // how postgres is started (credentials when root)

	// mu guards cmd, exited and closed: Stop, Start and Close may be called from
	// different goroutines (a test and its cleanup).
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	closed bool
}

// Start initializes a new cluster in a temporary directory and starts it.
func Start(opts Options) (*Server, error) {
	initdb, err := binary("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := binary("postgres")
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{opts: opts, dir: dir, data: filepath.Join(dir, "data"), postgres: postgres, attr: procAttr(cred)}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	cmd := exec.Command(initdb, "-D", s.data, "-A", "trust", "-U", "postgres", "--no-sync",
		"-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.SysProcAttr = procAttr(cred)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, lastLines(out, 10))
	}
	// The port is free when picked but may be taken before postgres binds it: try again
	// with another one.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		err = s.Start()
		if err == nil {
			return s, nil
		}
		if attempt == 2 || !strings.Contains(err.Error(), "already in use") {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// URL returns the URL of database db on the server.
func (s *Server) URL(db string) string {
	if s.external != nil {
		u := *s.external
		u.Path = "/" + db
		u.RawPath = ""
		return u.String()
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(db))
}

// Port returns the TCP port the server listens on (0 for an external server).
func (s *Server) Port() int { return s.port }

// Dir returns the data directory ("" for an external server). The server's log is the
// file postgres.log in it.
func (s *Server) Dir() string { return s.data }

func (s *Server) adminURL() string {
	if s.external != nil {
		return s.external.String()
	}
	return s.URL("postgres")
}

// CreateDB creates database name.
func (s *Server) CreateDB(ctx context.Context, name string) error {
	return s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDB drops database name, closing its connections, if it exists.
func (s *Server) DropDB(ctx context.Context, name string) error {
	return s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (s *Server) admin(ctx context.Context, sql string) error {
	conn, err := pgconn.Connect(ctx, s.adminURL())
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// NewDatabase creates a database with a unique name and returns its URL. The database
// is dropped when the test ends, unless the server is stopped then.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateDB(ctx, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if !s.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.DropDB(ctx, name); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

// dbName makes a database name from a test name: readable, unique and at most 63 bytes.
func dbName(test string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

func (s *Server) running() bool {
	if s.external != nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Start starts the stopped server again, on the same port and with the same data.
func (s *Server) Start() error {
	if s.external != nil {
		return errors.New("pgtest: cannot start an external server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pgtest: server is closed")
	}
	if s.cmd != nil {
		return nil
	}
	logPath := filepath.Join(s.data, logName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	if s.attr != nil && s.attr.Credential != nil {
		os.Chown(logPath, int(s.attr.Credential.Uid), int(s.attr.Credential.Gid))
	}
	args := []string{"-D", s.data, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.data,
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
	}
	if !s.opts.Fsync {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, kv := range s.opts.Settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(s.postgres, args...)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = s.attr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited while starting (%v); its log ends:\n%s", cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("pgtest: postgres not ready after %v (%v); its log ends:\n%s", startTimeout, lastErr, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, s.URL("postgres"))
		ccancel()
		if err == nil {
			conn.Close(context.Background())
			s.cmd, s.exited = cmd, exited
			return nil
		}
		lastErr = err
	}
}

// Stop shuts the server down (fast shutdown: open connections are closed) and waits
// for it to exit. Start starts it again.
func (s *Server) Stop() error {
	if s.external != nil {
		return errors.New("pgtest: cannot stop an external server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Pause stops every process of the server (SIGSTOP to the postmaster and each of its
// children), as a hung database host would: connections stay open and nothing
// answers. Resume undoes it. Linux only (it finds the children in /proc).
func (s *Server) Pause() error { return s.signalAll(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() error { return s.signalAll(syscall.SIGCONT) }

// HoldCommits makes every commit on the server that writes something wait, from its
// return on, for a synchronous standby that does not exist: the transaction is durable
// on the server, holds its locks and is neither visible nor answered until release
// (which the test's end calls too). With Pause, it puts a COMMIT in the state that
// "sent, never answered" names: the commit lands when the server runs again. db is a
// database URL of the server, for the connections HoldCommits makes. The server must
// run with synchronous_commit=on (OwnWith, Options.Settings): HoldCommits fails the test
// otherwise.
func (s *Server) HoldCommits(t testing.TB, db string) (release func()) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	exec := func(sql string) {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("pgtest: %s: %v", sql, err)
		}
	}
	var mode string
	if err := admin.QueryRow(ctx, "SHOW synchronous_commit").Scan(&mode); err != nil || mode != "on" {
		t.Fatalf("pgtest: HoldCommits needs synchronous_commit=on, the server has %q (%v)", mode, err)
	}
	exec("CREATE TABLE IF NOT EXISTS pgtest_hold (i int)")
	held, stopHeld := context.WithCancel(ctx)
	var waiters sync.WaitGroup
	var once sync.Once
	release = func() {
		once.Do(func() {
			exec("ALTER SYSTEM RESET synchronous_standby_names")
			exec("SELECT pg_reload_conf()")
			stopHeld()
			waiters.Wait()
		})
	}
	t.Cleanup(release)
	exec("ALTER SYSTEM SET synchronous_standby_names = 'pgtest_absent'")
	exec("SELECT pg_reload_conf()")
	// The setting reaches the commits once the checkpointer has read it: until a commit
	// of a connection of our own waits for the standby (it waits until release).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		done := make(chan struct{})
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			defer close(done)
			_, _ = c.Exec(held, "INSERT INTO pgtest_hold VALUES (1)")
			c.Close(ctx)
		}()
		for {
			var waiting bool
			err := admin.QueryRow(ctx, "SELECT wait_event IS NOT DISTINCT FROM 'SyncRep' FROM pg_stat_activity WHERE pid = $1",
				c.PgConn().PID()).Scan(&waiting)
			if err == nil && waiting {
				return release
			}
			if time.Now().After(deadline) {
				t.Fatal("pgtest: commits still do not wait for the standby 10s after the reload")
			}
			select {
			case <-done: // committed before the setting took: again
			case <-time.After(5 * time.Millisecond):
				continue
			}
			break
		}
	}
}

// signalAll sends sig to the postmaster and its children: each backend runs in a
// session of its own (PostgreSQL calls setsid), so the process group is not enough.
func (s *Server) signalAll(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("pgtest: the server is not running")
	}
	pid := s.cmd.Process.Pid
	pids := []int{pid}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			pids = append(pids, child)
		}
	}
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && p == pid {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	cmd.Process.Signal(syscall.SIGINT) // fast shutdown, as pg_ctl stop -m fast
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
	}
	cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	return fmt.Errorf("pgtest: postgres did not shut down within %v", stopTimeout)
}

// Close stops the server and removes its files. It does nothing for an external server.
func (s *Server) Close() error {
	if s.external != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stopLocked()
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

// logTail returns the last lines of the server's log.
func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.data, logName))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return lastLines(b, 20)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// binary finds a PostgreSQL program on PATH or in the newest /usr/lib/postgresql/*/bin.
func binary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("pgtest: %s not found on PATH or in /usr/lib/postgresql/*/bin", name)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// credential returns the postgres user's credential when running as root (initdb and
// postgres refuse root), and nil otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// sweep removes the directories of servers that a dead test binary left behind: older
// than ten minutes and with no live postmaster.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				continue
			}
		}
		os.RemoveAll(d)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shared is the server of this test binary. mu guards the three fields: the first test
// that calls Shared starts the server while tests running in parallel wait for it, Main
// closes it after the last test, and err keeps a failed start so that later tests skip
// (or fail) at once instead of trying again.
var shared struct {
	mu      sync.Mutex
	tried   bool
	srv     *Server
	err     error
	ownedBy bool // srv was started here (not external) and must be closed by Main
}

// Shared returns the server shared by the tests of this binary, starting it on first
// use, or the server of HERALD_TEST_DATABASE_URL when set. When no server can be had it
// skips the test (fails it when CI=true).
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	if !shared.tried {
		shared.tried = true
		if raw := os.Getenv(EnvURL); raw != "" {
			u, err := url.Parse(raw)
			if err != nil {
				shared.err = fmt.Errorf("pgtest: %s: %w", EnvURL, err)
			} else {
				shared.srv = &Server{external: u}
			}
		} else {
			shared.srv, shared.err = Start(Options{})
			shared.ownedBy = shared.err == nil
		}
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if err != nil {
		unavailable(t, err)
	}
	return srv
}

// Own starts a cluster for this test alone, which it may stop and start; it is closed
// when the test ends. When no server can be started it skips the test (fails it when
// CI=true and HERALD_TEST_DATABASE_URL is not set).
func Own(t testing.TB) *Server { return OwnWith(t, Options{}) }

// OwnWith is Own with options.
func OwnWith(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := Start(opts)
	if err != nil {
		if os.Getenv(EnvURL) != "" {
			t.Skipf("pgtest: this test needs a PostgreSQL of its own: %s", oneLine(err))
		}
		unavailable(t, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// External reports whether s is the server of HERALD_TEST_DATABASE_URL, which tests
// cannot stop or start.
func (s *Server) External() bool { return s.external != nil }

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: PostgreSQL is required (CI=true): %v", err)
	}
	t.Skipf("pgtest: PostgreSQL unavailable: %s", oneLine(err))
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Main runs the tests of a package, closes the shared server, so that no postgres
// outlives the test binary, and then fails a passing run that left a goroutine behind
// (goleak.VerifyTestMain, with opts). Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The leak check runs after the shared server is closed: the goroutine that waits for
// its postgres process has ended by then, and what remains is the tests' own. A test
// that opens a pgx pool must close it (a store's Close does) before it ends.
func Main(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(closing{m}, opts...)
}

// closing runs the tests, then closes the shared server.
type closing struct{ m *testing.M }

func (c closing) Run() int {
	code := c.m.Run()
	if err := closeShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func closeShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil || !shared.ownedBy {
		return nil
	}
	err := shared.srv.Close()
	shared.srv, shared.err = nil, errors.New("pgtest: the shared server was closed")
	return err
}
