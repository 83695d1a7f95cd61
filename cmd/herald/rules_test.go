package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ruleA = `rules:
  - name: created
    match: project.created
    notify:
      - receiver: ownerId
        type: project.created
        payload: {message: 'A: {{.data.title}}'}
`

const ruleB = `rules:
  - name: created
    match: project.created
    notify:
      - receiver: ownerId
        type: project.created
        payload: {message: 'B: {{.data.title}}'}
`

// TestRulesReloadOnHUP: SIGHUP loads the rules file again; a broken file keeps the
// rules in force; a broken file at start refuses to start, naming the rule and field.
func TestRulesReloadOnHUP(t *testing.T) {
	bin := buildHerald(t)
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(ruleA), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1",
		"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_RULES=" + file}

	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	base := watch(stdout).waitReady(t)
	waitLog := func(substr string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-logs:
				if !ok {
					t.Fatalf("herald exited before logging %q", substr)
				}
				if strings.Contains(l, substr) {
					return
				}
			case <-deadline:
				t.Fatalf("no log line with %q within 30s", substr)
			}
		}
	}
	waitLog("event rules loaded")
	emit := func(want string) {
		t.Helper()
		code, b := request(t, "POST", base+"/events", "k1", `{"name":"project.created","data":{"ownerId":"o","title":"Atlas"}}`)
		if code != 202 || !strings.Contains(string(b), want) {
			t.Fatalf("event: %d %s, want a notification saying %q", code, b, want)
		}
	}
	emit("A: Atlas")

	if err := os.WriteFile(file, []byte("rules:\n  - name: broken\n    match: x\n    notify: [{receiver: a, type: t, payload: {m: '{{.data.'}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog("rules not reloaded")
	emit("A: Atlas")

	if err := os.WriteFile(file, []byte(ruleB), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitLog("event rules reloaded")
	emit("B: Atlas")

	// A broken file at start: herald refuses to start and says where.
	if err := os.WriteFile(file, []byte("rules:\n  - name: bad-one\n    match: x\n    notify: [{receiver: a, type: t, colour: red}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := exec.Command(bin, "serve")
	bad.Env = append(os.Environ(), env...)
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HERALD_RULES") || !strings.Contains(string(out), "bad-one") || !strings.Contains(string(out), "colour") {
		t.Fatalf("start with a broken rules file: %v\n%s", err, out)
	}
}
