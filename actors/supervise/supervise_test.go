package supervise_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald/actors/supervise"
)

// TestRecoverKeepsTheActor: a panicking message is logged and dropped, and the same
// actor goes on with the next message.
func TestRecoverKeepsTheActor(t *testing.T) {
	var mu sync.Mutex // guards buf: the actor logs from its own goroutine
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	panics := make(chan struct{}, 1)
	victim := func() actor.Receiver {
		return receiveFunc(func(c *actor.Context) {
			if s, ok := c.Message().(string); ok {
				if s == "boom" {
					panic("boom")
				}
				got <- s
			}
		})
	}
	pid := engine.Spawn(supervise.Recover(log, func() { panics <- struct{}{} }, victim), "victim", actor.WithMaxRestarts(0))
	engine.Send(pid, "boom")
	engine.Send(pid, "after")
	select {
	case s := <-got:
		if s != "after" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the actor stopped processing after a panic")
	}
	<-panics
	<-engine.Poison(pid).Done()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "actor panicked") || !strings.Contains(buf.String(), "boom") {
		t.Fatalf("panic not logged: %s", buf.String())
	}
}

type receiveFunc func(*actor.Context)

func (f receiveFunc) Receive(c *actor.Context) { f(c) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRecoverAllocatesNothingPerMessage: the wrapped Receive costs no allocation a
// message (hollywood's middleware, which this replaces, cost two on every message of
// every actor).
func TestRecoverAllocatesNothingPerMessage(t *testing.T) {
	var n int
	rcv := supervise.Recover(slog.Default(), nil, func() actor.Receiver {
		return receiveFunc(func(*actor.Context) { n++ })
	})()
	if allocs := testing.AllocsPerRun(1000, func() { rcv.Receive(nil) }); allocs != 0 {
		t.Fatalf("%v allocations a message, want 0", allocs)
	}
	if n == 0 {
		t.Fatal("the wrapped receiver never ran")
	}
}
