package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// childEnv marks a child process of the idle scenario and says which users it holds:
// "<offset>,<run>". Its flags are the parent's, with -n its share.
const childEnv = "HERALD_BENCH_CHILD"

// Status lines of a child, and how long a parent waits for one to end.
const (
	childStatusEvery = 250 * time.Millisecond
	childStopTimeout = time.Minute
)

// shardStatus is what a share of the idle connections reports. A child prints it as
// one JSON line every childStatusEvery, when it is ready and when it has finished.
type shardStatus struct {
	Connected   int64  `json:"connected"`
	Failed      int64  `json:"failed"`
	Drops       int64  `json:"drops"`
	GaveUp      int64  `json:"gaveUp"`
	DialErrors  int64  `json:"dialErrors"`
	BadFrames   int64  `json:"badFrames"`
	ErrorFrames int64  `json:"errorFrames"`
	LastFirst   int64  `json:"lastFirst"` // Unix ns of the last first frame
	Ready       bool   `json:"ready"`     // every connection connected or given up
	Final       bool   `json:"final"`     // connections closed; the last line
	Err         string `json:"error,omitempty"`
}

func (s *shardStatus) add(o shardStatus) {
	s.Connected += o.Connected
	s.Failed += o.Failed
	s.Drops += o.Drops
	s.GaveUp += o.GaveUp
	s.DialErrors += o.DialErrors
	s.BadFrames += o.BadFrames
	s.ErrorFrames += o.ErrorFrames
	s.LastFirst = max(s.LastFirst, o.LastFirst)
	if s.Err == "" {
		s.Err = o.Err
	}
}

// shard is a share of the idle connections, held by this process or by a child.
type shard interface {
	status() shardStatus
	ready() <-chan struct{}
	close() shardStatus // closes the connections; the final status
}

// localShard holds its connections in this process.
type localShard struct{ f *fleet }

func (l localShard) ready() <-chan struct{} { return l.f.ready }
func (l localShard) status() shardStatus    { return fleetStatus(l.f) }
func (l localShard) close() shardStatus {
	l.f.stop()
	st := fleetStatus(l.f)
	st.Final = true
	return st
}

func fleetStatus(f *fleet) shardStatus {
	st := shardStatus{
		Connected:   f.connected.Load(),
		Failed:      f.failed.Load(),
		Drops:       f.drops.Load(),
		GaveUp:      f.gaveUp.Load(),
		DialErrors:  f.dialErrors.Load(),
		BadFrames:   f.badFrames.Load(),
		ErrorFrames: f.errorFrames.Load(),
		LastFirst:   f.lastFirst.Load(),
		Ready:       f.settled.Load() == int64(f.cfg.n),
	}
	if err := f.firstError(); err != nil {
		st.Err = err.Error()
	}
	return st
}

// childShard is a child process of the bench holding its share of the connections.
type childShard struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu   sync.Mutex
	last shardStatus

	readyC    chan struct{}
	readyOnce sync.Once
	exited    chan struct{}
	waitErr   error
}

// startChild re-executes the bench to hold users offset..offset+n-1.
func (s *session) startChild(offset, n int, stderr io.Writer) (*childShard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	o := s.o
	cmd := exec.Command(exe,
		"-scenario", scenarioIdle,
		"-url", s.t.base,
		"-n", strconv.Itoa(n),
		"-per-process", strconv.Itoa(n),
		"-duration", o.duration.String(),
		"-connect-timeout", o.connectTimeout.String(),
		"-concurrency", strconv.Itoa(o.concurrency),
		"-source-ips", strconv.Itoa(o.sourceIPs),
		"-quiet")
	// The secret goes by the environment, not where ps shows it.
	cmd.Env = append(os.Environ(),
		childEnv+"="+strconv.Itoa(offset)+","+s.run,
		"HERALD_JWT_SECRET="+string(s.t.secret))
	cmd.Stderr = stderr
	c := &childShard{cmd: cmd, readyC: make(chan struct{}), exited: make(chan struct{})}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go c.readStatus(out, stderr)
	return c, nil
}

// readStatus takes in the child's status lines until it exits.
func (c *childShard) readStatus(out io.Reader, stderr io.Writer) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var st shardStatus
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			fmt.Fprintf(stderr, "herald-bench: child %d: %s\n", c.cmd.Process.Pid, sc.Text())
			continue
		}
		c.mu.Lock()
		c.last = st
		c.mu.Unlock()
		if st.Ready {
			c.readyOnce.Do(func() { close(c.readyC) })
		}
	}
	c.waitErr = c.cmd.Wait()
	c.readyOnce.Do(func() { close(c.readyC) }) // a dead child is as ready as it gets
	close(c.exited)
}

func (c *childShard) pid() int               { return c.cmd.Process.Pid }
func (c *childShard) ready() <-chan struct{} { return c.readyC }

func (c *childShard) status() shardStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// close asks the child to close its connections (by closing its stdin) and waits for
// its final status; a child that does not end in time is killed.
func (c *childShard) close() shardStatus {
	_ = c.stdin.Close()
	t := time.NewTimer(childStopTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	st := c.status()
	if !st.Final && st.Err == "" {
		st.Err = fmt.Sprintf("child %d ended without a final status: %v", c.pid(), c.waitErr)
	}
	return st
}

// parseChildSpec reads childEnv's "<offset>,<run>".
func parseChildSpec(spec string) (offset int, run string, err error) {
	off, run, ok := strings.Cut(spec, ",")
	offset, err = strconv.Atoi(off)
	if !ok || err != nil || offset < 0 || run == "" {
		return 0, "", fmt.Errorf("%s=%q: want <offset>,<run>", childEnv, spec)
	}
	return offset, run, nil
}

// runChild is the child's side: connect its users, report, hold them until the parent
// closes stdin (or the run's bound passes), close them and report the last time.
func runChild(ctx context.Context, o *options, spec string, stdin io.Reader, stdout io.Writer) error {
	offset, run, err := parseChildSpec(spec)
	if err != nil {
		return err
	}
	if stdin == nil {
		return errors.New("a child needs its parent on stdin")
	}
	s := &session{o: o, t: &target{base: strings.TrimRight(o.url, "/"), secret: []byte(o.secret)}, run: run}
	f, err := newFleet(s.fleetConfig(offset, o.n, nil))
	if err != nil {
		return err
	}
	parentDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(parentDone)
	}()
	enc := json.NewEncoder(stdout)
	f.start(ctx)
	tick := time.NewTicker(childStatusEvery)
	defer tick.Stop()
	readyC := f.ready
loop:
	for {
		select {
		case <-readyC:
			readyC = nil
		case <-tick.C:
		case <-parentDone:
			break loop
		case <-ctx.Done():
			break loop
		}
		if err := enc.Encode(fleetStatus(f)); err != nil {
			break loop // the parent is gone
		}
	}
	f.stop()
	st := fleetStatus(f)
	st.Final = true
	return enc.Encode(st)
}
