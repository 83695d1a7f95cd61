package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAnonMemoryMetric: the real server's /metrics has herald_process_anon_memory_bytes,
// the RssAnon of its own /proc status (read around the scrape), below its resident
// memory.
func TestAnonMemoryMetric(t *testing.T) {
	bin := buildHerald(t)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret,
		"HERALD_API_KEYS=k1", "HERALD_DATA_DIR=" + t.TempDir()})
	status := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	anon := func() int64 {
		b, err := os.ReadFile(status)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := parseRssAnon(b)
		if !ok {
			t.Fatalf("no RssAnon in %s:\n%s", status, b)
		}
		return n
	}
	before := anon()
	got := metric(t, p.base, "herald_process_anon_memory_bytes")
	after := anon()
	const slack = 4 << 20 // what the scrape itself may allocate and free
	if lo, hi := min(before, after)-slack, max(before, after)+slack; got < float64(lo) || got > float64(hi) {
		t.Fatalf("herald_process_anon_memory_bytes = %.0f, RssAnon of the process %d then %d", got, before, after)
	}
	if rss := metric(t, p.base, "herald_process_resident_memory_bytes"); got <= 0 || got > rss {
		t.Fatalf("herald_process_anon_memory_bytes = %.0f, resident memory %.0f", got, rss)
	}
}

// TestAnonMemoryAbsent: where the status file cannot be read, the metric is absent, not 0.
func TestAnonMemoryAbsent(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newAnonMemory("/nonexistent/status"))
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("without a status file: %d metric families (%v), want none", len(mfs), err)
	}
	for _, bad := range []string{"Name:\therald\n", "RssAnon:\t12 MB\n", "RssAnon:\tx kB\n"} {
		if _, ok := parseRssAnon([]byte(bad)); ok {
			t.Errorf("parseRssAnon(%q) succeeded", bad)
		}
	}
	if n, ok := parseRssAnon([]byte("VmRSS:\t 15236 kB\nRssAnon:\t    9000 kB\n")); !ok || n != 9000<<10 {
		t.Fatalf("parseRssAnon = %d, %v; want %d", n, ok, 9000<<10)
	}
}
