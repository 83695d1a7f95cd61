package main

import (
	"os"
	"testing"
	"time"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\therald\nState:\tS (sleeping)\nVmPeak:\t  812344 kB\nVmRSS:\t   15236 kB\nRssAnon:\t    9000 kB\n"
	got, err := parseVmRSS([]byte(status))
	if err != nil || got != 15236*1024 {
		t.Fatalf("parseVmRSS = %d, %v; want %d", got, err, 15236*1024)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\nState:\tS\n")); err == nil {
		t.Fatal("a status without VmRSS parsed")
	}
	if _, err := parseVmRSS([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Fatal("a VmRSS in another unit parsed")
	}
	if anon, err := parseStatusKB([]byte(status), "RssAnon"); err != nil || anon != 9000*1024 {
		t.Fatalf("RssAnon = %d, %v; want %d", anon, err, 9000*1024)
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses; utime 250 and stime 50 ticks.
	stat := "4242 (my (odd) herald) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 100 812344 3809 18446744073709551615\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"4242 herald S 1", "4242 (herald) S 1 2 3", "4242 (herald) S 1 4242 4242 0 -1 4194560 1234 0 0 0 x 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
}

func TestReadOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	rss, err := readRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("readRSS(self) = %d, %v", rss, err)
	}
	m := startCPU(os.Getpid())
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		// burn a little CPU
	}
	if c, ok := m.cores(); !ok || c < 0 {
		t.Fatalf("cores = %v, %v", c, ok)
	}
	if _, ok := startCPU(0).cores(); ok {
		t.Fatal("an unknown pid gave a CPU figure")
	}
}
