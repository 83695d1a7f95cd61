package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResultMarkdownAndJSON(t *testing.T) {
	r := &Result{Scenario: "deliver"}
	r.cond("users", 1000)
	r.metric("published/s", 10002.4, "/s")
	r.duration("latency p99", 8100*time.Microsecond)
	r.metric("server RSS per connection", 89.6*1024, "B")
	r.metric("server CPU", 1.234, "cores")
	r.count("published (201)", 200000)
	r.check("lost", 0)
	r.note("something worth %s", "knowing")

	var md strings.Builder
	if err := r.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## herald-bench deliver", "- users: 1000", "| measure | value |\n|---|---|",
		"| published/s | 10002/s |", "| latency p99 | 8.1ms |", "| server RSS per connection | 89.6 KiB |",
		"| server CPU | 1.23 cores |", "| published (201) | 200000 |", "| lost | 0 (ok) |", "Note: something worth knowing",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}
	if !r.passed() {
		t.Fatal("a result whose checks are all zero did not pass")
	}

	back, b := jsonRoundTrip(t, r)
	if back.Metrics[1].Name != "latency p99" || back.Metrics[1].Value != 0.0081 || back.Metrics[1].Unit != "s" || !back.Checks[0].OK {
		t.Fatalf("JSON round trip: %s", b)
	}

	r.check("duplicates", 2)
	md.Reset()
	r.writeMarkdown(&md)
	if r.passed() || !strings.Contains(md.String(), "| duplicates | 2 (FAIL) |") {
		t.Fatalf("a failed check: passed = %v\n%s", r.passed(), md.String())
	}
}

func TestParseReady(t *testing.T) {
	base, store, ok := parseReady("herald ready: listening on http://127.0.0.1:41234 (store: embedded /tmp/x)")
	if !ok || base != "http://127.0.0.1:41234" || store != "embedded /tmp/x" {
		t.Fatalf("parseReady = %q, %q, %v", base, store, ok)
	}
	if _, _, ok := parseReady("herald: some log line"); ok {
		t.Fatal("a log line parsed as the ready line")
	}
}

func TestOptions(t *testing.T) {
	t.Setenv("HERALD_JWT_SECRET", "s3cret-from-the-environment-0123456789")
	t.Setenv("HERALD_API_KEYS", " k1 ,k2")
	o, err := parseOptions([]string{"-scenario", "idle", "-n", "15000"}, new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	if o.secret != "s3cret-from-the-environment-0123456789" || o.apiKey != "k1" {
		t.Errorf("credentials from the environment: %q, %q", o.secret, o.apiKey)
	}
	if o.sourceIPs != 3 || o.stormAt != o.duration/2 {
		t.Errorf("defaults: source-ips %d, storm-at %v", o.sourceIPs, o.stormAt)
	}
	var usage strings.Builder
	if _, err := parseOptions([]string{"-h"}, &usage); err == nil || strings.Contains(usage.String(), "s3cret") {
		t.Errorf("-h: err %v; the usage shows the secret: %v", err, strings.Contains(usage.String(), "s3cret"))
	}
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-scenario", "deliver", "-n", "0"},
		{"-scenario", "deliver", "-batch-size", "1001"},
		{"-scenario", "deliver", "-publish", "carrier-pigeon"},
		{"-scenario", "reconnect-storm", "-publish", "multicast"},                        // deliver only
		{"-scenario", "deliver", "-n", "5", "-publish", "multicast", "-batch-size", "6"}, // more receivers than users
		{"-scenario", "deliver", "-n", "20000"},                                          // only idle spreads over processes
		{"-scenario", "reconnect-storm", "-duration", "10s", "-storm-at", "10s"},
		{"-scenario", "idle", "-source-ips", "255"},
		{"-scenario", "idle", "extra"},
		{"-scenario", "deliver", "-postgres", "throwaway"}, // only for a server the bench starts
		{"-scenario", "deliver", "-start-server", "./herald", "-postgres", "shared"},
		{"-scenario", "deliver", "-timeout", "-1s"},
		{"-summarize"}, // no results named
		{"-scenario", "deliver", "-window", "-1s"},
		{"-scenario", "idle", "-window", "1s"},                                                                          // no publishing to window
		{"-scenario", "deliver", "-duration", "10s", "-window", "11s"},                                                  // longer than the run
		{"-scenario", "deliver", "-start-server", "./herald", "-postgres", "throwaway", "-nodes", "3", "-window", "1s"}, // one server only
	} {
		if _, err := parseOptions(args, new(strings.Builder)); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
	o, err = parseOptions([]string{"-scenario", "deliver", "-start-server", "./herald", "-postgres", "throwaway", "-timeout", "90s"}, new(strings.Builder))
	if err != nil || o.postgres != postgresThrowaway || o.bound() != 90*time.Second {
		t.Errorf("-postgres throwaway -timeout 90s: %v, bound %v", err, o.bound())
	}
	for _, scenario := range []string{scenarioDeliver, scenarioEvents} {
		if o, err := parseOptions([]string{"-scenario", scenario, "-duration", "10m", "-window", "1m"}, new(strings.Builder)); err != nil || o.window != time.Minute {
			t.Errorf("-scenario %s -window 1m: %v", scenario, err)
		}
	}
	if o, err := parseOptions([]string{"-summarize", "a.json", "b.json"}, new(strings.Builder)); err != nil || len(o.files) != 2 {
		t.Errorf("-summarize a.json b.json: %v", err)
	}
	if code := run(t.Context(), []string{"-scenario", "nope"}, nil, new(strings.Builder), new(strings.Builder)); code != exitError {
		t.Errorf("run with a bad flag = %d, want %d", code, exitError)
	}
}

func TestChildSpec(t *testing.T) {
	off, run, err := parseChildSpec("9000,ab12")
	if err != nil || off != 9000 || run != "ab12" {
		t.Fatalf("parseChildSpec = %d, %q, %v", off, run, err)
	}
	for _, bad := range []string{"", "9000", "x,ab", "-1,ab", "5,"} {
		if _, _, err := parseChildSpec(bad); err == nil {
			t.Errorf("parseChildSpec(%q) succeeded", bad)
		}
	}
}

// jsonRoundTrip writes r as -out does and reads it back: the result and the file's bytes.
func jsonRoundTrip(t *testing.T, r *Result) (Result, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back, b
}
