package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

func init() {
	outboxTests = append(outboxTests,
		struct {
			name string
			fn   func(t *testing.T, open Opener)
		}{"Digests", testDigests},
		struct {
			name string
			fn   func(t *testing.T, open Opener)
		}{"DigestAtomic", testDigestAtomic},
	)
}

func digested(t *testing.T, n herald.NewNotification, rule string, window time.Duration, key string) herald.NewNotification {
	t.Helper()
	n.Digest = &herald.Digest{Rule: rule, Window: window}
	n.IdempotencyKey = key
	return valid(t, n)
}

func due(t *testing.T, s persistence.Store, now time.Time) []persistence.DigestKey {
	t.Helper()
	ks, err := s.DueDigests(t.Context(), now, 10)
	if err != nil {
		t.Fatalf("DueDigests: %v", err)
	}
	return ks
}

func flush(t *testing.T, s persistence.Store, now time.Time, k persistence.DigestKey) persistence.Result {
	t.Helper()
	return ok(t, apply(t, s, now, persistence.Op{Kind: persistence.OpFlushDigest, Digest: k})[0])
}

// testDigests: held-back notifications are grouped per receiver, type and rule; the
// digest is due after its window, flushes once into one notification with the count and
// the items, and a new one opens after it.
func testDigests(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	const w = 10 * time.Minute
	pay := func(i int) herald.NewNotification {
		n := note(t, "gina", "project.updated", i)
		n.Payload = json.RawMessage(fmt.Sprintf(`{"message":"change %d"}`, i))
		n.Channels = []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail}
		return n
	}
	res := ok(t, apply(t, s, t0, create(digested(t, pay(1), "r", w, "a"), digested(t, pay(2), "r", w, "b")))[0])
	if len(res.Digested) != 2 || !res.Digested[0] || !res.Digested[1] || res.Notifications[0].ID != "" || len(res.Entries) != 0 {
		t.Fatalf("digested create: %+v", res)
	}
	// A replay of a held item's key adds nothing; other rules and receivers are apart.
	apply(t, s, t0.Add(time.Minute), create(digested(t, pay(1), "r", w, "a"), digested(t, pay(3), "r", w, "c")))
	apply(t, s, t0.Add(time.Minute), create(digested(t, pay(4), "other", w, "")))
	if page, err := s.Unread(t.Context(), "gina", 0, 10); err != nil || page.Total != 0 || page.Seq != 0 {
		t.Fatalf("held back notifications were stored: %+v %v", page, err)
	}
	if ks := due(t, s, t0.Add(w-time.Microsecond)); len(ks) != 0 {
		t.Fatalf("digests due early: %v", ks)
	}
	ks := due(t, s, t0.Add(w))
	if len(ks) != 1 || ks[0] != (persistence.DigestKey{UserID: "gina", Type: "project.updated", Rule: "r"}) {
		t.Fatalf("due digests: %+v", ks)
	}
	got := flush(t, s, t0.Add(w), ks[0])
	if len(got.Notifications) != 1 || len(got.Entries) != 1 {
		t.Fatalf("flush: %+v", got)
	}
	n := got.Notifications[0]
	var p struct {
		Count   int
		Items   []struct{ Message string }
		Message string
	}
	if err := json.Unmarshal(n.Payload, &p); err != nil || p.Count != 3 || len(p.Items) != 3 || p.Items[2].Message != "change 3" ||
		p.Message != "change 1 (and 2 more)" || n.Seq != 1 || n.Type != "project.updated" || n.ReceiverID != "gina" {
		t.Fatalf("digest notification %+v payload %s", n, n.Payload)
	}
	if ds := claim(t, s, t0.Add(w), time.Minute, 10); len(ds) != 1 || ds[0].NotificationID != n.ID {
		t.Fatalf("the digest's email: %+v", ds)
	}
	// Flushed once: a second flush stores nothing; the digest is no longer due.
	if again := flush(t, s, t0.Add(w), ks[0]); len(again.Notifications) != 0 {
		t.Fatalf("second flush: %+v", again)
	}
	if ks := due(t, s, t0.Add(w)); len(ks) != 0 {
		t.Fatalf("due after the flush: %v", ks)
	}
	// The next item opens a new digest; a digest of one item is that item.
	apply(t, s, t0.Add(w+time.Second), create(digested(t, pay(5), "r", w, "")))
	ks = due(t, s, t0.Add(3*w))
	if len(ks) != 2 { // "other" and the new "r"
		t.Fatalf("due: %v", ks)
	}
	for _, k := range ks {
		r := flush(t, s, t0.Add(3*w), k)
		if k.Rule == "r" && string(r.Notifications[0].Payload) != `{"message":"change 5"}` {
			t.Fatalf("one-item digest payload %s", r.Notifications[0].Payload)
		}
	}
	if page, _ := s.Unread(t.Context(), "gina", 0, 10); page.Total != 3 || page.Seq != 3 {
		t.Fatalf("after the flushes: %+v", page)
	}
}

// testDigestAtomic: a failing op adds nothing to a digest; preferences apply to held
// notifications too.
func testDigestAtomic(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	created(t, s, t0, func() herald.NewNotification {
		n := note(t, "hank", "t", 0)
		n.IdempotencyKey = "dup"
		return valid(t, n)
	}())
	conflicting := note(t, "hank", "t", 1)
	conflicting.IdempotencyKey = "dup"
	res := apply(t, s, t0, create(digested(t, note(t, "hank", "t", 2), "r", time.Minute, ""), valid(t, conflicting)))[0]
	wantCode(t, "conflicting batch", res.Err, herald.CodeIdempotencyConflict)
	if ks := due(t, s, t0.Add(time.Hour)); len(ks) != 0 {
		t.Fatalf("a failed op opened a digest: %v", ks)
	}
	if err := SetPreferences(t, s, "hank", persistence.Preferences{Types: map[string]map[herald.Channel]bool{"t": {herald.ChannelRealtime: false}}}); err != nil {
		t.Fatal(err)
	}
	r := ok(t, apply(t, s, t0, create(digested(t, note(t, "hank", "t", 3), "r", time.Minute, "")))[0])
	if r.Suppressed == nil || !r.Suppressed[0] {
		t.Fatalf("held notification of a type turned off: %+v", r)
	}
	if ks := due(t, s, t0.Add(time.Hour)); len(ks) != 0 {
		t.Fatalf("a suppressed notification opened a digest: %v", ks)
	}

	// A flush before the digest is due stores nothing (it may have been reopened since
	// another flusher read the key); a flush follows the preferences of its time.
	k := persistence.DigestKey{UserID: "ivy", Type: "t", Rule: "r"}
	apply(t, s, t0, create(digested(t, note(t, "ivy", "t", 1), "r", time.Minute, "")))
	if r := flush(t, s, t0.Add(time.Second), k); len(r.Notifications) != 0 {
		t.Fatalf("early flush: %+v", r)
	}
	if err := SetPreferences(t, s, "ivy", persistence.Preferences{Types: map[string]map[herald.Channel]bool{"t": {herald.ChannelRealtime: false}}}); err != nil {
		t.Fatal(err)
	}
	if r := flush(t, s, t0.Add(time.Minute), k); r.Suppressed == nil || !r.Suppressed[0] {
		t.Fatalf("flush of a type turned off since: %+v", r)
	}
	if ks := due(t, s, t0.Add(time.Hour)); len(ks) != 0 {
		t.Fatalf("a suppressed flush left its digest: %v", ks)
	}
}
