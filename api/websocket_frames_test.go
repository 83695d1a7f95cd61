package api_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/persistence"
)

// flood writes n frames as fast as the connection takes them while reading what comes
// back, until the server closes the connection. It returns how many frames came back,
// the error that ended the reads, and how long it all took: from before the first
// write to the close.
func (c *client) flood(n int, frame func(i int) string) (answers int, err error, elapsed time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wrote := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(wrote)
		for i := range n {
			if c.c.Write(ctx, websocket.MessageText, []byte(frame(i))) != nil {
				return // closed under us
			}
		}
	}()
	for {
		if _, err = c.read(10 * time.Second); err != nil {
			break
		}
		if answers++; answers == n {
			err = fmt.Errorf("all %d frames were answered and the connection is still open", n)
			break
		}
	}
	elapsed = time.Since(start)
	_ = c.c.CloseNow()
	<-wrote
	return answers, err, elapsed
}

// closedForFrames checks that err is the 1008 close of a connection over rate frames/s.
func closedForFrames(t *testing.T, err error, rate string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusCode(inbox.CloseTooManyFrames) {
		t.Fatalf("flooding connection ended with %v, want close %d", err, inbox.CloseTooManyFrames)
	}
	if want := "too many frames: at most " + rate + "/s"; ce.Reason != want {
		t.Fatalf("close reason %q, want %q", ce.Reason, want)
	}
}

// TestWebSocketFrameRate: a connection that sends pings faster than the frame rate is
// closed with 1008 after at most burst + rate·elapsed of them were answered; one within
// the rate is not, another connection of the same user is untouched, and the user
// reconnects at once.
func TestWebSocketFrameRate(t *testing.T) {
	const rate, burst = 50, 10
	e := newEnvOpts(t, stores["embedded"](t), envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})

	polite := e.dial(t, "alice", "")
	polite.expect(inboxSnapshot, 0)
	// 2·burst pings at half the rate: past the burst, on the refill alone.
	tick := time.NewTicker(time.Second / (rate / 2))
	for range 2 * burst {
		<-tick.C
		polite.send(`{"event":"ping"}`)
		polite.expect("pong", -1)
	}
	tick.Stop()

	flooder := e.dial(t, "alice", "")
	flooder.expect(inboxSnapshot, 0)
	before := e.metric("herald_ws_frames_received_total")
	pongs, err, elapsed := flooder.flood(500, func(int) string { return `{"event":"ping"}` })
	closedForFrames(t, err, "50")
	most := burst + rate*elapsed.Seconds()
	if float64(pongs) > most {
		t.Fatalf("%d pongs in %s, want at most %.1f (burst %d + %d/s)", pongs, elapsed, most, burst, rate)
	}
	// The pongs still queued at the close are dropped with the queue: what the server
	// acted on is the bound that matters.
	handled := e.metric("herald_ws_frames_received_total") - before
	if handled > most {
		t.Fatalf("%v frames acted on in %s, want at most %.1f (burst %d + %d/s)", handled, elapsed, most, burst, rate)
	}
	t.Logf("flood of 500 pings: %v acted on, %d pongs received, closed after %s", handled, pongs, elapsed)
	if n := e.metric("herald_ws_frame_rate_closes_total"); n != 1 {
		t.Fatalf("herald_ws_frame_rate_closes_total = %v, want 1", n)
	}

	polite.quiet() // the user's other connection is open
	again := e.dial(t, "alice", "")
	again.expect(inboxSnapshot, 0)
	for range burst {
		again.send(`{"event":"ping"}`) // a fresh connection has a full bucket
	}
	for range burst {
		again.expect("pong", -1)
	}
}

// countingWrites is a store that counts the mark-read ops reaching its transactions.
type countingWrites struct {
	persistence.Store
	markReads *atomic.Int64
}

func (s countingWrites) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	for i := range ops {
		if ops[i].Kind == persistence.OpMarkRead {
			s.markReads.Add(1)
		}
	}
	return s.Store.Apply(ctx, now, ops)
}

// TestWebSocketMarkReadFlood: mark-read frames with random ids sent as fast as one
// socket can send them cause no more store writes than the frame rate allows.
func TestWebSocketMarkReadFlood(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			const rate, burst = 50, 20
			marks := new(atomic.Int64)
			e := newEnvOpts(t, countingWrites{stores[name](t), marks}, envOptions{ws: ws.Options{FrameRate: rate, FrameBurst: burst}})
			c := e.dial(t, "mallory", "")
			c.expect(inboxSnapshot, 0)
			answers, err, elapsed := c.flood(500, func(int) string {
				return fmt.Sprintf(`{"event":"mark-read","data":{"id":"%08x-%04x-7%03x-8%03x-%012x"}}`,
					rand.Uint32(), rand.Uint32N(1<<16), rand.Uint32N(1<<12), rand.Uint32N(1<<12), rand.Uint64N(1<<48))
			})
			closedForFrames(t, err, "50")
			most := burst + rate*elapsed.Seconds()
			if n := marks.Load(); float64(n) > most {
				t.Fatalf("%d mark-reads reached the store in %s, want at most %.1f (burst %d + %d/s)", n, elapsed, most, burst, rate)
			}
			if float64(answers) > most {
				t.Fatalf("%d error frames in %s, want at most %.1f", answers, elapsed, most)
			}
			t.Logf("flood of 500 mark-reads: %d reached the store, closed after %s", marks.Load(), elapsed)
		})
	}
}
