package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/api/web"
)

// get sends GET url with the headers h (Host, when set, as the request's host).
func get(t *testing.T, method, url string, h map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range h {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestServeDevDemo: herald serve --dev prints the demo's URL, serves the demo inbox at
// /demo/ with the embedded client, gives the demo a user token at /dev/token (only to a
// request from this machine that names it), and allows its own origins, for CORS and
// for the ws-token, and no other.
func TestServeDevDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev"}, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + t.TempDir()}, pw, io.Discard)
		pw.Close()
	}()
	out := watch(pr)
	base := out.waitReady(t)
	port := base[strings.LastIndexByte(base, ':')+1:]
	var demo []string
	for l := range out.all {
		if m := regexp.MustCompile(`demo inbox:\s+(\S+)`).FindStringSubmatch(l); m != nil {
			demo = m
			break
		}
	}
	if demo == nil || demo[1] != base+"/demo/" {
		t.Fatalf("the banner does not print the demo URL %s/demo/: %q", base, demo)
	}
	go func() {
		for range out.all { // keep the pipe flowing
		}
	}()

	code, h, b := get(t, "GET", base+"/demo/", nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !bytes.Contains(b, []byte(`aria-live`)) ||
		!bytes.Contains(b, []byte(`from './herald.js'`)) {
		t.Fatalf("GET /demo/: %d %s %.200s", code, h.Get("Content-Type"), b)
	}
	code, h, b = get(t, "GET", base+"/demo/herald.js", nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") || !bytes.Equal(b, web.Client()) {
		t.Fatalf("GET /demo/herald.js: %d %s, %d bytes", code, h.Get("Content-Type"), len(b))
	}
	if code, _, _ := get(t, "GET", base+"/demo/secret.txt", nil); code != 404 {
		t.Fatalf("GET /demo/secret.txt: %d, want 404", code)
	}

	code, _, b = get(t, "GET", base+"/dev/token?user=bob", nil)
	var tok struct {
		Token, UserID string
	}
	if code != 200 || json.Unmarshal(b, &tok) != nil || tok.UserID != "bob" {
		t.Fatalf("GET /dev/token: %d %s", code, b)
	}
	if code, b := request(t, "GET", base+"/notifications/unread/count", tok.Token, ""); code != 200 {
		t.Fatalf("the dev token is refused: %d %s", code, b)
	}
	// A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) names
	// itself in Host: refused. So is another origin.
	for _, hd := range []map[string]string{{"Host": "evil.example:" + port}, {"Origin": "http://evil.example"}} {
		if code, _, b := get(t, "GET", base+"/dev/token?user=bob", hd); code != 403 || bytes.Contains(b, []byte(`"token":`)) {
			t.Fatalf("GET /dev/token with %v: %d %s, want 403", hd, code, b)
		}
	}
	if code, _, _ := get(t, "GET", base+"/dev/token?user=bob", map[string]string{"Host": "localhost:" + port}); code != 200 {
		t.Fatalf("GET /dev/token as localhost: %d", code)
	}

	// Its own origins are allowed, others are not.
	for _, origin := range []string{"http://127.0.0.1:" + port, "http://localhost:" + port} {
		code, h, _ := get(t, "OPTIONS", base+"/notifications", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"})
		if code != 204 || h.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("preflight from %s: %d %v", origin, code, h)
		}
		code, _, b := get(t, "GET", base+"/notifications/ws-token", map[string]string{"Origin": origin, "Authorization": "Bearer " + tok.Token})
		if code != 200 {
			t.Fatalf("ws-token from %s: %d %s", origin, code, b)
		}
	}
	code, h, _ = get(t, "GET", base+"/notifications/ws-token", map[string]string{"Origin": "http://127.0.0.1:1", "Authorization": "Bearer " + tok.Token})
	if code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("ws-token from another port: %d %v", code, h)
	}

	cancel()
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("serve exited %d", rc)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s")
	}
}

// TestNoDemoWithoutDev: without --dev there is no demo, no token endpoint, and the
// server's own origins are not allowed.
func TestNoDemoWithoutDev(t *testing.T) {
	p := startHerald(t, buildHerald(t), []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + t.TempDir(), "HERALD_JWT_SECRET=" + secret})
	for _, path := range []string{"/demo/", "/demo/herald.js", "/dev/token?user=alice", "/demo"} {
		code, _, b := get(t, "GET", p.base+path, nil)
		if code != 404 || bytes.Contains(b, []byte(`"token":`)) || bytes.Contains(b, []byte("<html")) {
			t.Fatalf("GET %s without --dev: %d %.100s, want 404", path, code, b)
		}
	}
	code, h, _ := get(t, "OPTIONS", p.base+"/notifications", map[string]string{"Origin": p.base, "Access-Control-Request-Method": "POST"})
	if code != 403 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from its own origin without --dev: %d %v", code, h)
	}
}
