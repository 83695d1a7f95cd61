package postgres

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

func TestDigestItemsCodec(t *testing.T) {
	cases := [][]persistence.DigestItem{
		nil,
		{{Payload: json.RawMessage(`{}`)}},
		{
			{IdempotencyKey: `u:"quoted" \ <&> é`, Payload: json.RawMessage(" \t{\"a\": \"}]\\\"{\" ,\n \"b\":[1, {\"c\":null}]}\r\n")},
			{IdempotencyKey: "", Payload: nil},
			{IdempotencyKey: "s:k", Payload: json.RawMessage(`{"x":"\u0000<b>"}`)},
		},
	}
	for _, items := range cases {
		enc := encodeItems(items)
		if !json.Valid([]byte(enc)) {
			t.Fatalf("encoded items are not JSON: %s", enc)
		}
		got, err := decodeItems([]byte(enc))
		if err != nil {
			t.Fatalf("decode %s: %v", enc, err)
		}
		if !slices.EqualFunc(got, items, func(a, b persistence.DigestItem) bool {
			return a.IdempotencyKey == b.IdempotencyKey && string(a.Payload) == string(b.Payload) && (a.Payload == nil) == (b.Payload == nil)
		}) {
			t.Fatalf("round trip of %s: %q, want %q", enc, got, items)
		}
	}
	for _, bad := range []string{``, `[`, `[{"k":"a","p":{}}`, `[{"k":"a"}]`, `[{"k":"a","p":{}},]`, `[{"k":"a","p":{}}]x`} {
		if _, err := decodeItems([]byte(bad)); err == nil {
			t.Errorf("decodeItems(%q) succeeded", bad)
		}
	}
}

func digestedNote(t *testing.T, receiver, payload, key string) herald.NewNotification {
	t.Helper()
	n := valid(t, herald.NewNotification{ReceiverID: receiver, Type: "t", IdempotencyKey: key,
		Payload: json.RawMessage(payload), Channels: []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail}})
	n.Digest = &herald.Digest{Rule: "r", Window: 0} // due at once: the tests flush right away
	return n
}

// TestDigestRoundTrip: an open digest reads back as it was written, payloads byte for
// byte, and a digest of one item flushes into that item's payload exactly.
func TestDigestRoundTrip(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	p1 := " {\"message\": \"a <b> & c\",\n  \"z\": \"\\u0000\", \"a\": 1}\n"
	p2 := `{"message":"second"}`
	if _, err := s.Apply(t.Context(), t0, []persistence.Op{create(digestedNote(t, "ivy", p1, `k"1`), digestedNote(t, "ivy", p2, ""))}); err != nil {
		t.Fatal(err)
	}
	k := persistence.DigestKey{UserID: "ivy", Type: "t", Rule: "r"}
	c, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	prior, err := load(t.Context(), c.Conn(), persistence.Keys{Users: []string{"ivy"}, Digests: []persistence.DigestKey{k}}, []string{"ivy"}, false)
	rollback(c.Conn())
	c.Release()
	if err != nil {
		t.Fatal(err)
	}
	b := prior.Digests[k]
	if b.Key != k || !b.OpenedAt.Equal(t0) || b.OpenedAt.Location() != time.UTC || !b.DueAt.Equal(t0) ||
		b.Count != 2 || b.SenderID != herald.DefaultSenderID || b.Object != "t" ||
		!slices.Equal(b.Channels, []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail}) || len(b.Items) != 2 ||
		b.Items[0].IdempotencyKey != "system\x00"+`s:k"1` || string(b.Items[0].Payload) != p1 ||
		b.Items[1].IdempotencyKey != "" || string(b.Items[1].Payload) != p2 {
		t.Fatalf("loaded digest %+v", b)
	}

	// A digest of one item is that item, byte for byte, stored and returned.
	if _, err := s.Apply(t.Context(), t0, []persistence.Op{create(digestedNote(t, "jo", p1, ""))}); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, s, persistence.Op{Kind: persistence.OpFlushDigest, Digest: persistence.DigestKey{UserID: "jo", Type: "t", Rule: "r"}})
	if res[0].Err != nil || len(res[0].Notifications) != 1 || string(res[0].Notifications[0].Payload) != p1 {
		t.Fatalf("flush: %+v", res[0])
	}
	n, err := s.Get(t.Context(), "jo", res[0].Notifications[0].ID)
	if err != nil || string(n.Payload) != p1 {
		t.Fatalf("stored flush %q %v, want %q", n.Payload, err, p1)
	}
}

// TestDigestConcurrentFlush: flushes of one digest racing on several connections store
// it once.
func TestDigestConcurrentFlush(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	if _, err := s.Apply(t.Context(), t0, []persistence.Op{create(digestedNote(t, "kim", `{"message":"a"}`, ""), digestedNote(t, "kim", `{"message":"b"}`, ""))}); err != nil {
		t.Fatal(err)
	}
	k := persistence.DigestKey{UserID: "kim", Type: "t", Rule: "r"}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		stored int
	)
	for range 8 {
		wg.Go(func() {
			res, err := s.Apply(t.Context(), t0.Add(time.Minute), []persistence.Op{{Kind: persistence.OpFlushDigest, Digest: k}})
			if err != nil || res[0].Err != nil {
				t.Errorf("flush: %v %+v", err, res)
				return
			}
			mu.Lock()
			stored += len(res[0].Notifications)
			mu.Unlock()
		})
	}
	wg.Wait()
	if stored != 1 {
		t.Fatalf("%d notifications stored by the flushes, want 1", stored)
	}
	if page, err := s.Unread(t.Context(), "kim", 0, 10); err != nil || page.Total != 1 || page.Seq != 1 {
		t.Fatalf("after the flushes: %+v %v", page, err)
	}
}

// TestDigestFlushPreferences: a flush follows the receiver's preferences as they are at
// the flush, and closes the digest even when nothing is stored.
func TestDigestFlushPreferences(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	mustApply(t, s, create(digestedNote(t, "lee", `{"message":"a"}`, ""), digestedNote(t, "lee", `{"message":"b"}`, "")))
	mustApply(t, s, create(digestedNote(t, "mo", `{"message":"a"}`, "")))
	if err := storetest.SetPreferences(t, s, "lee", persistence.Preferences{Channels: map[herald.Channel]bool{herald.ChannelEmail: false}}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SetPreferences(t, s, "mo", persistence.Preferences{Types: map[string]map[herald.Channel]bool{"t": {herald.ChannelRealtime: false}}}); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, s,
		persistence.Op{Kind: persistence.OpFlushDigest, Digest: persistence.DigestKey{UserID: "lee", Type: "t", Rule: "r"}},
		persistence.Op{Kind: persistence.OpFlushDigest, Digest: persistence.DigestKey{UserID: "mo", Type: "t", Rule: "r"}})
	if len(res[0].Notifications) != 1 || res[0].Notifications[0].ID == "" || res[1].Suppressed == nil || !res[1].Suppressed[0] {
		t.Fatalf("flushes: %+v", res)
	}
	if ds, err := s.ClaimDeliveries(t.Context(), t0.Add(time.Hour), time.Minute, 10); err != nil || len(ds) != 0 {
		t.Fatalf("deliveries of opted-out channels: %+v %v", ds, err)
	}
	if ks, err := s.DueDigests(t.Context(), t0.Add(time.Hour), 10); err != nil || len(ks) != 0 {
		t.Fatalf("due after the flushes: %v %v", ks, err)
	}
}

// TestDigestUnstorable: text PostgreSQL cannot store fails alone.
func TestDigestUnstorable(t *testing.T) {
	s := open(t, 0)
	bad := digestedNote(t, "nia", `{}`, "")
	bad.Digest.Rule = "r\x00"
	res := mustApply(t, s, create(bad), create(digestedNote(t, "nia", `{}`, "")),
		persistence.Op{Kind: persistence.OpFlushDigest, Digest: persistence.DigestKey{UserID: "nia\xff", Type: "t", Rule: "r"}})
	if res[0].Err == nil || res[1].Err != nil || res[1].Digested == nil || res[2].Err != nil || len(res[2].Notifications) != 0 {
		t.Fatalf("results: %+v", res)
	}
}
