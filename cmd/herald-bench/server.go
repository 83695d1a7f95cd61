package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bounds of a server the bench starts itself.
const (
	serverReadyTimeout = time.Minute // PostgreSQL may need migrating first
	serverStopTimeout  = 30 * time.Second
)

// target is the server under load.
type target struct {
	base   string // http://host:port
	pid    int    // 0: unknown, no memory or CPU figures
	secret []byte
	apiKey string
	desc   string // how the bench reached it, for the conditions
	store  string // the store it runs on, "" when unknown

	cmd     *exec.Cmd // nil once stopped
	exited  chan struct{}
	waitErr error
	tmpDir  string
	path    string // the binary, its environment and where its stderr goes: for restart
	env     []string
	logs    io.Writer
	pg      *throwaway // a PostgreSQL the bench started for the server, removed after it
}

// wsURL is the WebSocket endpoint.
func (t *target) wsURL() string {
	return "ws" + strings.TrimPrefix(t.base, "http") + "/notifications/ws"
}

// rss returns the server's resident memory.
func (t *target) rss() (int64, bool) {
	if t.pid <= 0 {
		return 0, false
	}
	n, err := readRSS(t.pid)
	return n, err == nil
}

// anon returns the server's resident anonymous memory (RssAnon).
func (t *target) anon() (int64, bool) {
	if t.pid <= 0 {
		return 0, false
	}
	n, err := readAnon(t.pid)
	return n, err == nil
}

// settledRSS polls the server's resident memory until four readings in a row, a
// second apart in all, are within 1% of each other, or timeout passes; it returns the
// last reading.
func (t *target) settledRSS(ctx context.Context, timeout time.Duration) (int64, bool) {
	var last []int64
	var rss int64
	// Unsettled after timeout, the last reading is the best there is.
	pollUntil(ctx, timeout, 250*time.Millisecond, func() bool {
		n, ok := t.rss()
		if !ok {
			return true
		}
		rss = n
		last = append(last, n)
		if len(last) > 4 {
			last = last[1:]
		}
		lo, hi := last[0], last[0]
		for _, v := range last {
			lo, hi = min(lo, v), max(hi, v)
		}
		return len(last) == 4 && float64(hi-lo) <= 0.01*float64(hi)
	})
	return rss, rss > 0
}

// randomSecret returns 32 random bytes as 64 hex digits.
func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startServer starts the herald binary at path on loopback and waits for its ready
// line. The environment of the bench passes through after the bench's defaults, so a
// HERALD_DATABASE_URL (PostgreSQL) or HERALD_DATA_DIR set by the caller wins; env
// (NAME=value) wins over both. With rules, the server routes events by them (a rules
// file in the temporary directory, named by HERALD_RULES, which wins over the caller's).
func startServer(ctx context.Context, path, secret, apiKey string, rules []byte, env []string, logs io.Writer) (*target, error) {
	tmp, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, err
	}
	t := &target{secret: []byte(secret), apiKey: apiKey, tmpDir: tmp, path: path, logs: logs}
	t.env = append([]string{
		"HERALD_ADDR=127.0.0.1:0",
		"HERALD_DATA_DIR=" + filepath.Join(tmp, "data"),
		"HERALD_USER_RATE=0",
		"HERALD_SERVICE_RATE=0",
		"HERALD_USER_READ_RATE=0",
		"HERALD_LOG_LEVEL=warn",
	}, os.Environ()...)
	// The bench's own credentials come last: the server must accept what it mints.
	t.env = append(t.env, "HERALD_JWT_SECRET="+secret, "HERALD_API_KEYS="+apiKey)
	t.env = append(t.env, env...)
	if rules != nil {
		p, err := writeRules(tmp, rules)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		t.env = append(t.env, "HERALD_RULES="+p)
	}
	if err := t.launch(ctx); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// launch starts the server process and waits for its ready line.
func (t *target) launch(ctx context.Context) error {
	cmd := exec.Command(t.path, "serve")
	cmd.Env = t.env
	cmd.SysProcAttr = serverProcAttr()
	cmd.Stderr = t.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	t.cmd, t.pid, t.exited, t.waitErr = cmd, cmd.Process.Pid, exited, nil
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			if base, store, ok := parseReady(line); ok && !seen {
				seen = true
				ready <- base + "\x00" + store
				continue
			}
			fmt.Fprintln(t.logs, "herald:", line)
		}
		t.waitErr = cmd.Wait()
		close(exited)
	}()
	timer := time.NewTimer(serverReadyTimeout)
	defer timer.Stop()
	select {
	case s := <-ready:
		base, store, _ := strings.Cut(s, "\x00")
		t.base, t.store = base, store
		t.desc = fmt.Sprintf("%s (started by the bench, pid %d, store: %s)", base, t.pid, store)
		return nil
	case <-exited:
		return fmt.Errorf("%s exited before it was ready: %v", t.path, t.waitErr)
	case <-timer.C:
		return fmt.Errorf("%s not ready within %s", t.path, serverReadyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restart stops a server the bench started (SIGTERM) and starts it again on the same
// data (directory or database): the new process starts with none of the old one's
// memory, so that what a phase costs is measured from a clean start.
func (t *target) restart(ctx context.Context) error {
	if t.cmd == nil {
		return errors.New("only a server the bench started can be restarted")
	}
	if err := t.stopProcess(); err != nil {
		return err
	}
	return t.launch(ctx)
}

// parseReady reads "herald ready: listening on http://ADDR (store: ...)".
func parseReady(line string) (base, store string, ok bool) {
	rest, ok := strings.CutPrefix(line, "herald ready: listening on ")
	if !ok {
		return "", "", false
	}
	base, rest, _ = strings.Cut(rest, " ")
	store = strings.TrimSuffix(strings.TrimPrefix(rest, "(store: "), ")")
	return base, store, strings.HasPrefix(base, "http://")
}

// stop ends a server the bench started (SIGTERM, then SIGKILL after a timeout),
// removes its temporary directory and then the throwaway PostgreSQL it ran on, if any.
// It does nothing to a server it did not start.
func (t *target) stop() error {
	err := t.stopServer()
	// After the server, which writes what it holds to PostgreSQL as it stops.
	if t.pg != nil {
		if cerr := t.pg.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		t.pg = nil
	}
	return err
}

func (t *target) stopServer() error {
	if t.tmpDir != "" {
		defer os.RemoveAll(t.tmpDir)
	}
	if t.cmd == nil {
		return nil
	}
	return t.stopProcess()
}

// stopProcess ends the server process: SIGTERM, then SIGKILL after a timeout.
func (t *target) stopProcess() error {
	cmd := t.cmd
	t.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(serverStopTimeout)
	defer timer.Stop()
	select {
	case <-t.exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-t.exited
		return errors.New("server did not stop within " + serverStopTimeout.String() + "; killed")
	}
	if t.waitErr != nil {
		return fmt.Errorf("server: %w", t.waitErr)
	}
	return nil
}

// pollUntil checks cond every interval until it holds, ctx ends or timeout passes,
// and reports whether it held.
func pollUntil(ctx context.Context, timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}
