// Package storetest is the conformance suite every persistence.Store must pass.
//
// A store's own test calls Run with an opener that returns a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, retention time.Duration) persistence.Store {
//			s, err := embedded.Open(t.TempDir(), embedded.Options{Retention: retention})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The opener closes the store in its t.Cleanup; one subtest closes the store itself first,
// so Close must tolerate being called twice. Subtests do not run in parallel.
package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// Opener returns a fresh, empty store whose event log is kept for retention, and
// arranges for it to be closed when t ends.
type Opener = func(t *testing.T, retention time.Duration) persistence.Store

// Run runs the conformance suite: one subtest per behaviour, each on its own store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Create", testCreate},
		{"EmptyUser", testEmptyUser},
		{"ConcurrentSeq", testConcurrentSeq},
		{"BatchCreateAtomic", testBatchCreateAtomic},
		{"MarkRead", testMarkRead},
		{"ReadAll", testReadAll},
		{"UnreadPaging", testUnreadPaging},
		{"CreatedPaging", testCreatedPaging},
		{"Events", testEvents},
		{"Heads", testHeads},
		{"Idempotency", testIdempotency},
		{"Retention", testRetention},
		{"Closed", testClosed},
	}
	tests = append(tests, outboxTests...)
	tests = append(tests, writeTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// ---- helpers ----

// valid validates n as a service caller would send it, filling the defaults.
func valid(t *testing.T, n herald.NewNotification) herald.NewNotification {
	t.Helper()
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatalf("validate %+v: %v", n, err)
	}
	return n
}

// note is a validated notification for receiver with type typ and payload {"n": i}.
func note(t *testing.T, receiver, typ string, i int) herald.NewNotification {
	t.Helper()
	return valid(t, herald.NewNotification{
		ReceiverID: receiver,
		Type:       typ,
		Payload:    json.RawMessage(fmt.Sprintf(`{"n": %d}`, i)),
	})
}

func create(items ...herald.NewNotification) persistence.Op {
	return persistence.Op{Kind: persistence.OpCreate, Creates: items}
}

func markRead(user, id string) persistence.Op {
	return persistence.Op{Kind: persistence.OpMarkRead, UserID: user, ID: id}
}

func readAll(user string) persistence.Op {
	return persistence.Op{Kind: persistence.OpReadAll, UserID: user}
}

// apply runs ops and fails the test when the transaction fails.
func apply(t *testing.T, s persistence.Store, now time.Time, ops ...persistence.Op) []persistence.Result {
	t.Helper()
	res, err := s.Apply(t.Context(), now, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(ops) {
		t.Fatalf("Apply returned %d results for %d ops", len(res), len(ops))
	}
	return res
}

// ok fails the test when r carries an error.
func ok(t *testing.T, r persistence.Result) persistence.Result {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("op failed: %v", r.Err)
	}
	return r
}

// created applies one create op and returns its notifications.
func created(t *testing.T, s persistence.Store, now time.Time, items ...herald.NewNotification) []herald.Notification {
	t.Helper()
	r := ok(t, apply(t, s, now, create(items...))[0])
	if len(r.Notifications) != len(items) {
		t.Fatalf("create returned %d notifications for %d items", len(r.Notifications), len(items))
	}
	return r.Notifications
}

func wantCode(t *testing.T, what string, err error, code herald.Code) {
	t.Helper()
	if got := herald.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// clock returns a batch timestamp a minute ago, well inside any retention, from which
// tests step forward.
func clock() time.Time { return persistence.Now().Add(-time.Minute) }

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if got.Location() != time.UTC {
		t.Errorf("%s = %s is not in UTC", what, got)
	}
}

func sameTimePtr(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil:
		t.Errorf("%s = nil, want %s", what, want.Format(time.RFC3339Nano))
	case want == nil:
		t.Errorf("%s = %s, want nil", what, got.Format(time.RFC3339Nano))
	default:
		sameTime(t, what, *got, *want)
	}
}

func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: %q is not JSON: %v", what, got, err)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %q is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// sameNote compares every field of two notifications, the payload as JSON.
func sameNote(t *testing.T, what string, got, want herald.Notification) {
	t.Helper()
	if got.ID != want.ID || got.Object != want.Object || got.ReceiverID != want.ReceiverID ||
		got.SenderID != want.SenderID || got.Type != want.Type || got.Seq != want.Seq ||
		!slices.Equal(got.Channels, want.Channels) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
	sameJSON(t, what+".Payload", got.Payload, want.Payload)
	sameTime(t, what+".CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTimePtr(t, what+".ReadAt", got.ReadAt, want.ReadAt)
}

// sameEntry compares two log entries field by field.
func sameEntry(t *testing.T, what string, got, want herald.Entry) {
	t.Helper()
	if got.UserID != want.UserID || got.Seq != want.Seq || got.Event != want.Event || got.Unread != want.Unread {
		t.Errorf("%s = {user %q seq %d %s unread %d}, want {user %q seq %d %s unread %d}", what,
			got.UserID, got.Seq, got.Event, got.Unread, want.UserID, want.Seq, want.Event, want.Unread)
	}
	sameTime(t, what+".At", got.At, want.At)
	switch {
	case (got.Notification == nil) != (want.Notification == nil):
		t.Errorf("%s.Notification = %v, want %v", what, got.Notification, want.Notification)
	case got.Notification != nil:
		sameNote(t, what+".Notification", *got.Notification, *want.Notification)
	}
	switch {
	case (got.ReadAll == nil) != (want.ReadAll == nil):
		t.Errorf("%s.ReadAll = %v, want %v", what, got.ReadAll, want.ReadAll)
	case got.ReadAll != nil:
		sameTime(t, what+".ReadAll.ReadAt", got.ReadAll.ReadAt, want.ReadAll.ReadAt)
		if got.ReadAll.Updated != want.ReadAll.Updated {
			t.Errorf("%s.ReadAll.Updated = %d, want %d", what, got.ReadAll.Updated, want.ReadAll.Updated)
		}
	}
}

func get(t *testing.T, s persistence.Store, user, id string) herald.Notification {
	t.Helper()
	n, err := s.Get(t.Context(), user, id)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", user, id, err)
	}
	return n
}

func events(t *testing.T, s persistence.Store, user string, since int64, limit int) persistence.EventsPage {
	t.Helper()
	p, err := s.Events(t.Context(), user, since, limit)
	if err != nil {
		t.Fatalf("Events(%q, %d, %d): %v", user, since, limit, err)
	}
	return p
}

// allEvents pages through the whole log of user, pageSize entries at a time.
func allEvents(t *testing.T, s persistence.Store, user string, pageSize int) (entries []herald.Entry, latest int64) {
	t.Helper()
	var since int64
	for {
		p := events(t, s, user, since, pageSize)
		if p.Reset {
			t.Fatalf("Events(%q, %d): unexpected Reset", user, since)
		}
		if len(p.Entries) > pageSize {
			t.Fatalf("Events(%q, %d, %d) returned %d entries", user, since, pageSize, len(p.Entries))
		}
		entries = append(entries, p.Entries...)
		latest = p.Seq
		if len(p.Entries) == 0 {
			return entries, latest
		}
		since = p.Entries[len(p.Entries)-1].Seq
	}
}

func unread(t *testing.T, s persistence.Store, user string, before int64, limit int) persistence.UnreadPage {
	t.Helper()
	p, err := s.Unread(t.Context(), user, before, limit)
	if err != nil {
		t.Fatalf("Unread(%q, %d, %d): %v", user, before, limit, err)
	}
	return p
}

func createdSince(t *testing.T, s persistence.Store, user string, since int64, limit int) []herald.Notification {
	t.Helper()
	ns, err := s.Created(t.Context(), user, since, limit)
	if err != nil {
		t.Fatalf("Created(%q, %d, %d): %v", user, since, limit, err)
	}
	return ns
}

func unreadCount(t *testing.T, s persistence.Store, user string) int64 {
	t.Helper()
	n, err := s.UnreadCount(t.Context(), user)
	if err != nil {
		t.Fatalf("UnreadCount(%q): %v", user, err)
	}
	return n
}

func latestSeq(t *testing.T, s persistence.Store, user string) int64 {
	t.Helper()
	return events(t, s, user, 0, 1).Seq
}

func ids(ns []herald.Notification) []string {
	out := make([]string, len(ns))
	for i := range ns {
		out[i] = ns[i].ID
	}
	return out
}

func ptr(t time.Time) *time.Time { return &t }

// ---- tests ----

// testCreate: a create returns UUID ids, seq 1..N per receiver, createdAt now, readAt nil
// and the defaults; Get returns the same notification, to its receiver only.
func testCreate(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	now := clock()
	plain := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "comment.created"})
	full := valid(t, herald.NewNotification{
		ReceiverID: "alice",
		SenderID:   "bob",
		Type:       "project.role.application.created",
		Object:     "project.application.received",
		Payload:    json.RawMessage(`{"message": "Ada applied for Backend in Atlas", "nested": {"n": [1, 2.5, "é✓"], "ok": true, "nil": null}}`),
		Channels:   []herald.Channel{herald.ChannelEmail, herald.ChannelRealtime, herald.ChannelWebhook},
	})
	other := note(t, "carol", "comment.created", 1)
	res := apply(t, s, now, create(plain, full), create(other))
	a := ok(t, res[0])
	c := ok(t, res[1])
	if len(a.Notifications) != 2 || len(c.Notifications) != 1 {
		t.Fatalf("got %d and %d notifications, want 2 and 1", len(a.Notifications), len(c.Notifications))
	}
	if !slices.Equal(a.Replayed, []bool{false, false}) || !slices.Equal(c.Replayed, []bool{false}) {
		t.Errorf("Replayed = %v, %v; want all false", a.Replayed, c.Replayed)
	}

	want := []herald.Notification{
		{ReceiverID: "alice", SenderID: herald.DefaultSenderID, Type: "comment.created", Object: "comment.created",
			Payload: json.RawMessage(`{}`), Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: now, Seq: 1},
		{ReceiverID: "alice", SenderID: "bob", Type: full.Type, Object: full.Object, Payload: full.Payload,
			Channels: full.Channels, CreatedAt: now, Seq: 2},
		{ReceiverID: "carol", SenderID: herald.DefaultSenderID, Type: "comment.created", Object: "comment.created",
			Payload: other.Payload, Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: now, Seq: 1},
	}
	got := append(slices.Clone(a.Notifications), c.Notifications...)
	seen := map[string]bool{}
	for i, n := range got {
		if _, err := uuid.Parse(n.ID); err != nil {
			t.Errorf("notification %d: id %q is not a UUID", i, n.ID)
		}
		if seen[n.ID] {
			t.Errorf("notification %d: id %q is not unique", i, n.ID)
		}
		seen[n.ID] = true
		want[i].ID = n.ID
		sameNote(t, fmt.Sprintf("created[%d]", i), n, want[i])
		sameNote(t, fmt.Sprintf("Get[%d]", i), get(t, s, n.ReceiverID, n.ID), want[i])
	}

	// The result carries the created entries, with the unread total after each.
	if len(a.Entries) != 2 || len(c.Entries) != 1 {
		t.Fatalf("got %d and %d entries, want 2 and 1", len(a.Entries), len(c.Entries))
	}
	for i, e := range append(slices.Clone(a.Entries), c.Entries...) {
		w := herald.Entry{UserID: want[i].ReceiverID, Seq: want[i].Seq, Event: herald.EventCreated,
			Unread: want[i].Seq, At: now, Notification: &want[i]}
		sameEntry(t, fmt.Sprintf("entry[%d]", i), e, w)
	}

	// A notification is only ever its receiver's.
	_, err := s.Get(t.Context(), "carol", got[0].ID)
	wantCode(t, "Get of another user's notification", err, herald.CodeNotFound)
	_, err = s.Get(t.Context(), "alice", uuid.NewString())
	wantCode(t, "Get of an unknown id", err, herald.CodeNotFound)
	_, err = s.Get(t.Context(), "alice", "not-a-uuid")
	wantCode(t, "Get of a garbage id", err, herald.CodeNotFound)

	if n := unreadCount(t, s, "alice"); n != 2 {
		t.Errorf("UnreadCount(alice) = %d, want 2", n)
	}
	if n := unreadCount(t, s, "carol"); n != 1 {
		t.Errorf("UnreadCount(carol) = %d, want 1", n)
	}

	// A later create continues the receiver's seq.
	next := created(t, s, now.Add(time.Second), note(t, "alice", "comment.created", 3))
	if next[0].Seq != 3 {
		t.Errorf("third notification of alice has seq %d, want 3", next[0].Seq)
	}
}

// testEmptyUser: a user nobody wrote to is at seq 0 with nothing unread.
func testEmptyUser(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	created(t, s, clock(), note(t, "someone-else", "x", 1))
	if n := unreadCount(t, s, "nobody"); n != 0 {
		t.Errorf("UnreadCount = %d, want 0", n)
	}
	if p := unread(t, s, "nobody", 0, 10); len(p.Items) != 0 || p.Total != 0 || p.Seq != 0 {
		t.Errorf("Unread = %d items, total %d, seq %d; want 0, 0, 0", len(p.Items), p.Total, p.Seq)
	}
	if ns := createdSince(t, s, "nobody", 0, 10); len(ns) != 0 {
		t.Errorf("Created returned %d notifications, want none", len(ns))
	}
	if p := events(t, s, "nobody", 0, 10); len(p.Entries) != 0 || p.Reset || p.Seq != 0 {
		t.Errorf("Events(0) = %d entries, reset %v, seq %d; want 0, false, 0", len(p.Entries), p.Reset, p.Seq)
	}
	if p := events(t, s, "nobody", 1, 10); !p.Reset || len(p.Entries) != 0 || p.Seq != 0 {
		t.Errorf("Events(1) = %d entries, reset %v, seq %d; want 0, true, 0", len(p.Entries), p.Reset, p.Seq)
	}
	// Read-all with nothing to read changes nothing, and neither does an unknown id.
	res := apply(t, s, clock(), readAll("nobody"), markRead("nobody", uuid.NewString()))
	if r := ok(t, res[0]); r.ReadAll == nil || r.ReadAll.Updated != 0 || len(r.Entries) != 0 {
		t.Errorf("read-all of an empty user = %+v, want Updated 0 and no entry", r)
	}
	wantCode(t, "mark-read of an unknown id", res[1].Err, herald.CodeNotFound)
	if seq := latestSeq(t, s, "nobody"); seq != 0 {
		t.Errorf("seq after no-ops = %d, want 0", seq)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// testConcurrentSeq: concurrent writers creating for shared users and marking read never
// leave a gap or reuse a seq, and every entry's unread total matches replaying the log.
func testConcurrentSeq(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	users := []string{"u0", "u1", "u2"}
	const workers, rounds = 8, 12

	var mu sync.Mutex
	returned := map[string]map[int64]herald.Entry{} // what Apply reported, by user and seq
	for _, u := range users {
		returned[u] = map[int64]herald.Entry{}
	}
	var dup []string

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []herald.Notification
			for r := range rounds {
				var ops []persistence.Op
				for range 1 + rng.IntN(2) {
					var items []herald.NewNotification
					for range 1 + rng.IntN(3) {
						u := users[rng.IntN(len(users))]
						n := herald.NewNotification{ReceiverID: u, Type: "concurrent", Payload: json.RawMessage(fmt.Sprintf(`{"w": %d, "r": %d}`, w, r))}
						if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
							t.Errorf("validate: %v", err)
							return
						}
						items = append(items, n)
					}
					ops = append(ops, create(items...))
				}
				if len(mine) > 0 {
					n := mine[rng.IntN(len(mine))]
					ops = append(ops, markRead(n.ReceiverID, n.ID))
				}
				if r%5 == 4 {
					ops = append(ops, readAll(users[rng.IntN(len(users))]))
				}
				rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
				res, err := s.Apply(t.Context(), persistence.Now(), ops)
				if err != nil {
					t.Errorf("worker %d round %d: Apply: %v", w, r, err)
					return
				}
				mu.Lock()
				for i, res := range res {
					if res.Err != nil {
						t.Errorf("worker %d: op %d failed: %v", w, i, res.Err)
					}
					if ops[i].Kind == persistence.OpCreate {
						mine = append(mine, res.Notifications...)
					}
					for _, e := range res.Entries {
						if _, taken := returned[e.UserID][e.Seq]; taken {
							dup = append(dup, fmt.Sprintf("%s seq %d", e.UserID, e.Seq))
						}
						returned[e.UserID][e.Seq] = e
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(dup) > 0 {
		t.Fatalf("%d seqs handed out twice, first %v", len(dup), dup[:min(len(dup), 10)])
	}

	for _, u := range users {
		entries, latest := allEvents(t, s, u, 37)
		if int64(len(entries)) != latest || latest == 0 {
			t.Fatalf("%s: %d entries for latest seq %d", u, len(entries), latest)
		}
		if len(returned[u]) != len(entries) {
			t.Errorf("%s: Apply reported %d entries, the log holds %d", u, len(returned[u]), len(entries))
		}
		live := map[string]bool{} // unread ids, replaying the log
		for i, e := range entries {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: entry %d has seq %d, want %d (gap or reuse)", u, i, e.Seq, i+1)
			}
			if r, ok := returned[u][e.Seq]; !ok || r.Event != e.Event ||
				(r.Notification != nil && (e.Notification == nil || r.Notification.ID != e.Notification.ID)) {
				t.Errorf("%s seq %d: log has %s, Apply reported %s", u, e.Seq, e.Event, r.Event)
			}
			switch e.Event {
			case herald.EventCreated:
				if e.Notification.Seq != e.Seq || e.Notification.ReadAt != nil {
					t.Errorf("%s seq %d: created notification has seq %d, readAt %v", u, e.Seq, e.Notification.Seq, e.Notification.ReadAt)
				}
				live[e.Notification.ID] = true
			case herald.EventRead:
				if !live[e.Notification.ID] {
					t.Errorf("%s seq %d: read of %s, which was not unread", u, e.Seq, e.Notification.ID)
				}
				delete(live, e.Notification.ID)
			case herald.EventReadAll:
				if e.ReadAll.Updated != int64(len(live)) || len(live) == 0 {
					t.Errorf("%s seq %d: read-all updated %d, replay has %d unread", u, e.Seq, e.ReadAll.Updated, len(live))
				}
				clear(live)
			}
			if e.Unread != int64(len(live)) {
				t.Errorf("%s seq %d: entry unread %d, replay has %d", u, e.Seq, e.Unread, len(live))
			}
		}
		page := unread(t, s, u, 0, 10000)
		if page.Total != int64(len(live)) || len(page.Items) != len(live) || page.Seq != latest {
			t.Errorf("%s: Unread has %d items, total %d, seq %d; replay has %d unread at seq %d",
				u, len(page.Items), page.Total, page.Seq, len(live), latest)
		}
		for _, n := range page.Items {
			if !live[n.ID] {
				t.Errorf("%s: %s is in the unread list but read in the log", u, n.ID)
			}
		}
		if c := unreadCount(t, s, u); c != int64(len(live)) {
			t.Errorf("%s: UnreadCount = %d, replay has %d", u, c, len(live))
		}
		for _, n := range createdSince(t, s, u, 0, 10000) {
			if n.Unread() != live[n.ID] {
				t.Errorf("%s: %s has readAt %v, replay says unread=%v", u, n.ID, n.ReadAt, live[n.ID])
			}
		}
	}
}

// testBatchCreateAtomic: one failing item fails its whole create op, which stores nothing
// and takes no seq; the other ops of the same Apply go through.
func testBatchCreateAtomic(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	now := clock()
	first := note(t, "alice", "x", 1)
	first.IdempotencyKey = "k1"
	created(t, s, now, first)

	reuse := note(t, "alice", "x", 2) // key k1 with another body
	reuse.IdempotencyKey = "k1"
	fresh := note(t, "bob", "x", 3)
	fresh.IdempotencyKey = "k2"
	res := apply(t, s, now.Add(time.Second),
		create(note(t, "alice", "x", 4), fresh, note(t, "bob", "x", 5), reuse),
		create(note(t, "alice", "x", 6)),
	)
	wantCode(t, "batch with a conflicting key", res[0].Err, herald.CodeIdempotencyConflict)
	if len(res[0].Entries) != 0 {
		t.Errorf("failed op reported %d entries", len(res[0].Entries))
	}
	r := ok(t, res[1])
	if r.Notifications[0].Seq != 2 {
		t.Errorf("create after the failed op has seq %d, want 2", r.Notifications[0].Seq)
	}
	if c := unreadCount(t, s, "alice"); c != 2 {
		t.Errorf("UnreadCount(alice) = %d, want 2", c)
	}
	if ns := createdSince(t, s, "alice", 0, 100); len(ns) != 2 {
		t.Errorf("alice has %d notifications, want 2", len(ns))
	}
	if seq := latestSeq(t, s, "bob"); seq != 0 {
		t.Errorf("bob is at seq %d, want 0", seq)
	}
	if ns := createdSince(t, s, "bob", 0, 100); len(ns) != 0 {
		t.Errorf("bob has %d notifications, want 0", len(ns))
	}
	// The failed op did not keep k2 either: another body under k2 is a first use.
	other := note(t, "bob", "x", 7)
	other.IdempotencyKey = "k2"
	r = ok(t, apply(t, s, now.Add(2*time.Second), create(other))[0])
	if r.Replayed[0] || r.Notifications[0].Seq != 1 {
		t.Errorf("first use of k2 after the failed op: replayed %v, seq %d; want false, 1", r.Replayed[0], r.Notifications[0].Seq)
	}
}

// testMarkRead: mark-read sets readAt once, is idempotent, and never reaches another
// user's notification.
func testMarkRead(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t1 := clock()
	t2, t3 := t1.Add(time.Second), t1.Add(2*time.Second)
	ns := created(t, s, t1, note(t, "alice", "x", 1), note(t, "alice", "x", 2))
	bobs := created(t, s, t1, note(t, "bob", "x", 3))

	r := ok(t, apply(t, s, t2, markRead("alice", ns[0].ID))[0])
	want := ns[0]
	want.ReadAt = ptr(t2)
	if len(r.Notifications) != 1 {
		t.Fatalf("mark-read returned %d notifications", len(r.Notifications))
	}
	sameNote(t, "mark-read result", r.Notifications[0], want)
	if len(r.Entries) != 1 {
		t.Fatalf("mark-read reported %d entries, want 1", len(r.Entries))
	}
	sameEntry(t, "read entry", r.Entries[0], herald.Entry{UserID: "alice", Seq: 3, Event: herald.EventRead, Unread: 1, At: t2, Notification: &want})
	sameNote(t, "Get after mark-read", get(t, s, "alice", ns[0].ID), want)

	// Again: same readAt, no entry.
	r = ok(t, apply(t, s, t3, markRead("alice", ns[0].ID))[0])
	sameNote(t, "second mark-read result", r.Notifications[0], want)
	if len(r.Entries) != 0 {
		t.Errorf("second mark-read reported %d entries, want none", len(r.Entries))
	}
	if seq := latestSeq(t, s, "alice"); seq != 3 {
		t.Errorf("alice at seq %d after a repeated mark-read, want 3", seq)
	}

	// Another user's id, an unknown id and a garbage id are not found, and change nothing;
	// the other ops of the batch still go through.
	res := apply(t, s, t3,
		markRead("alice", bobs[0].ID),
		markRead("alice", uuid.NewString()),
		markRead("alice", "garbage"),
		markRead("alice", ""),
		markRead("alice", strings.ToUpper(ns[1].ID)), // one notification has one name
		markRead("alice", "{"+ns[1].ID+"}"),
		create(note(t, "alice", "x", 4)),
	)
	for i := range 6 {
		wantCode(t, fmt.Sprintf("mark-read %d", i), res[i].Err, herald.CodeNotFound)
		if len(res[i].Entries) != 0 || len(res[i].Notifications) != 0 {
			t.Errorf("failed mark-read %d returned %d notifications and %d entries", i, len(res[i].Notifications), len(res[i].Entries))
		}
	}
	if n := ok(t, res[6]).Notifications[0]; n.Seq != 4 {
		t.Errorf("create after failed mark-reads has seq %d, want 4", n.Seq)
	}
	sameNote(t, "bob's notification", get(t, s, "bob", bobs[0].ID), bobs[0])
	if c := unreadCount(t, s, "bob"); c != 1 {
		t.Errorf("UnreadCount(bob) = %d, want 1", c)
	}
	if seq := latestSeq(t, s, "bob"); seq != 1 {
		t.Errorf("bob at seq %d, want 1", seq)
	}

	// Mark-read between creates of the same Apply takes its place in the user's seq.
	t4 := t1.Add(3 * time.Second)
	res = apply(t, s, t4,
		create(note(t, "alice", "x", 5)),
		markRead("alice", ns[1].ID),
		create(note(t, "alice", "x", 6)),
	)
	var seqs []int64
	var unreads []int64
	for _, r := range res {
		for _, e := range ok(t, r).Entries {
			seqs = append(seqs, e.Seq)
			unreads = append(unreads, e.Unread)
		}
	}
	if !slices.Equal(seqs, []int64{5, 6, 7}) || !slices.Equal(unreads, []int64{3, 2, 3}) {
		t.Errorf("entries of create, mark-read, create: seqs %v unread %v; want [5 6 7] [3 2 3]", seqs, unreads)
	}
	if c := unreadCount(t, s, "alice"); c != 3 {
		t.Errorf("UnreadCount(alice) = %d, want 3", c)
	}
	sameTimePtr(t, "readAt of the second", get(t, s, "alice", ns[1].ID).ReadAt, ptr(t4))
}

// testReadAll: read-all marks every unread notification of the user, and only those.
func testReadAll(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t1 := clock()
	t2, t3, t4 := t1.Add(time.Second), t1.Add(2*time.Second), t1.Add(3*time.Second)
	ns := created(t, s, t1, note(t, "alice", "x", 1), note(t, "alice", "x", 2), note(t, "alice", "x", 3))
	bobs := created(t, s, t1, note(t, "bob", "x", 4))
	ok(t, apply(t, s, t1, markRead("alice", ns[1].ID))[0])

	r := ok(t, apply(t, s, t2, readAll("alice"))[0])
	if r.ReadAll == nil || r.ReadAll.Updated != 2 {
		t.Fatalf("read-all = %+v, want Updated 2", r.ReadAll)
	}
	sameTime(t, "ReadAll.ReadAt", r.ReadAll.ReadAt, t2)
	if len(r.Entries) != 1 {
		t.Fatalf("read-all reported %d entries, want 1", len(r.Entries))
	}
	sameEntry(t, "read-all entry", r.Entries[0], herald.Entry{UserID: "alice", Seq: 5, Event: herald.EventReadAll, Unread: 0, At: t2,
		ReadAll: &herald.ReadAll{ReadAt: t2, Updated: 2}})
	sameTimePtr(t, "readAt of 1", get(t, s, "alice", ns[0].ID).ReadAt, ptr(t2))
	sameTimePtr(t, "readAt of 2 (read before)", get(t, s, "alice", ns[1].ID).ReadAt, ptr(t1))
	sameTimePtr(t, "readAt of 3", get(t, s, "alice", ns[2].ID).ReadAt, ptr(t2))
	sameTimePtr(t, "bob's readAt", get(t, s, "bob", bobs[0].ID).ReadAt, nil)
	if c := unreadCount(t, s, "bob"); c != 1 {
		t.Errorf("UnreadCount(bob) = %d, want 1", c)
	}
	if p := unread(t, s, "alice", 0, 100); len(p.Items) != 0 || p.Total != 0 || p.Seq != 5 {
		t.Errorf("Unread after read-all: %d items, total %d, seq %d; want 0, 0, 5", len(p.Items), p.Total, p.Seq)
	}

	// Nothing left: Updated 0, no entry.
	r = ok(t, apply(t, s, t3, readAll("alice"))[0])
	if r.ReadAll == nil || r.ReadAll.Updated != 0 || len(r.Entries) != 0 {
		t.Errorf("second read-all = %+v with %d entries, want Updated 0 and none", r.ReadAll, len(r.Entries))
	}
	if seq := latestSeq(t, s, "alice"); seq != 5 {
		t.Errorf("alice at seq %d after an empty read-all, want 5", seq)
	}

	// Create, read-all, create in one Apply: the first is read, the second stays unread.
	res := apply(t, s, t4,
		create(note(t, "alice", "x", 5)),
		readAll("alice"),
		create(note(t, "alice", "x", 6)),
	)
	before := ok(t, res[0]).Notifications[0]
	if ra := ok(t, res[1]).ReadAll; ra == nil || ra.Updated != 1 {
		t.Errorf("read-all between creates = %+v, want Updated 1", ra)
	}
	after := ok(t, res[2]).Notifications[0]
	if after.ReadAt != nil {
		t.Errorf("create after read-all has readAt %v, want nil", after.ReadAt)
	}
	sameTimePtr(t, "readAt of the create before read-all", get(t, s, "alice", before.ID).ReadAt, ptr(t4))
	sameTimePtr(t, "readAt of the create after read-all", get(t, s, "alice", after.ID).ReadAt, nil)
	p := unread(t, s, "alice", 0, 100)
	if !slices.Equal(ids(p.Items), []string{after.ID}) || p.Total != 1 || p.Seq != 8 {
		t.Errorf("Unread = %v total %d seq %d; want [%s] 1 8", ids(p.Items), p.Total, p.Seq, after.ID)
	}

	// Read-all then mark-read of an old one in the same Apply: the mark-read is a no-op.
	ns = created(t, s, t4, note(t, "alice", "x", 7))
	res = apply(t, s, t4.Add(time.Second), readAll("alice"), markRead("alice", ns[0].ID))
	if len(ok(t, res[1]).Entries) != 0 {
		t.Errorf("mark-read after read-all in one Apply added an entry")
	}
	sameTimePtr(t, "mark-read after read-all", res[1].Notifications[0].ReadAt, ptr(t4.Add(time.Second)))
	if p := unread(t, s, "alice", 0, 100); len(p.Items) != 0 || p.Total != 0 {
		t.Errorf("Unread after the last read-all: %d items, total %d; want none", len(p.Items), p.Total)
	}
	if c := unreadCount(t, s, "alice"); c != 0 {
		t.Errorf("UnreadCount(alice) = %d, want 0", c)
	}
}

// testUnreadPaging: the unread list is newest first and the before cursor visits every
// unread notification exactly once.
func testUnreadPaging(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	now := clock()
	var all []herald.Notification
	for b, n := range []int{10, 10, 5} {
		var items []herald.NewNotification
		for i := range n {
			items = append(items, note(t, "alice", "x", b*100+i))
		}
		all = append(all, created(t, s, now, items...)...)
	}
	created(t, s, now, note(t, "bob", "x", 0))
	var ops []persistence.Op
	want := map[string]bool{}
	for i, n := range all {
		if i%4 == 0 {
			ops = append(ops, markRead("alice", n.ID))
		} else {
			want[n.ID] = true
		}
	}
	apply(t, s, now.Add(time.Second), ops...)
	const latest = 25 + 7

	var before int64
	seen := map[string]bool{}
	pages := 0
	for {
		p := unread(t, s, "alice", before, 7)
		if p.Total != int64(len(want)) || p.Seq != latest {
			t.Errorf("page %d: total %d seq %d, want %d %d", pages, p.Total, p.Seq, len(want), latest)
		}
		if len(p.Items) > 7 {
			t.Fatalf("page %d has %d items, limit 7", pages, len(p.Items))
		}
		if len(p.Items) == 0 {
			break
		}
		for i, n := range p.Items {
			if before > 0 && n.Seq >= before {
				t.Errorf("page %d: seq %d not before %d", pages, n.Seq, before)
			}
			if i > 0 && n.Seq >= p.Items[i-1].Seq {
				t.Errorf("page %d: seq %d after %d, want newest first", pages, n.Seq, p.Items[i-1].Seq)
			}
			if !want[n.ID] || seen[n.ID] || n.ReadAt != nil {
				t.Errorf("page %d: %s (seq %d, readAt %v) unexpected or seen twice", pages, n.ID, n.Seq, n.ReadAt)
			}
			seen[n.ID] = true
		}
		before = p.Items[len(p.Items)-1].Seq
		pages++
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != len(want) || pages != 3 {
		t.Errorf("paging saw %d of %d unread in %d pages, want all in 3", len(seen), len(want), pages)
	}
	// The first page of the whole list holds the newest unread (the newest, seq 25, is read).
	if p := unread(t, s, "alice", 0, 1); len(p.Items) != 1 || p.Items[0].ID != all[23].ID {
		t.Errorf("newest unread = %v, want %s", ids(p.Items), all[23].ID)
	}
	// A bound in the middle: seqs 8, 7, 6, 4, 3, 2 (1, 5 and 9 were read).
	p := unread(t, s, "alice", 10, 100)
	wantIDs := []string{all[7].ID, all[6].ID, all[5].ID, all[3].ID, all[2].ID, all[1].ID}
	if got := ids(p.Items); !slices.Equal(got, wantIDs) {
		t.Errorf("Unread(before 10) = %v, want %v", got, wantIDs)
	}
}

// testCreatedPaging: Created pages oldest first by log position, read ones included with
// their current readAt.
func testCreatedPaging(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t1 := clock()
	t2, t3 := t1.Add(time.Second), t1.Add(2*time.Second)
	var all []herald.Notification
	all = append(all, created(t, s, t1, note(t, "alice", "x", 1), note(t, "alice", "x", 2), note(t, "alice", "x", 3))...)
	all = append(all, created(t, s, t1, note(t, "alice", "x", 4), note(t, "alice", "x", 5), note(t, "alice", "x", 6))...)
	created(t, s, t1, note(t, "bob", "x", 0))
	ok(t, apply(t, s, t2, markRead("alice", all[1].ID))[0]) // seq 7
	all = append(all, created(t, s, t3, note(t, "alice", "x", 7), note(t, "alice", "x", 8))...)
	all[1].ReadAt = ptr(t2)
	if all[6].Seq != 8 || all[7].Seq != 9 {
		t.Fatalf("creates after a read have seq %d, %d; want 8, 9", all[6].Seq, all[7].Seq)
	}

	var got []herald.Notification
	var since int64
	for pages := 0; ; pages++ {
		ns := createdSince(t, s, "alice", since, 4)
		if len(ns) > 4 {
			t.Fatalf("page of %d, limit 4", len(ns))
		}
		if len(ns) == 0 {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		got = append(got, ns...)
		since = ns[len(ns)-1].Seq
	}
	if len(got) != len(all) {
		t.Fatalf("paging returned %d notifications, want %d", len(got), len(all))
	}
	for i := range all {
		sameNote(t, fmt.Sprintf("Created[%d]", i), got[i], all[i])
	}
	// since is a log position: after the read entry at 7 come the creations at 8 and 9.
	for _, since := range []int64{6, 7} {
		if ns := createdSince(t, s, "alice", since, 10); !slices.Equal(ids(ns), []string{all[6].ID, all[7].ID}) {
			t.Errorf("Created(since %d) = %v, want the last two", since, ids(ns))
		}
	}
	if ns := createdSince(t, s, "alice", 9, 10); len(ns) != 0 {
		t.Errorf("Created(since latest) returned %d", len(ns))
	}
}

// testEvents: the log replays what happened, as it was then.
func testEvents(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t1 := clock()
	t2, t3, t4 := t1.Add(time.Second), t1.Add(2*time.Second), t1.Add(3*time.Second)
	var reported []herald.Entry
	collect := func(res []persistence.Result) []persistence.Result {
		for _, r := range res {
			reported = append(reported, ok(t, r).Entries...)
		}
		return res
	}
	ns := collect(apply(t, s, t1, create(note(t, "alice", "x", 1), note(t, "alice", "x", 2))))[0].Notifications
	created(t, s, t1, note(t, "bob", "x", 0))
	collect(apply(t, s, t2, markRead("alice", ns[0].ID)))
	collect(apply(t, s, t3, readAll("alice")))
	n3 := collect(apply(t, s, t4, create(note(t, "alice", "x", 3))))[0].Notifications[0]

	read0 := ns[0]
	read0.ReadAt = ptr(t2)
	want := []herald.Entry{
		{UserID: "alice", Seq: 1, Event: herald.EventCreated, Unread: 1, At: t1, Notification: &ns[0]},
		{UserID: "alice", Seq: 2, Event: herald.EventCreated, Unread: 2, At: t1, Notification: &ns[1]},
		{UserID: "alice", Seq: 3, Event: herald.EventRead, Unread: 1, At: t2, Notification: &read0},
		{UserID: "alice", Seq: 4, Event: herald.EventReadAll, Unread: 0, At: t3, ReadAll: &herald.ReadAll{ReadAt: t3, Updated: 1}},
		{UserID: "alice", Seq: 5, Event: herald.EventCreated, Unread: 1, At: t4, Notification: &n3},
	}
	if ns[0].ReadAt != nil || ns[1].ReadAt != nil {
		t.Fatal("created notifications came back read")
	}
	p := events(t, s, "alice", 0, 100)
	if p.Reset || p.Seq != 5 || len(p.Entries) != len(want) {
		t.Fatalf("Events(0) = %d entries, reset %v, seq %d; want %d, false, 5", len(p.Entries), p.Reset, p.Seq, len(want))
	}
	for i := range want {
		sameEntry(t, fmt.Sprintf("Events[%d]", i), p.Entries[i], want[i])
		sameEntry(t, fmt.Sprintf("reported[%d]", i), reported[i], want[i])
	}

	p = events(t, s, "alice", 1, 2)
	if p.Reset || p.Seq != 5 || len(p.Entries) != 2 {
		t.Fatalf("Events(1, limit 2) = %d entries, reset %v, seq %d; want 2, false, 5", len(p.Entries), p.Reset, p.Seq)
	}
	sameEntry(t, "Events(1)[0]", p.Entries[0], want[1])
	sameEntry(t, "Events(1)[1]", p.Entries[1], want[2])

	p = events(t, s, "alice", 5, 100)
	if p.Reset || p.Seq != 5 || len(p.Entries) != 0 {
		t.Errorf("Events(latest) = %d entries, reset %v, seq %d; want 0, false, 5", len(p.Entries), p.Reset, p.Seq)
	}
	for _, since := range []int64{6, 1000} {
		p = events(t, s, "alice", since, 100)
		if !p.Reset || p.Seq != 5 || len(p.Entries) != 0 {
			t.Errorf("Events(%d) = %d entries, reset %v, seq %d; want 0, true, 5", since, len(p.Entries), p.Reset, p.Seq)
		}
	}
	p = events(t, s, "bob", 0, 100)
	if p.Seq != 1 || len(p.Entries) != 1 || p.Entries[0].UserID != "bob" {
		t.Errorf("bob's log = %d entries, seq %d; want his one creation", len(p.Entries), p.Seq)
	}
}

// testIdempotency: a key is unique per sender; a replay returns the stored notification
// and changes nothing, a reuse with another body is a conflict.
func testIdempotency(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t1 := clock()
	t2, t3, t4 := t1.Add(time.Second), t1.Add(2*time.Second), t1.Add(3*time.Second)
	keyed := func(sender, key, payload string) herald.NewNotification {
		return valid(t, herald.NewNotification{ReceiverID: "alice", SenderID: sender, Type: "x",
			Payload: json.RawMessage(payload), IdempotencyKey: key})
	}
	orig := created(t, s, t1, keyed("svc-a", "k1", `{"a": 1, "b": [1, 2]}`))[0]

	// Same body, formatted differently: a replay of the original.
	r := ok(t, apply(t, s, t2, create(keyed("svc-a", "k1", `{"a":1,"b":[1,2]}`)))[0])
	if !slices.Equal(r.Replayed, []bool{true}) || len(r.Entries) != 0 {
		t.Errorf("replay: Replayed %v, %d entries; want [true], none", r.Replayed, len(r.Entries))
	}
	sameNote(t, "replay", r.Notifications[0], orig)
	if seq := latestSeq(t, s, "alice"); seq != 1 {
		t.Errorf("alice at seq %d after a replay, want 1", seq)
	}

	// Another body under the same key: conflict, nothing stored.
	res := apply(t, s, t2, create(keyed("svc-a", "k1", `{"a": 2}`)))
	wantCode(t, "same key, other body", res[0].Err, herald.CodeIdempotencyConflict)
	if seq := latestSeq(t, s, "alice"); seq != 1 {
		t.Errorf("alice at seq %d after a conflict, want 1", seq)
	}

	// The same key from another sender is another notification.
	r = ok(t, apply(t, s, t2, create(keyed("svc-b", "k1", `{"a": 1, "b": [1, 2]}`)))[0])
	if r.Replayed[0] || r.Notifications[0].ID == orig.ID || r.Notifications[0].Seq != 2 {
		t.Errorf("other sender's k1: replayed %v, id %s, seq %d; want a new notification at seq 2",
			r.Replayed[0], r.Notifications[0].ID, r.Notifications[0].Seq)
	}

	// Two ops with one key in one Apply: the second replays the first.
	res = apply(t, s, t3, create(keyed("svc-a", "k2", `{}`)), create(keyed("svc-a", "k2", `{}`)))
	a, b := ok(t, res[0]), ok(t, res[1])
	if a.Replayed[0] || !b.Replayed[0] || a.Notifications[0].ID != b.Notifications[0].ID || len(b.Entries) != 0 {
		t.Errorf("same key twice in one Apply: replayed %v/%v, ids %s/%s, %d entries for the second",
			a.Replayed[0], b.Replayed[0], a.Notifications[0].ID, b.Notifications[0].ID, len(b.Entries))
	}
	// Two items with one key in one batch: the second replays the first.
	r = ok(t, apply(t, s, t3, create(keyed("svc-a", "k3", `{}`), keyed("svc-a", "k3", `{}`)))[0])
	if !slices.Equal(r.Replayed, []bool{false, true}) || r.Notifications[0].ID != r.Notifications[1].ID || len(r.Entries) != 1 {
		t.Errorf("same key twice in one batch: replayed %v, ids %v, %d entries", r.Replayed, ids(r.Notifications), len(r.Entries))
	}
	// ... and with different bodies the batch fails.
	res = apply(t, s, t3, create(keyed("svc-a", "k4", `{}`), keyed("svc-a", "k4", `{"x": 1}`)))
	wantCode(t, "same key, two bodies in one batch", res[0].Err, herald.CodeIdempotencyConflict)
	seq := latestSeq(t, s, "alice")
	if seq != 4 {
		t.Errorf("alice at seq %d, want 4", seq)
	}

	// A replay shows the notification as it is now.
	ok(t, apply(t, s, t4, markRead("alice", orig.ID))[0])
	r = ok(t, apply(t, s, t4, create(keyed("svc-a", "k1", `{"a": 1, "b": [1, 2]}`)))[0])
	read := orig
	read.ReadAt = ptr(t4)
	sameNote(t, "replay after mark-read", r.Notifications[0], read)
	t5 := t4.Add(time.Second)
	res = apply(t, s, t5, readAll("alice"), create(keyed("svc-a", "k2", `{}`)))
	if !ok(t, res[1]).Replayed[0] {
		t.Fatal("k2 was not replayed")
	}
	sameTimePtr(t, "readAt of a replay after read-all in the same Apply", res[1].Notifications[0].ReadAt, ptr(t5))
}

// testRetention: a cursor whose next entry is older than the retention gets a Reset, a
// fresh cursor works, and Prune drops old log rows but keeps the notifications.
func testRetention(t *testing.T, open Opener) {
	const retention = time.Hour
	s := open(t, retention)
	old := persistence.Now().Add(-3 * retention)
	ns := created(t, s, old, note(t, "alice", "x", 1), note(t, "alice", "x", 2))
	ok(t, apply(t, s, old.Add(time.Minute), markRead("alice", ns[0].ID))[0]) // seq 3
	created(t, s, persistence.Now(), note(t, "bob", "x", 0))

	for _, since := range []int64{0, 1, 2} {
		p := events(t, s, "alice", since, 100)
		if !p.Reset || p.Seq != 3 || len(p.Entries) != 0 {
			t.Errorf("Events(%d) over expired entries = %d entries, reset %v, seq %d; want 0, true, 3", since, len(p.Entries), p.Reset, p.Seq)
		}
	}
	if p := events(t, s, "alice", 3, 100); p.Reset || len(p.Entries) != 0 {
		t.Errorf("Events(latest) = %d entries, reset %v; want none, no reset", len(p.Entries), p.Reset)
	}

	// Continuing from the snapshot's seq.
	n3 := created(t, s, persistence.Now(), note(t, "alice", "x", 3))[0]
	if n3.Seq != 4 {
		t.Fatalf("new notification at seq %d, want 4", n3.Seq)
	}
	checkFresh := func(when string) {
		t.Helper()
		p := events(t, s, "alice", 3, 100)
		if p.Reset || p.Seq != 4 || len(p.Entries) != 1 || p.Entries[0].Notification == nil || p.Entries[0].Notification.ID != n3.ID {
			t.Errorf("%s: Events(3) = %d entries, reset %v, seq %d; want the new creation", when, len(p.Entries), p.Reset, p.Seq)
		}
	}
	checkFresh("before Prune")

	pruned, err := Prune(t, s, persistence.Now().Add(-retention))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if pruned <= 0 {
		t.Errorf("Prune removed %d entries, want the expired read entry at least", pruned)
	}
	if again, err := Prune(t, s, persistence.Now().Add(-retention)); err != nil || again != 0 {
		t.Errorf("second Prune = %d, %v; want 0, nil", again, err)
	}
	checkFresh("after Prune")
	if p := events(t, s, "alice", 0, 100); !p.Reset || p.Seq != 4 {
		t.Errorf("after Prune, Events(0) reset %v seq %d; want true, 4", p.Reset, p.Seq)
	}
	if p := events(t, s, "bob", 0, 100); p.Reset || len(p.Entries) != 1 {
		t.Errorf("bob's recent log after Prune: %d entries, reset %v; want 1, false", len(p.Entries), p.Reset)
	}

	// The notifications themselves stay.
	read := ns[0]
	read.ReadAt = ptr(old.Add(time.Minute))
	sameNote(t, "expired read notification", get(t, s, "alice", ns[0].ID), read)
	p := unread(t, s, "alice", 0, 100)
	if !slices.Equal(ids(p.Items), []string{n3.ID, ns[1].ID}) || p.Total != 2 || p.Seq != 4 {
		t.Errorf("Unread after Prune = %v total %d seq %d; want [%s %s] 2 4", ids(p.Items), p.Total, p.Seq, n3.ID, ns[1].ID)
	}
	if all := createdSince(t, s, "alice", 0, 100); len(all) != 3 {
		t.Errorf("Created after Prune returned %d, want 3", len(all))
	}
	// The log goes on from where it was.
	r := ok(t, apply(t, s, persistence.Now(), markRead("alice", ns[1].ID))[0])
	if len(r.Entries) != 1 || r.Entries[0].Seq != 5 || r.Entries[0].Unread != 1 {
		t.Errorf("mark-read after Prune: entries %+v, want seq 5 unread 1", r.Entries)
	}
}

// testClosed: a closed store refuses writes as unavailable.
func testClosed(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	created(t, s, clock(), note(t, "alice", "x", 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{create(note(t, "alice", "x", 2))})
	wantCode(t, "Apply on a closed store", err, herald.CodeUnavailable)
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping on a closed store succeeded")
	}
}

// testHeads: the latest seq of many users in one read, 0 for users with no log (and for
// ids no store can hold), whatever their order or repetition.
func testHeads(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	now := clock()
	created(t, s, now, note(t, "alice", "a", 1), note(t, "alice", "a", 2), note(t, "bob", "a", 1))
	apply(t, s, now, readAll("alice"))
	users := []string{"bob", "nobody", "alice", "bad\x00id", "alice", "\xff"}
	seqs := []int64{-1, -1, -1, -1, -1, -1}
	if err := s.Heads(t.Context(), users, seqs); err != nil {
		t.Fatalf("Heads: %v", err)
	}
	if want := []int64{1, 0, 3, 0, 3, 0}; !slices.Equal(seqs, want) {
		t.Errorf("Heads(%q) = %v, want %v", users, seqs, want)
	}
	if err := s.Heads(t.Context(), nil, nil); err != nil {
		t.Errorf("Heads of no users: %v", err)
	}
}
