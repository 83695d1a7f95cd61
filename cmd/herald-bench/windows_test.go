package main

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer stands in for /proc of the server: the test sets its CPU time and RssAnon.
type fakeServer struct {
	cpu  time.Duration
	anon int64
	gone bool // unreadable, as a server that exited
}

func (f *fakeServer) readers() (func() (time.Duration, bool), func() (int64, bool)) {
	return func() (time.Duration, bool) { return f.cpu, !f.gone }, func() (int64, bool) { return f.anon, !f.gone }
}

// TestWindowRotation drives a windowSet through three windows at injected times: each
// row holds what happened in its window only, the last also what the drain received,
// and nothing is recorded once the set has finished.
func TestWindowRotation(t *testing.T) {
	var lat, req windowed
	var acked, received atomic.Int64
	lat.record(time.Hour) // no window open: recorded nowhere
	acked.Store(5)        // before the first window: not its
	srv := &fakeServer{cpu: 10 * time.Second, anon: 100 << 20}
	cpu, anon := srv.readers()
	start := time.Unix(1_000_000, 0)
	w := newWindowSet(time.Minute, start, &lat, &req, &acked, &received, cpu, anon)
	var lines []Window
	w.line = func(row Window) { lines = append(lines, row) }

	// Window 1: 120 acknowledged, 100 receipts of 1..100 ms, requests of 2 ms.
	for i := 1; i <= 100; i++ {
		lat.record(time.Duration(i) * time.Millisecond)
		received.Add(1)
	}
	req.record(2 * time.Millisecond)
	acked.Add(120)
	srv.cpu += 30 * time.Second // 0.5 cores over a minute
	srv.anon = 110 << 20
	w.rotate(start.Add(time.Minute))

	// Window 2: 60 acknowledged, receipts of 5 ms and one of 900 ms.
	for range 99 {
		lat.record(5 * time.Millisecond)
		received.Add(1)
	}
	lat.record(900 * time.Millisecond)
	received.Add(1)
	req.record(4 * time.Millisecond)
	acked.Add(60)
	srv.cpu += 45 * time.Second
	w.rotate(start.Add(2 * time.Minute))

	// The last window ends at 2m30s; receipts of the drain come after.
	acked.Add(30)
	req.record(8 * time.Millisecond)
	srv.cpu += 15 * time.Second
	srv.gone = true // read at the end of publishing: no CPU nor memory figure
	w.end(start.Add(150 * time.Second))
	srv.gone = false
	lat.record(20 * time.Millisecond)
	received.Add(1)
	rows := w.finish()
	lat.record(time.Hour) // after finish: recorded nowhere
	req.record(time.Hour)
	if lat.cur.Load() != nil || req.cur.Load() != nil {
		t.Fatal("histograms still installed after finish")
	}

	if len(rows) != 3 || len(lines) != 3 {
		t.Fatalf("%d rows, %d progress lines; want 3", len(rows), len(lines))
	}
	r0, r1, r2 := rows[0], rows[1], rows[2]
	if r0.From != 0 || r0.To != 60 || r1.From != 60 || r1.To != 120 || r2.From != 120 || r2.To != 150 {
		t.Errorf("bounds %v–%v, %v–%v, %v–%v", r0.From, r0.To, r1.From, r1.To, r2.From, r2.To)
	}
	if r0.Acked != 120 || r0.AckedPerSecond != 2 || r1.Acked != 60 || r1.AckedPerSecond != 1 || r2.Acked != 30 || r2.AckedPerSecond != 1 {
		t.Errorf("acknowledged %d (%v/s), %d (%v/s), %d (%v/s)", r0.Acked, r0.AckedPerSecond, r1.Acked, r1.AckedPerSecond, r2.Acked, r2.AckedPerSecond)
	}
	if r0.Received != 100 || r1.Received != 100 || r2.Received != 1 {
		t.Errorf("received %d, %d, %d; want 100, 100, 1", r0.Received, r1.Received, r2.Received)
	}
	near := func(got, want float64) bool { return got >= want && got <= want*1.01 }
	if !near(r0.LatencyP50, 0.050) || !near(r0.LatencyP99, 0.099) || r0.LatencyMax != 0.1 {
		t.Errorf("window 1 latency p50 %v p99 %v max %v; want 50ms, 99ms, 100ms", r0.LatencyP50, r0.LatencyP99, r0.LatencyMax)
	}
	if !near(r1.LatencyP50, 0.005) || !near(r1.LatencyP99, 0.005) || r1.LatencyMax != 0.9 {
		t.Errorf("window 2 latency p50 %v p99 %v max %v; want 5ms, 5ms, 900ms", r1.LatencyP50, r1.LatencyP99, r1.LatencyMax)
	}
	if !near(r2.LatencyP50, 0.020) || r2.LatencyMax != 0.02 {
		t.Errorf("last window latency p50 %v max %v; want the drain's 20ms", r2.LatencyP50, r2.LatencyMax)
	}
	if !near(r0.RequestP99, 0.002) || !near(r1.RequestP50, 0.004) || !near(r2.RequestP99, 0.008) {
		t.Errorf("request latency %v, %v, %v; want 2ms, 4ms, 8ms", r0.RequestP99, r1.RequestP50, r2.RequestP99)
	}
	if r0.ServerCPU == nil || *r0.ServerCPU != 0.5 || r1.ServerCPU == nil || *r1.ServerCPU != 0.75 || r2.ServerCPU != nil {
		t.Errorf("server CPU %v, %v, %v; want 0.5, 0.75, none", r0.ServerCPU, r1.ServerCPU, r2.ServerCPU)
	}
	if r0.ServerAnon == nil || *r0.ServerAnon != 110<<20 || r2.ServerAnon != nil {
		t.Errorf("server RssAnon %v, last %v", r0.ServerAnon, r2.ServerAnon)
	}

	d := drift(rows)
	if d == nil || d.P50 != r2.LatencyP50/r0.LatencyP50 || d.P99 != r2.LatencyP99/r0.LatencyP99 || d.ServerCPU != 0 {
		t.Errorf("drift %+v; want last/first of p50 and p99 and no CPU (the last has none)", d)
	}
	if drift(rows[:1]) != nil {
		t.Error("drift of one window")
	}
}

// TestWindowTicker closes a window every interval until the next close would reach
// the end: the caller closes the last.
func TestWindowTicker(t *testing.T) {
	var lat, req windowed
	var acked, received atomic.Int64
	srv := &fakeServer{}
	cpu, anon := srv.readers()
	start := time.Now()
	w := newWindowSet(5*time.Millisecond, start, &lat, &req, &acked, &received, cpu, anon)
	stop, done := make(chan struct{}), make(chan struct{})
	go w.tick(start.Add(18*time.Millisecond), stop, done)
	<-done // at 5, 10 and 15 ms; not at 20, past the end
	close(stop)
	if len(w.rows) != 3 {
		t.Fatalf("%d windows closed before the end at 18ms, want 3", len(w.rows))
	}
	for i, row := range w.rows {
		if row.To < float64(i+1)*0.005 {
			t.Errorf("window %d closed at %vs, before %vs", i+1, row.To, float64(i+1)*0.005)
		}
	}

	// Stopped early (publishing ended): the ticker returns at once.
	stop, done = make(chan struct{}), make(chan struct{})
	go w.tick(start.Add(time.Hour), stop, done)
	close(stop)
	<-done
}

func TestWindowsMarkdownAndJSON(t *testing.T) {
	cores1, cores2 := 0.68, 0.91
	anon := int64(150 << 20)
	r := &Result{Scenario: "deliver"}
	r.count("published (201)", 10)
	r.Windows = []Window{
		{From: 0, To: 60, Acked: 120000, AckedPerSecond: 2000, RequestP50: 0.0012, RequestP99: 0.009,
			Received: 120000, LatencyP50: 0.0018, LatencyP99: 0.021, LatencyMax: 0.05, ServerCPU: &cores1, ServerAnon: &anon},
		{From: 60, To: 120, Acked: 119000, AckedPerSecond: 1983.3, RequestP50: 0.0013, RequestP99: 0.01,
			Received: 119000, LatencyP50: 0.0041, LatencyP99: 0.049, LatencyMax: 0.2, ServerCPU: &cores2},
	}
	r.Drift = drift(r.Windows)
	var md strings.Builder
	if err := r.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### per window",
		"| window | acknowledged/s | request p50 | request p99 | received | to socket p50 | to socket p99 | to socket max | server CPU | server RssAnon |",
		"| 0s–1m0s | 2000/s | 1.2ms | 9ms | 120000 | 1.8ms | 21ms | 50ms | 0.68 cores | 150 MiB |",
		"| 1m0s–2m0s | 1983/s | 1.3ms | 10ms | 119000 | 4.1ms | 49ms | 200ms | 0.91 cores | — |",
		"drift (last window / first window): to socket p50 ×2.28, p99 ×2.33, server CPU ×1.34",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}

	back, b := jsonRoundTrip(t, r)
	if len(back.Windows) != 2 || back.Windows[1].LatencyP99 != 0.049 || *back.Windows[0].ServerAnon != anon ||
		back.Windows[1].ServerAnon != nil || back.Drift == nil || back.Drift.P99 != r.Drift.P99 {
		t.Fatalf("JSON round trip: %s", b)
	}
	for _, key := range []string{`"windows"`, `"ackedPerSecond": 2000`, `"latencyP99": 0.021`, `"serverRssAnon": 157286400`, `"drift"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s:\n%s", key, b)
		}
	}

	// Without -window: neither the table nor the fields.
	plain := &Result{Scenario: "deliver"}
	md.Reset()
	plain.writeMarkdown(&md)
	j, _ := json.Marshal(plain)
	if strings.Contains(md.String(), "per window") || strings.Contains(md.String(), "drift") ||
		strings.Contains(string(j), "windows") || strings.Contains(string(j), "drift") {
		t.Errorf("a result without windows shows them:\n%s\n%s", md.String(), j)
	}
}

func TestWindowLine(t *testing.T) {
	cores := 0.7
	got := windowLine("deliver", 2, Window{From: 60, To: 120, AckedPerSecond: 1999.6, RequestP50: 0.001, RequestP99: 0.008,
		Received: 120000, LatencyP50: 0.002, LatencyP99: 0.025, LatencyMax: 0.08, ServerCPU: &cores})
	want := "deliver window 2 (1m0s–2m0s): acknowledged 2000/s, request p50 1ms p99 8ms, received 120000 p50 2ms p99 25ms max 80ms, server 0.70 cores —"
	if got != want {
		t.Errorf("windowLine:\n got %q\nwant %q", got, want)
	}
}
