package herald

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// reflected is Notification without its MarshalJSON: what encoding/json makes of it.
type reflected Notification

func samples() []Notification {
	read := time.Date(2026, 11, 27, 10, 0, 1, 120000000, time.UTC)
	return []Notification{
		{ID: "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b", Object: "project.application.received", ReceiverID: "user-123",
			SenderID: "user-9", Type: "project.role.application.created", Payload: json.RawMessage(`{"message":"Ada applied"}`),
			Channels: []Channel{ChannelRealtime, ChannelEmail}, CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC), Seq: 42},
		{ID: "x", ReceiverID: "<script>&\"quote\"\\ \n\t\r\b\f\x01\x1f é 日本 \u2028\u2029 \xff bad", Payload: json.RawMessage(" {\n \"a\" : [1, 2, \"<b>&</b> \u2028\"] ,\"b\":{}} "),
			Channels: []Channel{}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), ReadAt: &read, Seq: -1},
		{},
	}
}

func TestNotificationJSONMatchesEncodingJSON(t *testing.T) {
	for i, n := range samples() {
		want, err := json.Marshal(reflected(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sample %d:\n got %s\nwant %s", i, got, want)
		}
	}
	ra := ReadAll{ReadAt: time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC), Updated: 3}
	want, _ := json.Marshal(ra)
	if got := ra.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("read-all: got %s want %s", got, want)
	}
}

func FuzzNotificationJSON(f *testing.F) {
	for _, n := range samples() {
		f.Add(n.ID, n.ReceiverID, string(n.Payload), n.Seq)
	}
	f.Fuzz(func(t *testing.T, id, receiver, payload string, seq int64) {
		n := Notification{ID: id, Object: receiver + id, ReceiverID: receiver, SenderID: id, Type: receiver,
			Channels: []Channel{Channel(id)}, CreatedAt: time.Unix(seq%1e10, seq%1e9).UTC(), Seq: seq}
		if json.Valid([]byte(payload)) {
			n.Payload = json.RawMessage(payload)
		}
		want, err := json.Marshal(reflected(n))
		if err != nil {
			return
		}
		got, err := json.Marshal(n)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %s (%v)\nwant %s", got, err, want)
		}
	})
}

func BenchmarkNotificationJSON(b *testing.B) {
	n := samples()[0]
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(reflected(n))
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = n.AppendJSON(buf[:0])
		}
	})
}

// TestEntryJSON: an entry encodes as encoding/json would encode its fields in the
// contract's order, event first and data last, whether it is sent live, replayed, or
// listed by the events feed.
func TestEntryJSON(t *testing.T) {
	type reflectedEntry struct {
		Event  Event `json:"event"`
		Seq    int64 `json:"seq"`
		Unread int64 `json:"unread"`
		Data   any   `json:"data"`
	}
	ns := samples()
	ra := &ReadAll{ReadAt: time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC), Updated: 3}
	for i, e := range []Entry{
		{Seq: 1, Event: EventCreated, Unread: 1, Notification: &ns[0]},
		{Seq: 2, Event: EventRead, Unread: 0, Notification: &ns[1]},
		{Seq: 3, Event: EventReadAll, Unread: 0, ReadAll: ra},
		{Seq: 4, Event: EventCreated, Unread: 9}, // no data: null
	} {
		var data any = e.Notification
		if e.Event == EventReadAll {
			data = e.ReadAll
		}
		if !e.HasData() {
			data = nil
		}
		want, err := json.Marshal(reflectedEntry{e.Event, e.Seq, e.Unread, data})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(e)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("entry %d:\n got %s (%v)\nwant %s", i, got, err, want)
		}
		if got := e.AppendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("entry %d: AppendJSON %s", i, got)
		}
	}
}
