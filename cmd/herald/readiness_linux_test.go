//go:build linux

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/poll"
)

// TestReadyzWhileWritesFail runs the real binary on the embedded store and makes every
// write of its file fail, as a full disk does, by setting the process's file size limit
// (RLIMIT_FSIZE) to 0: writes get EFBIG, reads go on. /readyz must then answer 503 with
// the reason, not 200, and turn back to 200 once writes go through again, without any
// traffic to prove it (a load balancer sends none to a node that is not ready).
func TestReadyzWhileWritesFail(t *testing.T) {
	dir := t.TempDir()
	p := startHerald(t, buildHerald(t), []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + dir,
		"HERALD_JWT_SECRET=" + secret, "HERALD_API_KEYS=k1", "HERALD_LOG_LEVEL=error"})
	pid := p.cmd.Process.Pid
	create := func() (int, []byte) {
		return request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"u","type":"t"}`)
	}
	if c, b := create(); c != 201 {
		t.Fatalf("create before the failure: %d %s", c, b)
	}
	if c, b := request(t, "GET", p.base+"/readyz", "", ""); c != 200 {
		t.Fatalf("readyz before the failure: %d %s", c, b)
	}

	limit := func(cur uint64) {
		t.Helper()
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: cur, Max: unix.RLIM_INFINITY}, nil); err != nil {
			t.Fatalf("prlimit RLIMIT_FSIZE %d on pid %d: %v", cur, pid, err)
		}
	}
	limit(0)
	if c, b := create(); c != 503 || !strings.Contains(string(b), `"unavailable"`) {
		t.Fatalf("create while writes fail: %d %s, want 503 unavailable", c, b)
	}
	c, b := request(t, "GET", p.base+"/readyz", "", "")
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(b, &e); err != nil || c != 503 || e.Error.Code != "unavailable" ||
		!strings.Contains(e.Error.Message, "writes failing") {
		t.Fatalf("readyz while writes fail: %d %s, want 503 unavailable naming the failing writes", c, b)
	}
	if strings.Contains(string(b), dir) || strings.Contains(string(b), "file too large") {
		t.Errorf("readyz, a public route, names the file or the system error: %s", b)
	}
	// Reads still work: the failure is in writing only.
	user, _ := auth.SignUserToken([]byte(secret), "u", "", time.Hour)
	if c, b := request(t, "GET", p.base+"/notifications/unread", user, ""); c != 200 {
		t.Fatalf("read while writes fail: %d %s", c, b)
	}

	limit(unix.RLIM_INFINITY)
	poll.Until(t, "readyz to answer 200 once writes go through again", 10*time.Second, func() bool {
		c, _ := request(t, "GET", p.base+"/readyz", "", "")
		return c == 200
	})
	if c, b := create(); c != 201 {
		t.Fatalf("create after the failure: %d %s", c, b)
	}
	_, b = request(t, "GET", p.base+"/notifications/unread", user, "")
	var page struct{ Total int }
	if err := json.Unmarshal(b, &page); err != nil || page.Total != 2 {
		t.Fatalf("unread after the failure: %s, want the 2 acknowledged notifications, nothing of the refused one", b)
	}
}
