package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDeliverLine(t *testing.T) {
	got := deliverLine("deliver", 12*time.Second+300*time.Millisecond, 120340, 10002.4, 120311, 8100*time.Microsecond)
	want := "deliver 12s: published 120340 (10002/s) delivered 120311 p99 8.1ms"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestEventsLine(t *testing.T) {
	got := eventsLine("events", 3*time.Second, 3001, 1000.4, 30010, 29990, 2100*time.Microsecond)
	want := "events 3s: events 3001 (1000/s) stored 30010 delivered 29990 p99 2.1ms"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestConnectLine(t *testing.T) {
	got := connectLine("idle", 3*time.Second, 4210, 15000, 1402.2, 0)
	want := "idle 3s: connected 4210/15000 (1402/s) failed 0"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "0ns",
		999:                       "999ns",
		time.Microsecond:          "1µs",
		812 * time.Microsecond:    "812µs",
		8100 * time.Microsecond:   "8.1ms",
		12345 * time.Microsecond:  "12.3ms",
		999990 * time.Microsecond: "1000ms",
		1234 * time.Millisecond:   "1.23s",
		90 * time.Second:          "90s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", time.Duration(d), got, want)
		}
	}
}

func TestFmtBytes(t *testing.T) {
	for n, want := range map[float64]string{
		0: "0 B", 512: "512 B", 1536: "1.5 KiB", 89.6 * 1024: "89.6 KiB",
		150 << 20: "150 MiB", -2048: "-2 KiB", 3 << 30: "3 GiB",
	} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%v) = %q, want %q", n, got, want)
		}
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	if got := m.rate(1000, time.Second); got != 1000 {
		t.Fatalf("first second: %v/s", got)
	}
	if got := m.rate(1500, 1500*time.Millisecond); got != 1000 {
		t.Fatalf("next half second: %v/s", got)
	}
	if got := m.rate(1500, 1500*time.Millisecond); got != 0 {
		t.Fatalf("no time passed: %v/s", got)
	}
}

// lockedBuffer is a strings.Builder safe for the progress goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgressPrintsUntilStopped(t *testing.T) {
	var out lockedBuffer
	p := startProgress(&out, time.Millisecond, func(el time.Duration) string { return "tick" })
	ok := pollUntil(t.Context(), 10*time.Second, time.Millisecond, func() bool {
		return strings.Count(out.String(), "tick\n") >= 3
	})
	p.Stop()
	if !ok {
		t.Fatalf("three lines did not come within 10 s: %q", out.String())
	}
	select {
	case <-p.done: // nothing can print any more
	default:
		t.Fatal("the progress goroutine outlived Stop")
	}
	startProgress(nil, time.Millisecond, func(time.Duration) string { panic("quiet progress called line") }).Stop()
}
