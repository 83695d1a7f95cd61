package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestThrowawayPostgres runs the server on a throwaway PostgreSQL (-postgres throwaway)
// at a tiny scale, and checks that the cluster is gone afterwards: after a clean run,
// after an interrupt while connections are held and after one while PostgreSQL starts.
func TestThrowawayPostgres(t *testing.T) {
	needPostgres(t)
	bin := buildHerald(t)
	outDir := t.TempDir() // before TMPDIR changes
	tmp := privateTmp(t)
	// The throwaway cluster wins over a database the caller's environment names.
	t.Setenv("HERALD_DATABASE_URL", "postgres://nobody@127.0.0.1:1/nowhere?sslmode=disable")
	common := []string{"-start-server", bin, "-postgres", "throwaway", "-n", "10", "-drain", "10s", "-connect-timeout", "30s"}

	t.Run("deliver", func(t *testing.T) {
		out := filepath.Join(outDir, "pg.json")
		args := append(append([]string{}, common...), "-scenario", "deliver", "-rate", "200", "-duration", "1s",
			"-publish", "batch", "-batch-size", "5", "-publishers", "2", "-quiet", "-out", out)
		var stdout, stderr lockedBuffer
		if code := run(t.Context(), args, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
		md := stdout.String()
		for _, want := range []string{"- store: postgres (throwaway, fsync on)\n", "store: postgres)", "fsync on, synchronous_commit on"} {
			if !strings.Contains(md, want) {
				t.Errorf("the conditions lack %q:\n%s", want, md)
			}
		}
		r, err := readResult(out)
		if err != nil {
			t.Fatal(err)
		}
		if r.Store != "postgres (throwaway, fsync on)" || r.Params.N != 10 || r.Params.BatchSize != 5 {
			t.Errorf("store %q, params %+v", r.Store, r.Params)
		}
		if acked, delivered := metricValue(t, r, "published (201)"), metricValue(t, r, "delivered"); acked == 0 || delivered != acked {
			t.Errorf("published %v, delivered %v: want equal and positive", acked, delivered)
		}
		if !r.passed() {
			t.Errorf("checks failed: %+v", r.Checks)
		}
		clusterGone(t, md, tmp)
	})

	t.Run("interrupted while holding", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		args := append(append([]string{}, common...), "-scenario", "idle", "-duration", "5m")
		var stdout, stderr lockedBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, nil, &stdout, &stderr) }()
		if !pollUntil(t.Context(), 2*time.Minute, 50*time.Millisecond, func() bool { return strings.Contains(stderr.String(), "holding 10/10") }) {
			cancel()
			<-done
			t.Fatalf("never held the connections:\n%s", stderr.String())
		}
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("exit status %d after an interrupt while holding\n%s", code, stderr.String())
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("the bench did not stop within 2 minutes of the interrupt")
		}
		clusterGone(t, stdout.String(), tmp)
	})

	t.Run("interrupted while starting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		args := append(append([]string{}, common...), "-scenario", "deliver")
		var stdout, stderr lockedBuffer
		if code := run(ctx, args, nil, &stdout, &stderr); code != exitError {
			t.Errorf("exit status %d, want %d", code, exitError)
		}
		if !strings.Contains(stderr.String(), "interrupted while starting PostgreSQL") {
			t.Errorf("stderr:\n%s", stderr.String())
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("left behind in the temporary directory: %v", left)
		}
	})
}

// needPostgres skips the test when PostgreSQL cannot be started here, or fails it when
// the environment variable CI is "true".
func needPostgres(t *testing.T) {
	t.Helper()
	var missing []string
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := exec.LookPath(name); err == nil {
			continue
		}
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
			continue
		}
		missing = append(missing, name)
	}
	var why string
	switch {
	case len(missing) > 0:
		why = "PostgreSQL's " + strings.Join(missing, " and ") + " not found on PATH or in /usr/lib/postgresql/*/bin"
	case os.Geteuid() == 0:
		if _, err := user.Lookup("postgres"); err != nil {
			why = "running as root, PostgreSQL needs a postgres user to run as: " + err.Error()
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("-postgres throwaway cannot be tested (CI=true): %s", why)
	}
	t.Skipf("-postgres throwaway cannot be tested: %s", why)
}

// privateTmp points TMPDIR at a directory of the test's own, where the bench's and
// pgtest's temporary directories go, so that the test can tell they were removed. It
// is open to all (pgtest runs PostgreSQL as the postgres user when the test is root).
func privateTmp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "herald-bench-test-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("TMPDIR", dir)
	return dir
}

var clusterRE = regexp.MustCompile(`on 127\.0\.0\.1:(\d+), .*a throwaway cluster in (\S+), removed`)

// clusterGone checks that the cluster named in a result's conditions stopped and was
// removed, and that nothing is left in tmp.
func clusterGone(t *testing.T, md, tmp string) {
	t.Helper()
	m := clusterRE.FindStringSubmatch(md)
	if m == nil {
		t.Fatalf("no throwaway cluster in the conditions:\n%s", md)
	}
	if !strings.HasPrefix(m[2], tmp+string(filepath.Separator)) {
		t.Errorf("the cluster %s is not in TMPDIR %s", m[2], tmp)
	}
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory %s is still there (%v)", m[2], err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on the cluster's port %s", m[1])
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in the temporary directory: %v", left)
	}
}
