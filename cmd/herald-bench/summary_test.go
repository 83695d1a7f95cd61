package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *Result) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := r.writeJSON(path); err != nil {
			t.Fatal(err)
		}
		return path
	}

	idle := &Result{Scenario: scenarioIdle, Store: "embedded /tmp/herald-bench-1/data", Params: Params{N: 15000, Duration: "10s"}}
	idle.count("connected", 15000)
	idle.duration("connect time (start to last snapshot)", 3500*time.Millisecond)
	idle.metric("connect rate (snapshot frame included)", 4285.7, "/s")
	idle.metric("server CPU, connecting", 1.234, "cores")
	idle.metric("bench CPU, connecting", 0.5, "cores")
	idle.metric("server CPU, holding", 0.01, "cores")
	idle.metric("bench CPU, holding", 0, "cores")
	idle.metric("server RSS per connection", 20.5*1024, "B")
	idle.check("connections that never connected", 0)

	deliver := &Result{Scenario: scenarioDeliver, Store: "postgres (throwaway, fsync on)",
		Params: Params{N: 5000, Duration: "15s", Rate: 0, Publish: publishBatch, BatchSize: 100}}
	deliver.metric("published/s", 45123.4, "/s")
	deliver.count("delivered", 676851)
	deliver.duration("latency (publish to socket) p50", 12*time.Millisecond)
	deliver.duration("latency (publish to socket) p99", 85300*time.Microsecond)
	deliver.metric("server CPU, publishing", 1.5, "cores")
	deliver.metric("bench CPU, publishing", 0.45, "cores")
	deliver.check("lost (acknowledged, never received)", 3)
	deliver.check("duplicate notifications (same marker twice)", 1)
	deliver.check("duplicates (same seq or id on one socket)", 1)

	events := &Result{Scenario: scenarioEvents, Store: "embedded /x", Params: Params{N: 1000, Duration: "15s", Rate: 500, Fanout: 10}}
	events.metric("events/s accepted", 499.6, "/s")

	var out strings.Builder
	files := []string{write("idle.json", idle), write("deliver.json", deliver), write("events.json", events), filepath.Join(dir, "gone.json")}
	if err := summarize(files, &out); err != nil {
		t.Fatal(err)
	}
	rows := tableRows(t, out.String())
	want := [][]string{
		{"idle, hold 10s", "embedded", "15,000", "—", "4,286/s connecting", "—", "20.5 KiB", "1.23", "0.50", "—", "ok",
			"15,000 connected in 3.5s; holding: server 0.01, bench 0.00 cores"},
		{"deliver, batches of 100", "postgres (throwaway, fsync on)", "5,000", "flat out", "45,123/s", "12ms / 85.3ms", "—", "1.50", "0.45", "3 / 2",
			"**FAIL** lost (acknowledged, never received): 3; duplicate notifications (same marker twice): 1; duplicates (same seq or id on one socket): 1",
			"676,851 delivered; published for 15s"},
		{"events, fan-out 10", "embedded", "1,000", "500 events/s", "500 events/s", "— / —", "—", "—", "—", "—", "ok",
			"— notifications/s stored, — delivered; published for 15s"},
		{"gone", "—", "—", "—", "—", "—", "—", "—", "—", "—", "**no result** (the run failed; see its output)", "—"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out.String())
	}
	for i := range want {
		if strings.Join(rows[i], " | ") != strings.Join(want[i], " | ") {
			t.Errorf("row %d:\n got %q\nwant %q", i, rows[i], want[i])
		}
	}
	if !strings.Contains(out.String(), "\nCPU: cores used") {
		t.Errorf("no legend under the table:\n%s", out.String())
	}

	// A file that is not a result is an error, not a row.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("not json"), 0o600)
	if err := summarize([]string{bad}, new(strings.Builder)); err == nil {
		t.Error("a file that is not JSON was summarised")
	}
}

func TestFmtCount(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 15000: "15,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := fmtCount(v); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", v, got, want)
		}
	}
}
