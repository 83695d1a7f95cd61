package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/internal/poll"
)

// TestBodyBudget: while large bodies fill the budget, another large request is answered
// 503 with Retry-After before its body is read, and stores nothing; once the budget has
// room again, the same request is taken.
func TestBodyBudget(t *testing.T) {
	const budget = 64 << 10
	e := newEnvWith(t, stores["embedded"](t), api.Options{BodyBytesInFlight: budget})
	body := func(receivers int) string {
		ids := make([]string, receivers)
		for i := range ids {
			ids[i] = fmt.Sprintf("%q", "u"+strconv.Itoa(i))
		}
		return `{"type":"t","receiverIds":[` + strings.Join(ids, ",") + `]}`
	}
	// A batch whose body takes its time: it holds about 48 KiB of the budget.
	slowBody := body(8000)[:48<<10]
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", e.url+"/notifications/batch", pr)
	req.ContentLength = int64(len(slowBody))
	req.Header.Set("Authorization", "Bearer "+testKey)
	slow := make(chan response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- response{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- response{code: resp.StatusCode, body: b}
	}()
	if _, err := io.WriteString(pw, slowBody[:100]); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the slow body to hold the budget", 10*time.Second, func() bool {
		return e.metric("herald_http_body_bytes_in_flight") == float64(len(slowBody))
	})

	big := body(1000) + strings.Repeat(" ", 12<<10) // about 20 KiB: over what is left
	r := e.do("POST", "/notifications/batch", testKey, big)
	wantError(t, r, http.StatusServiceUnavailable, herald.CodeUnavailable, "")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if r := e.do("POST", "/events", testKey, `{"name":"x","data":{"pad":"`+strings.Repeat("x", 20<<10)+`"}}`); r.code != http.StatusServiceUnavailable {
		t.Fatalf("event over the budget: %d %s, want 503", r.code, r.body)
	}
	// Small bodies fit beside it, and single creates are not held to the budget.
	if r := e.do("POST", "/notifications/batch", testKey, body(2)); r.code != http.StatusCreated {
		t.Fatalf("small batch beside the slow one: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/notifications", testKey, `{"receiverId":"solo","type":"t"}`); r.code != http.StatusCreated {
		t.Fatalf("single create: %d %s", r.code, r.body)
	}
	if n := e.do("GET", "/notifications/unread/count", userToken(t, "u400"), nil).json(t)["count"].(float64); n != 0 {
		t.Fatalf("the refused batch stored %v notifications for u400", n)
	}

	// The slow body ends, cut short: its reservation goes with its request.
	pw.Close()
	if r := <-slow; r.code == http.StatusCreated {
		t.Fatalf("a cut-short batch was stored: %s", r.body)
	}
	poll.Until(t, "the budget to be released", 10*time.Second, func() bool { return e.metric("herald_http_body_bytes_in_flight") == 0 })
	if r := e.do("POST", "/notifications/batch", testKey, big); r.code != http.StatusCreated {
		t.Fatalf("the same batch once the budget has room: %d %s", r.code, r.body)
	}
	// One body bigger than the whole budget is let through when nothing else is in flight.
	if r := e.do("POST", "/notifications/batch", testKey, body(1000)+strings.Repeat(" ", budget)); r.code != http.StatusCreated {
		t.Fatalf("a lone body over the budget: %d %s", r.code, r.body)
	}
}

// TestPageByteCap: a page of big notifications stops at about 1 MiB, whatever its limit,
// and following next reads every notification once.
func TestPageByteCap(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, stores[name](t), api.Options{MaxPayload: 16 << 10})
			const total = 150
			pad := strings.Repeat("x", 15<<10)
			for i := 0; i < total; i += 50 {
				items := make([]string, 50)
				for j := range items {
					items[j] = fmt.Sprintf(`{"receiverId":"ada","type":"t","payload":{"i":%d,"pad":%q}}`, i+j, pad)
				}
				if r := e.do("POST", "/notifications/batch", testKey, `{"items":[`+strings.Join(items, ",")+`]}`); r.code != http.StatusCreated {
					t.Fatalf("batch: %d %.200s", r.code, r.body)
				}
			}
			ada := userToken(t, "ada")
			for _, route := range []string{"/notifications/unread?limit=500", "/notifications?limit=500", "/notifications/events?limit=500"} {
				seen := map[float64]bool{}
				next, pages := "", 0
				for {
					url := route
					if next != "" {
						if strings.HasPrefix(route, "/notifications/unread") {
							url += "&before=" + next
						} else {
							url += "&since=" + next
						}
					}
					r := e.do("GET", url, ada, nil)
					if r.code != http.StatusOK {
						t.Fatalf("%s: %d %.200s", url, r.code, r.body)
					}
					if len(r.body) > 1<<20+64<<10 {
						t.Fatalf("%s: a page of %d bytes, want at most about 1 MiB", url, len(r.body))
					}
					var page struct {
						Data []struct {
							Seq  float64         `json:"seq"`
							Data json.RawMessage `json:"data"`
						} `json:"data"`
						Next *int64 `json:"next"`
					}
					if err := json.Unmarshal(r.body, &page); err != nil {
						t.Fatal(err)
					}
					pages++
					for _, it := range page.Data {
						if seen[it.Seq] {
							t.Fatalf("%s: seq %v twice", route, it.Seq)
						}
						seen[it.Seq] = true
					}
					if page.Next == nil {
						break
					}
					next = strconv.FormatInt(*page.Next, 10)
				}
				if len(seen) != total || pages < 3 {
					t.Fatalf("%s: %d notifications in %d pages, want %d in at least 3", route, len(seen), pages, total)
				}
			}
		})
	}
}

// TestReadRateLimit: a user's reads are limited like its creates, with Retry-After, and
// one user's reads do not use another's.
func TestReadRateLimit(t *testing.T) {
	e := newEnvWith(t, stores["embedded"](t), api.Options{UserReadRate: api.Rate{Per: 0.01, Burst: 3}})
	alice := userToken(t, "alice")
	for _, path := range []string{"/notifications/unread", "/notifications/unread/count", "/notifications/events"} {
		if r := e.do("GET", path, alice, nil); r.code != http.StatusOK {
			t.Fatalf("%s within the burst: %d %s", path, r.code, r.body)
		}
	}
	for _, path := range []string{"/notifications", "/notifications/unread", "/preferences", "/notifications/ws-token"} {
		r := e.do("GET", path, alice, nil)
		wantError(t, r, http.StatusTooManyRequests, herald.CodeRateLimited, "")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 429 without Retry-After", path)
		}
	}
	if r := e.do("GET", "/notifications/unread", userToken(t, "bob"), nil); r.code != http.StatusOK {
		t.Fatalf("bob after alice's reads: %d %s", r.code, r.body)
	}
	// A WebSocket connect is a read too: refused before the upgrade.
	wantError(t, e.do("GET", "/notifications/ws", alice, nil), http.StatusTooManyRequests, herald.CodeRateLimited, "")
	// Writes are not reads: alice may still mark all read.
	if r := e.do("PATCH", "/notifications/read-all", alice, nil); r.code != http.StatusOK {
		t.Fatalf("read-all while reads are limited: %d %s", r.code, r.body)
	}
}

// TestUserWriteRateLimit: a user's REST changes (mark-read, read-all, preferences) share
// the bucket of the notifications it creates, so random-id mark-reads cannot turn into
// a flood of store transactions.
func TestUserWriteRateLimit(t *testing.T) {
	e := newEnvWith(t, stores["embedded"](t), api.Options{UserRate: api.Rate{Per: 0.01, Burst: 3}})
	alice := userToken(t, "alice")
	wantError(t, e.do("PATCH", "/notifications/0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b/read", alice, nil), http.StatusNotFound, herald.CodeNotFound, "")
	if r := e.do("PATCH", "/notifications/read-all", alice, nil); r.code != http.StatusOK {
		t.Fatalf("read-all within the burst: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", "/preferences", alice, `{"channels":{"email":false}}`); r.code != http.StatusOK {
		t.Fatalf("preferences within the burst: %d %s", r.code, r.body)
	}
	for _, req := range []struct{ method, path, body string }{
		{"PATCH", "/notifications/0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b/read", ""},
		{"PATCH", "/notifications/read-all", ""},
		{"PUT", "/preferences", `{}`},
		{"POST", "/notifications", `{"receiverId":"bob","type":"t"}`},
	} {
		var body any
		if req.body != "" {
			body = req.body
		}
		r := e.do(req.method, req.path, alice, body)
		wantError(t, r, http.StatusTooManyRequests, herald.CodeRateLimited, "")
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: 429 without Retry-After", req.method, req.path)
		}
	}
	if r := e.do("PATCH", "/notifications/read-all", userToken(t, "bob"), nil); r.code != http.StatusOK {
		t.Fatalf("bob after alice's writes: %d %s", r.code, r.body)
	}
}
