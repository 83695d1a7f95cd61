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
	pid := engine.SpawnFunc(func(c *actor.Context) {
		if s, ok := c.Message().(string); ok {
			if s == "boom" {
				panic("boom")
			}
			got <- s
		}
	}, "victim", actor.WithMiddleware(supervise.Recover(log, func() { panics <- struct{}{} })), actor.WithMaxRestarts(0))
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

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
