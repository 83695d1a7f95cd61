package api

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(Rate{Per: 2, Burst: 3}, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("u"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("u")
	if ok || wait != 500*time.Millisecond || retryAfter(wait) != "1" {
		t.Fatalf("over the burst: ok %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow("v"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(500 * time.Millisecond) // one token back at 2/s
	if ok, _ := l.allow("u"); !ok {
		t.Fatal("no refill")
	}
	if ok, _ := l.allow("u"); ok {
		t.Fatal("refilled more than the elapsed time allows")
	}

	// Buckets that refilled are dropped: memory follows active keys only.
	for i := 0; i < 1000; i++ {
		l.allow(fmt.Sprint("k", i))
	}
	now = now.Add(10 * time.Second)
	l.allow("u")
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets kept after all refilled, want 1", n)
	}
	if ok, _ := (*limiter)(nil).allow("x"); !ok {
		t.Fatal("a nil limiter limits")
	}
	if ok, _ := newLimiter(Rate{}, time.Now).allow("x"); !ok {
		t.Fatal("a zero rate limits")
	}
}
