package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/events"
	"github.com/heraldhq/herald/api/events/rules"
	"github.com/heraldhq/herald/api/ws"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	testSecret = "test-secret-0123456789abcdef0123"
	testKey    = "svc-key-1"
	otherKey   = "svc-key-2"
)

// stores opens a fresh store of each kind.
var stores = map[string]func(t *testing.T) persistence.Store{
	"embedded": func(t *testing.T) persistence.Store {
		s, err := embedded.Open(t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) persistence.Store {
		url := pgtest.Shared(t).NewDatabase(t)
		s, err := postgres.OpenAndMigrate(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

func forEachStore(t *testing.T, f func(t *testing.T, e *env)) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) { f(t, newEnv(t, stores[name](t))) })
	}
}

// env is a real Herald API over loopback: store, persistence actor, auth, HTTP server.
type env struct {
	t     *testing.T
	url   string
	store persistence.Store
	hub   *ws.Hub
}

func newEnv(t *testing.T, store persistence.Store) *env {
	t.Helper()
	return newEnvWith(t, store, api.Options{})
}

// newEnvWith is newEnv with options; Store, Writer, Auth and Hub are filled in.
func newEnvWith(t *testing.T, store persistence.Store, o api.Options) *env {
	t.Helper()
	return newEnvOpts(t, store, envOptions{api: o})
}

// envOptions configure each part of a test server; what wires the parts together is
// filled in.
type envOptions struct {
	api   api.Options
	ws    ws.Options
	inbox inbox.Options
	rules *rules.Set
}

func newEnvOpts(t *testing.T, store persistence.Store, o envOptions) *env {
	t.Helper()
	// Registered first, so it runs after every other cleanup: the server, the actors,
	// the sockets and the store leave no goroutine behind.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.inbox.Store, o.inbox.Metrics = store, inbox.NewMetrics(reg)
	if o.inbox.Grace == 0 {
		o.inbox.Grace = time.Millisecond
	}
	writer := &persist.Client{Engine: engine} // PID set below, before any socket exists
	o.inbox.Writer = writer
	router := engine.Spawn(inbox.NewRouter(o.inbox), "inbox")
	pid := engine.Spawn(persist.New(store, persist.Options{OnCommit: inbox.OnCommit(engine, router)}), "persist")
	writer.PID = pid
	o.ws.Engine, o.ws.Router, o.ws.Metrics = engine, router, ws.NewMetrics(reg)
	hub := ws.NewHub(o.ws)
	a, err := auth.New(auth.Config{JWTSecret: []byte(testSecret), APIKeys: []string{testKey, otherKey}})
	if err != nil {
		t.Fatal(err)
	}
	o.api.Store, o.api.Writer, o.api.Auth, o.api.Hub, o.api.Registry = store, writer, a, hub, reg
	o.api.Events = events.New(writer, o.rules, events.NewMetrics(reg))
	if o.api.MaxPayload == 0 {
		o.api.MaxPayload = 1024
	}
	srv := api.New(o.api)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		ts.Close()
		_ = writer.Drain(ctx)
		<-engine.Poison(pid).Done()
		<-engine.Poison(router).Done()
	})
	return &env{t: t, url: ts.URL, store: store, hub: hub}
}

func userToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.SignUserToken([]byte(testSecret), user, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.code, err, r.body)
	}
	return m
}

func (r response) notification(t *testing.T) herald.Notification {
	t.Helper()
	var n herald.Notification
	if err := json.Unmarshal(r.body, &n); err != nil {
		t.Fatalf("response %d is not a notification: %v: %s", r.code, err, r.body)
	}
	return n
}

// do sends a request with cred as a Bearer credential (none when empty). body is sent
// as is when it is a string or []byte, JSON-encoded otherwise.
func (e *env) do(method, path, cred string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// wantError asserts the contract's error shape, status and code (and field when given).
func wantError(t *testing.T, r response, status int, code herald.Code, field string) {
	t.Helper()
	if r.code != status {
		t.Fatalf("status %d, want %d: %s", r.code, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q, want JSON", ct)
	}
	var body struct {
		Error struct {
			Code    herald.Code `json:"code"`
			Message string      `json:"message"`
			Field   string      `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.body)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Fatalf("error %+v, want code %s with a message", body.Error, code)
	}
	if field != "" && body.Error.Field != field {
		t.Fatalf("error field %q, want %q (%s)", body.Error.Field, field, body.Error.Message)
	}
}

func TestNotificationLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		alice, bob := userToken(t, "alice"), userToken(t, "bob")

		// A service creates two notifications for alice; alice creates one for bob.
		r := e.do("POST", "/notifications", testKey, map[string]any{
			"receiverId": "alice", "type": "project.created", "payload": map[string]any{"message": "Atlas was created"},
		})
		if r.code != http.StatusCreated {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		first := r.notification(t)
		if first.Seq != 1 || first.SenderID != herald.DefaultSenderID || first.Object != "project.created" ||
			first.ReadAt != nil || len(first.Channels) != 1 || first.Channels[0] != herald.ChannelRealtime {
			t.Fatalf("first notification: %+v", first)
		}
		second := e.do("POST", "/notifications", testKey, map[string]any{
			"receiverId": "alice", "type": "project.role.application.created", "object": "project.application.received",
			"senderId": "user-9", "channels": []string{"realtime", "email"},
		}).notification(t)
		if second.Seq != 2 || second.SenderID != "user-9" || string(second.Payload) != "{}" {
			t.Fatalf("second notification: %+v payload %s", second, second.Payload)
		}
		r = e.do("POST", "/notifications", alice, map[string]any{"receiverId": "bob", "type": "hello"})
		if r.code != http.StatusCreated || r.notification(t).SenderID != "alice" {
			t.Fatalf("user create: %d %s", r.code, r.body)
		}

		// Alice sees her two, newest first; bob sees only his.
		m := e.do("GET", "/notifications/unread", alice, nil).json(t)
		data := m["data"].([]any)
		if len(data) != 2 || m["total"].(float64) != 2 || m["count"].(float64) != 2 || m["seq"].(float64) != 2 || m["next"] != nil {
			t.Fatalf("alice unread: %v", m)
		}
		if data[0].(map[string]any)["id"] != second.ID {
			t.Fatalf("unread not newest first: %v", data)
		}
		if c := e.do("GET", "/notifications/unread/count", bob, nil).json(t); c["count"].(float64) != 1 {
			t.Fatalf("bob count: %v", c)
		}

		// Bob cannot read or mark alice's notification: 404, and nothing changes.
		wantError(t, e.do("PATCH", "/notifications/"+first.ID+"/read", bob, nil), 404, herald.CodeNotFound, "")

		// Mark one read: 200 with readAt; again: same readAt, no new log entry.
		read := e.do("PATCH", "/notifications/"+first.ID+"/read", alice, nil)
		if read.code != 200 || read.notification(t).ReadAt == nil {
			t.Fatalf("mark read: %d %s", read.code, read.body)
		}
		again := e.do("PATCH", "/notifications/"+first.ID+"/read", alice, nil)
		if again.code != 200 || !again.notification(t).ReadAt.Equal(*read.notification(t).ReadAt) {
			t.Fatalf("mark read again: %d %s", again.code, again.body)
		}
		if c := e.do("GET", "/notifications/unread/count", alice, nil).json(t); c["count"].(float64) != 1 {
			t.Fatalf("count after read: %v", c)
		}

		// Read-all counts only what changed; a second one changes nothing.
		ra := e.do("PATCH", "/notifications/read-all", alice, nil).json(t)
		if ra["updated"].(float64) != 1 || ra["readAt"] == nil {
			t.Fatalf("read-all: %v", ra)
		}
		if ra := e.do("PATCH", "/notifications/read-all", alice, nil).json(t); ra["updated"].(float64) != 0 {
			t.Fatalf("second read-all: %v", ra)
		}

		// The event log: created, created, read, read-all — and nothing for the no-ops.
		ev := e.do("GET", "/notifications/events?since=0", alice, nil).json(t)
		entries := ev["data"].([]any)
		want := []string{"new-notification", "new-notification", "notification-read", "all-notifications-read"}
		if len(entries) != len(want) || ev["seq"].(float64) != 4 || ev["next"] != nil {
			t.Fatalf("events: %v", ev)
		}
		for i, w := range want {
			en := entries[i].(map[string]any)
			if en["event"] != w || en["seq"].(float64) != float64(i+1) {
				t.Fatalf("entry %d: %v, want %s", i, en, w)
			}
		}
		if u := entries[2].(map[string]any)["unread"].(float64); u != 1 {
			t.Fatalf("unread after the read entry = %v, want 1", u)
		}
		if d := entries[0].(map[string]any)["data"].(map[string]any); d["readAt"] != nil {
			t.Fatalf("created entry replays readAt %v, want null as sent live", d["readAt"])
		}

		// A cursor beyond the latest seq gets a reset with a fresh snapshot.
		ev = e.do("GET", "/notifications/events?since=99", alice, nil).json(t)
		snap, _ := ev["snapshot"].(map[string]any)
		if ev["reset"] != true || len(ev["data"].([]any)) != 0 || snap == nil || snap["total"].(float64) != 0 || snap["seq"].(float64) != 4 {
			t.Fatalf("events past the latest seq: %v", ev)
		}

		// The since feed lists both, oldest first, with their current readAt.
		feed := e.do("GET", "/notifications?since=1", alice, nil).json(t)
		fd := feed["data"].([]any)
		if len(fd) != 1 || fd[0].(map[string]any)["id"] != second.ID || fd[0].(map[string]any)["readAt"] == nil {
			t.Fatalf("since feed: %v", feed)
		}
	})
}

func TestPaging(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ids := make([]string, 25)
		for i := range ids {
			r := e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "pager", "type": fmt.Sprint("t", i)})
			ids[i] = r.notification(t).ID
		}
		tok := userToken(t, "pager")
		seen := map[string]bool{}
		path := "/notifications/unread?limit=10"
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("unread paging does not end")
			}
			m := e.do("GET", path, tok, nil).json(t)
			for _, d := range m["data"].([]any) {
				id := d.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("id %s seen twice", id)
				}
				seen[id] = true
			}
			if m["next"] == nil {
				break
			}
			path = fmt.Sprintf("/notifications/unread?limit=10&before=%d", int64(m["next"].(float64)))
		}
		if len(seen) != len(ids) {
			t.Fatalf("unread paging saw %d of %d", len(seen), len(ids))
		}
		// The since feed and the events feed page oldest first to the end.
		for _, route := range []string{"/notifications", "/notifications/events"} {
			var got []float64
			since := "0"
			for pages := 0; ; pages++ {
				if pages > 5 {
					t.Fatalf("%s paging does not end", route)
				}
				m := e.do("GET", route+"?limit=7&since="+since, tok, nil).json(t)
				for _, d := range m["data"].([]any) {
					got = append(got, d.(map[string]any)["seq"].(float64))
				}
				if m["next"] == nil {
					break
				}
				since = fmt.Sprint(int64(m["next"].(float64)))
			}
			for i, s := range got {
				if s != float64(i+1) {
					t.Fatalf("%s: seqs %v, want 1..25", route, got)
				}
			}
			if len(got) != 25 {
				t.Fatalf("%s: %d entries, want 25", route, len(got))
			}
		}
	})
}

func TestBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		r := e.do("POST", "/notifications/batch", testKey, map[string]any{
			"receiverIds": []string{"u1", "u2", "u3"}, "type": "project.created", "payload": map[string]any{"n": 1},
		})
		if r.code != 201 {
			t.Fatalf("batch: %d %s", r.code, r.body)
		}
		data := r.json(t)["data"].([]any)
		for i, u := range []string{"u1", "u2", "u3"} {
			if data[i].(map[string]any)["receiverId"] != u {
				t.Fatalf("batch not in request order: %v", data)
			}
		}
		r = e.do("POST", "/notifications/batch", testKey, map[string]any{"items": []map[string]any{
			{"receiverId": "u1", "type": "a"}, {"receiverId": "u4", "type": "b", "payload": map[string]any{"x": true}},
		}})
		if r.code != 201 || len(r.json(t)["data"].([]any)) != 2 {
			t.Fatalf("batch items: %d %s", r.code, r.body)
		}
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "u1"), nil).json(t); c["count"].(float64) != 2 {
			t.Fatalf("u1 count %v", c)
		}
		// One key for a receiverIds batch: a replay returns the same notifications, and a
		// long key with long receiver ids stays within the limits.
		key := strings.Repeat("k", 250)
		long := []string{strings.Repeat("r", 200), strings.Repeat("s", 200)}
		body := map[string]any{"receiverIds": long, "type": "t", "idempotencyKey": key}
		r1, r2 := e.do("POST", "/notifications/batch", testKey, body), e.do("POST", "/notifications/batch", testKey, body)
		if r1.code != 201 || r2.code != 201 || string(r1.body) != string(r2.body) {
			t.Fatalf("keyed batch and its replay: %d %s / %d %s", r1.code, r1.body, r2.code, r2.body)
		}
		// A single create with another key and a receiver id that "joins" differently is
		// a new notification, not a replay of the batch's.
		single := e.do("POST", "/notifications", testKey, map[string]any{"receiverId": long[0][1:], "type": "t", "idempotencyKey": key + "r"})
		if single.code != 201 {
			t.Fatalf("single create after a keyed batch: %d %s", single.code, single.body)
		}
		wantError(t, e.do("POST", "/notifications/batch", testKey, map[string]any{"receiverIds": []string{"u1", " "}, "type": "t"}),
			422, herald.CodeValidation, "receiverIds[1]")

		// A key reused with another body names the item (or the receiver) it belongs to.
		e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "u1", "type": "t", "idempotencyKey": "used"})
		wantError(t, e.do("POST", "/notifications/batch", testKey, map[string]any{"items": []map[string]any{
			{"receiverId": "u1", "type": "t"}, {"receiverId": "u1", "type": "other", "idempotencyKey": "used"},
		}}), 409, herald.CodeIdempotencyConflict, "items[1].idempotencyKey")
		body["type"] = "changed"
		wantError(t, e.do("POST", "/notifications/batch", testKey, body), 409, herald.CodeIdempotencyConflict, "receiverIds[0]")

		// An invalid item fails the whole batch, naming the item's field; nothing is stored.
		r = e.do("POST", "/notifications/batch", testKey, map[string]any{"items": []map[string]any{
			{"receiverId": "u5", "type": "a"}, {"receiverId": "u5"},
		}})
		wantError(t, r, 422, herald.CodeValidation, "items[1].type")
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "u5"), nil).json(t); c["count"].(float64) != 0 {
			t.Fatalf("a failed batch stored something: %v", c)
		}
	})
}

func TestIdempotency(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		body := map[string]any{"receiverId": "idem", "type": "x", "idempotencyKey": "k-1"}
		first := e.do("POST", "/notifications", testKey, body)
		replay := e.do("POST", "/notifications", testKey, body)
		if first.code != 201 || replay.code != 200 || first.notification(t).ID != replay.notification(t).ID {
			t.Fatalf("replay: %d %d %s %s", first.code, replay.code, first.body, replay.body)
		}
		body["type"] = "y"
		wantError(t, e.do("POST", "/notifications", testKey, body), 409, herald.CodeIdempotencyConflict, "")
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "idem"), nil).json(t); c["count"].(float64) != 1 {
			t.Fatalf("count %v", c)
		}

		// Keys are the caller's own: a user, and a service sending as that user's id (or
		// as its default sender, to a user named like it), never replay each other.
		for _, c := range []struct{ user, sender string }{{"alice", "alice"}, {"system", ""}} {
			mine := e.do("POST", "/notifications", userToken(t, c.user), map[string]any{"receiverId": "idem", "type": "x", "idempotencyKey": "shared"})
			theirs := e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "idem", "type": "x", "senderId": c.sender, "idempotencyKey": "shared"})
			if mine.code != 201 || theirs.code != 201 || mine.notification(t).ID == theirs.notification(t).ID {
				t.Fatalf("user %s and a service share a key space: %d %s / %d %s", c.user, mine.code, mine.body, theirs.code, theirs.body)
			}
		}
	})
}

// TestRateLimits: over its limit a user, or an API key, gets 429 with Retry-After and
// nothing is stored; other users and keys are not affected.
func TestRateLimits(t *testing.T) {
	hour := api.Rate{Per: 1.0 / 3600, Burst: 2}
	e := newEnvWith(t, stores["embedded"](t), api.Options{UserRate: hour, ServiceRate: hour})
	alice, bob := userToken(t, "alice"), userToken(t, "bob")
	body := `{"receiverId":"carol","type":"t"}`
	for i := 0; i < 2; i++ {
		if r := e.do("POST", "/notifications", alice, body); r.code != 201 {
			t.Fatalf("create %d within the burst: %d %s", i, r.code, r.body)
		}
	}
	r := e.do("POST", "/notifications", alice, body)
	wantError(t, r, 429, herald.CodeRateLimited, "")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without a usable Retry-After: %q", ra)
	}
	if r := e.do("POST", "/notifications", bob, body); r.code != 201 {
		t.Fatalf("another user limited too: %d", r.code)
	}
	if c := e.do("GET", "/notifications/unread/count", userToken(t, "carol"), nil).json(t); c["count"].(float64) != 3 {
		t.Fatalf("carol has %v notifications, want 3: the refused one was stored", c["count"])
	}
	// Reads are not limited.
	if r := e.do("GET", "/notifications/unread", alice, nil); r.code != 200 {
		t.Fatalf("read after the limit: %d", r.code)
	}
	// Per API key, single and batch creates alike.
	e.do("POST", "/notifications", testKey, body)
	e.do("POST", "/notifications/batch", testKey, `{"receiverIds":["carol"],"type":"t"}`)
	r = e.do("POST", "/notifications/batch", testKey, `{"receiverIds":["carol"],"type":"t"}`)
	wantError(t, r, 429, herald.CodeRateLimited, "")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if r := e.do("POST", "/notifications", otherKey, body); r.code != 201 {
		t.Fatalf("another key limited too: %d", r.code)
	}
}

// TestErrorTable drives the contract's error table through the real HTTP server (429:
// TestRateLimits; 503: TestWSTokenAndHealth and cmd/herald's PostgreSQL outage test).
func TestErrorTable(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		alice := userToken(t, "alice")
		expired, _ := auth.SignUserToken([]byte(testSecret), "alice", "", -time.Minute)
		a, _ := auth.New(auth.Config{JWTSecret: []byte(testSecret)})
		ws, _, err := a.IssueWSToken(auth.Principal{Kind: auth.KindUser, UserID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		big := strings.Repeat("x", 2048)

		cases := []struct {
			name, method, path, cred string
			body                     any
			status                   int
			code                     herald.Code
			field                    string
		}{
			{"malformed JSON", "POST", "/notifications", testKey, `{"receiverId":`, 400, herald.CodeBadRequest, ""},
			{"not an object", "POST", "/notifications", testKey, `[1,2]`, 400, herald.CodeBadRequest, ""},
			{"unknown channel", "POST", "/notifications", testKey, `{"receiverId":"a","type":"t","channels":["sms"]}`, 400, herald.CodeBadRequest, "channels"},
			{"no credential", "GET", "/notifications/unread", "", nil, 401, herald.CodeUnauthorized, ""},
			{"garbage token", "GET", "/notifications/unread", "not-a-token", nil, 401, herald.CodeUnauthorized, ""},
			{"expired token", "GET", "/notifications/unread", expired, nil, 401, herald.CodeUnauthorized, ""},
			{"ws-token on REST", "GET", "/notifications/unread", ws, nil, 401, herald.CodeUnauthorized, ""},
			{"API key on a user route", "GET", "/notifications/unread", testKey, nil, 403, herald.CodeForbidden, ""},
			{"user on a service route", "POST", "/notifications/batch", alice, `{"receiverIds":["a"],"type":"t"}`, 403, herald.CodeForbidden, ""},
			{"unknown notification", "PATCH", "/notifications/0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b/read", alice, nil, 404, herald.CodeNotFound, ""},
			{"not a uuid", "PATCH", "/notifications/nope/read", alice, nil, 404, herald.CodeNotFound, ""},
			{"unknown route", "GET", "/nowhere", alice, nil, 404, herald.CodeNotFound, ""},
			{"wrong method", "DELETE", "/notifications/unread", alice, nil, 405, herald.CodeMethodNotAllowed, ""},
			{"payload too large", "POST", "/notifications", testKey, `{"receiverId":"a","type":"t","payload":{"b":"` + big + `"}}`, 413, herald.CodeTooLarge, "payload"},
			{"body too large", "POST", "/notifications", testKey, `{"receiverId":"a","type":"t","pad":"` + strings.Repeat("y", 20<<10) + `"}`, 413, herald.CodeTooLarge, ""},
			{"missing receiverId", "POST", "/notifications", testKey, `{"type":"t"}`, 422, herald.CodeValidation, "receiverId"},
			{"blank type", "POST", "/notifications", testKey, `{"receiverId":"a","type":"  "}`, 422, herald.CodeValidation, "type"},
			{"long receiverId", "POST", "/notifications", testKey, `{"receiverId":"` + strings.Repeat("r", 257) + `","type":"t"}`, 422, herald.CodeValidation, "receiverId"},
			{"null payload", "POST", "/notifications", testKey, `{"receiverId":"a","type":"t","payload":null}`, 422, herald.CodeValidation, "payload"},
			{"array payload", "POST", "/notifications", testKey, `{"receiverId":"a","type":"t","payload":[1]}`, 422, herald.CodeValidation, "payload"},
			{"wrong field type", "POST", "/notifications", testKey, `{"receiverId":5,"type":"t"}`, 422, herald.CodeValidation, "receiverId"},
			{"user sets another senderId", "POST", "/notifications", alice, `{"receiverId":"b","type":"t","senderId":"mallory"}`, 422, herald.CodeValidation, "senderId"},
			{"batch over 1000 receiverIds", "POST", "/notifications/batch", testKey, map[string]any{"receiverIds": make([]string, 1001), "type": "t"}, 422, herald.CodeValidation, "receiverIds"},
			{"batch over 1000 items", "POST", "/notifications/batch", testKey, map[string]any{"items": make([]map[string]string, 1001)}, 422, herald.CodeValidation, "items"},
			{"bad limit", "GET", "/notifications/unread?limit=0", alice, nil, 422, herald.CodeValidation, "limit"},
			{"bad since", "GET", "/notifications/events?since=x", alice, nil, 422, herald.CodeValidation, "since"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, e.do(c.method, c.path, c.cred, c.body), c.status, c.code, c.field)
			})
		}
		// None of the refused creates stored anything.
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "a"), nil).json(t); c["count"].(float64) != 0 {
			t.Fatalf("a refused request stored a notification: %v", c)
		}
		if c := e.do("GET", "/notifications/unread/count", userToken(t, "b"), nil).json(t); c["count"].(float64) != 0 {
			t.Fatalf("a refused request stored a notification: %v", c)
		}
	})
}

func TestWSTokenAndHealth(t *testing.T) {
	e := newEnv(t, stores["embedded"](t))
	r := e.do("GET", "/notifications/ws-token", userToken(t, "alice"), nil)
	m := r.json(t)
	if r.code != 200 || m["wsToken"] == "" || m["expiresIn"].(float64) != 60 || m["tokenType"] != "Bearer" {
		t.Fatalf("ws-token: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/healthz", "", nil); r.code != 200 {
		t.Fatalf("healthz %d", r.code)
	}
	if r := e.do("GET", "/readyz", "", nil); r.code != 200 {
		t.Fatalf("readyz %d", r.code)
	}
	e.do("GET", "/notifications/unread", userToken(t, "alice"), nil)
	r = e.do("GET", "/metrics", "", nil)
	if r.code != 200 || !bytes.Contains(r.body, []byte(`herald_http_requests_total{code="200",route="GET /notifications/unread"}`)) {
		t.Fatalf("metrics: %d %s", r.code, r.body)
	}
	// A closed store: readyz 503, healthz still 200.
	e.store.Close()
	wantError(t, e.do("GET", "/readyz", "", nil), 503, herald.CodeUnavailable, "")
	if r := e.do("GET", "/healthz", "", nil); r.code != 200 {
		t.Fatalf("healthz with the store down: %d", r.code)
	}
	wantError(t, e.do("POST", "/notifications", testKey, `{"receiverId":"a","type":"t"}`), 503, herald.CodeUnavailable, "")
	// The other writes fail the same way: their batch could not be committed.
	wantError(t, e.do("PUT", "/contacts/a", testKey, `{"email":"a@example.com"}`), 503, herald.CodeUnavailable, "")
	wantError(t, e.do("PUT", "/preferences", userToken(t, "alice"), `{"channels":{"email":false}}`), 503, herald.CodeUnavailable, "")
	wantError(t, e.do("POST", "/deliveries/0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b/retry", testKey, nil), 503, herald.CodeUnavailable, "")
}
