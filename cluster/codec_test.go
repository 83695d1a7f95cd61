package cluster

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// TestMessageRoundTrip: a user's entries cross the bus unchanged, each kind of entry,
// with the commit time; a damaged message is refused, not half-read.
func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	read := at.Add(time.Second)
	note := herald.Notification{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Object: "project.created", ReceiverID: "ada ✓",
		SenderID: "system", Type: "project.created", Payload: json.RawMessage(`{"name":"Atlas","big":"` + strings.Repeat("x", 3000) + `"}`),
		Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: at, Seq: 1}
	readNote := note
	readNote.ReadAt = &read
	entries := []herald.Entry{
		{UserID: "ada ✓", Seq: 1, Event: herald.EventCreated, Unread: 1, At: at, Notification: &note},
		{UserID: "ada ✓", Seq: 2, Event: herald.EventRead, Unread: 0, At: read, Notification: &readNote},
		{UserID: "ada ✓", Seq: 3, Event: herald.EventReadAll, Unread: 0, At: read, ReadAll: &herald.ReadAll{ReadAt: read, Updated: 0}},
	}
	other := time.FixedZone("UTC+2", 7200) // times keep their text, offset included
	odd := note
	odd.CreatedAt, odd.Channels, odd.Payload = at.In(other), nil, json.RawMessage(`{}`)
	entries = append(entries, herald.Entry{UserID: "ada ✓", Seq: 4, Event: herald.EventCreated, Unread: 1, At: at, Notification: &odd})
	ptrs := []*herald.Entry{&entries[0], &entries[1], &entries[2], &entries[3]}
	msg := appendMessage(nil, "ada ✓", at, ptrs)
	got, gotAt, err := decodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !gotAt.Equal(at) {
		t.Errorf("commit time %v, want %v", gotAt, at)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries, want %d", len(got), len(entries))
	}
	for i := range entries {
		// The frames are what sockets see: they must be the same bytes.
		if g, w := got[i].AppendJSON(nil), entries[i].AppendJSON(nil); string(g) != string(w) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, g, w)
		}
		if got[i].UserID != entries[i].UserID || !got[i].At.Equal(entries[i].At) {
			t.Errorf("entry %d: user %q at %v", i, got[i].UserID, got[i].At)
		}
	}
	if !reflect.DeepEqual(got[2].ReadAll.Updated, entries[2].ReadAll.Updated) {
		t.Errorf("read-all %+v", got[2].ReadAll)
	}
	for _, bad := range [][]byte{nil, {1}, {2}, msg[:len(msg)-1], append(append([]byte{}, msg...), 0)} {
		if _, _, err := decodeMessage(bad); err == nil {
			t.Errorf("a damaged message (%d bytes) was accepted", len(bad))
		}
	}
}

func TestSubject(t *testing.T) {
	a, b := subject("ada"), subject("bob")
	if a == b || !strings.HasPrefix(a, subjectPrefix) || len(a) != len(subjectPrefix)+32 || subject("ada") != a {
		t.Fatalf("subjects %q %q", a, b)
	}
	if strings.ContainsAny(subject("a b.c*>"), " *>") || strings.Count(subject("a.b"), ".") != 2 {
		t.Fatalf("subject of an id with NATS's special characters: %q", subject("a b.c*>"))
	}
}

func TestUsersRoundTrip(t *testing.T) {
	users := []string{"ada", "", "b\nc ✓"}
	got, err := decodeUsers(appendUsers(nil, users))
	if err != nil || !reflect.DeepEqual(got, users) {
		t.Fatalf("decodeUsers = %q, %v; want %q", got, err, users)
	}
	if _, err := decodeUsers([]byte{5, 'a'}); err == nil {
		t.Fatal("a truncated list was accepted")
	}
}

// TestDamagedMessages: every truncation of a message, and every single flipped byte, is
// refused or read without a panic.
func TestDamagedMessages(t *testing.T) {
	at := time.Now()
	n := herald.Notification{ID: "id", ReceiverID: "u", Type: "t", Payload: json.RawMessage(`{"a":1}`),
		Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: at, Seq: 1}
	e := herald.Entry{UserID: "u", Seq: 1, Event: herald.EventCreated, Unread: 1, At: at, Notification: &n}
	msg := appendMessage(nil, "u", at, []*herald.Entry{&e, &e})
	for i := range msg {
		if _, _, err := decodeMessage(msg[:i]); err == nil {
			t.Errorf("a message cut to %d of %d bytes was accepted", i, len(msg))
		}
		flipped := append([]byte{}, msg...)
		flipped[i] ^= 0xff
		_, _, _ = decodeMessage(flipped)
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	at := time.Now().UTC()
	n := herald.Notification{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Object: "project.created", ReceiverID: "user-42",
		SenderID: "system", Type: "project.created", Payload: json.RawMessage(`{"name":"Atlas","by":"Ada Lovelace","n":12}`),
		Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: at, Seq: 7}
	e := herald.Entry{UserID: "user-42", Seq: 7, Event: herald.EventCreated, Unread: 3, At: at, Notification: &n}
	msg := appendMessage(nil, "user-42", at, []*herald.Entry{&e})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}
