// Package poll waits in tests for a condition that no event announces: a metric that
// moves, a row that a background goroutine writes, a process that answers again.
//
//	poll.Until(t, "every delivery recorded", 20*time.Second, func() bool { ... })
//
// Until checks cond at once, then at growing intervals (1 ms doubling up to 50 ms), and
// fails the test, naming what it waited for, when cond has not held within the time
// given. A test that can wait on a channel or a returned value does that instead.
package poll

import (
	"testing"
	"time"
)

const (
	firstInterval = time.Millisecond
	maxInterval   = 50 * time.Millisecond
)

// Until returns once cond holds, and fails the test with t.Fatalf if it has not held
// within the given time. It must be called from the test's goroutine.
func Until(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for interval := firstInterval; !cond(); interval = min(2*interval, maxInterval) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(interval)
	}
}
