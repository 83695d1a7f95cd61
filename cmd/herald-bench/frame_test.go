package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestDecodeFrame(t *testing.T) {
	id := uuid.MustParse("0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b")
	tests := []struct {
		name string
		in   string
		want frame
	}{{
		name: "snapshot: its array is skipped",
		in:   `{"event":"unread-notifications","data":[{"id":"` + id.String() + `","payload":{"t":1,"m":2}}],"seq":42,"unread":1}`,
		want: frame{Event: eventSnapshot, Seq: 42},
	}, {
		name: "new notification",
		in: `{"event":"new-notification","seq":7,"unread":3,"data":{"id":"` + id.String() +
			`","object":"o","receiverId":"u","senderId":"system","type":"bench.deliver","payload":{"t":1700000000000000000,"m":99},"channels":["realtime"],"createdAt":"2026-11-27T10:00:00Z","readAt":null,"seq":7}}`,
		want: frame{Event: eventNew, Seq: 7, Data: frameData{ID: id, Payload: benchPayload{T: 1700000000000000000, M: 99}}},
	}, {
		name: "a payload rendered by a rule's templates: integers in strings",
		in:   `{"event":"new-notification","seq":3,"data":{"id":"` + id.String() + `","payload":{"t":"1700000000000000000","m":"-12"}}}`,
		want: frame{Event: eventNew, Seq: 3, Data: frameData{ID: id, Payload: benchPayload{T: 1700000000000000000, M: -12}}},
	}, {
		name: "someone else's payload",
		in:   `{"event":"new-notification","seq":1,"data":{"id":"` + id.String() + `","payload":{"message":"hi"}}}`,
		want: frame{Event: eventNew, Seq: 1, Data: frameData{ID: id}},
	}, {
		name: "all read",
		in:   `{"event":"all-notifications-read","seq":9,"unread":0,"data":{"readAt":"2026-11-27T10:00:00Z","updated":3}}`,
		want: frame{Event: eventAllRead, Seq: 9},
	}, {
		name: "pong",
		in:   `{"event":"pong","data":{}}`,
		want: frame{Event: eventPong},
	}, {
		name: "error",
		in:   `{"event":"error","data":{"code":"bad_frame","message":"not JSON"}}`,
		want: frame{Event: eventError},
	}, {
		name: "an event the bench does not know",
		in:   `{"event":"presence","data":null}`,
		want: frame{Event: eventOther},
	}}
	var f frame
	f.Seq = 1234 // decodeFrame must reset what an earlier frame left
	f.Data.Payload.M = 5
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := decodeFrame([]byte(tt.in), &f); err != nil {
				t.Fatal(err)
			}
			if f != tt.want {
				t.Fatalf("got %+v, want %+v", f, tt.want)
			}
		})
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	for _, in := range []string{
		``, `not json`, `[]`, `{"event":}`, `{"event":"new-notification"`, `{"event":"x"} {}`,
		`{"seq":"7"}`, `{"seq":1.5}`, `{"seq":99999999999999999999}`, `{"seq":01}`, `{"seq":-}`,
		`{"data":{"id":"not-a-uuid"}}`, `{"data":{"payload":{"t":"soon"}}}`,
		`{"data":{"payload":{"m":""}}}`, `{"data":{"payload":{"m":" 1"}}}`, `{"data":{"payload":{"m":"+1"}}}`,
		`{"data":{"payload":{"m":"01"}}}`, `{"data":{"payload":{"m":"1.5"}}}`, `{"data":{"payload":{"t":"99999999999999999999"}}}`,
		`{"a":tru}`, `{"a":nul}`, "{\"a\":\"\x01\"}", `{"a":"\q"}`, `{"a":"\u12"}`, `{"a":"open}`,
		`{"a":[1,]}`, `{"a":1,}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":1e}`, `{"a":.5}`,
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	} {
		var f frame
		if err := decodeFrame([]byte(in), &f); err == nil {
			t.Errorf("decodeFrame(%q) succeeded: %+v", in, f)
		}
	}
}

func TestDecodeFrameDoesNotAllocate(t *testing.T) {
	in := []byte(`{"event":"new-notification","seq":7,"unread":3,"data":{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b","payload":{"t":17,"m":99},"channels":["realtime"],"readAt":null}}`)
	quoted := []byte(`{"event":"new-notification","seq":7,"unread":3,"data":{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b","payload":{"t":"17","m":"99"}}}`)
	var f frame
	for _, b := range [][]byte{in, quoted} {
		if allocs := testing.AllocsPerRun(100, func() { _ = decodeFrame(b, &f) }); allocs != 0 {
			t.Fatalf("decodeFrame allocates %v times a frame", allocs)
		}
	}
}

// refFrame is a frame as encoding/json writes it, with fields the bench skips.
type refFrame struct {
	Event  string  `json:"event"`
	Seq    int64   `json:"seq,omitempty"`
	Unread int64   `json:"unread"`
	Data   any     `json:"data"`
	Extra  any     `json:"extra,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
}

// TestDecodeFrameAgreesWithEncodingJSON decodes random frames written by encoding/json.
func TestDecodeFrameAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	events := []string{"unread-notifications", "new-notification", "notification-read", "all-notifications-read", "pong", "error", "what-is-this"}
	var junk func(depth int) any
	junk = func(depth int) any {
		switch n := rng.IntN(7); {
		case n == 0 && depth < 4:
			return []any{junk(depth + 1), junk(depth + 1)}
		case n == 1 && depth < 4:
			return map[string]any{"k\"ey": junk(depth + 1), "é": junk(depth + 1)}
		case n == 2:
			return "str \"quoted\" \\ \n <tag> & \u2028 ünï"
		case n == 3:
			return rng.NormFloat64() * 1e6
		case n == 4:
			return rng.IntN(2) == 0
		case n == 5:
			return nil
		}
		return -rng.Int64()
	}
	for i := range 2000 {
		ev := events[rng.IntN(len(events))]
		want := frame{Event: eventOf([]byte(ev)), Seq: rng.Int64N(1 << 40)}
		ref := refFrame{Event: ev, Seq: want.Seq, Unread: rng.Int64N(100), Extra: junk(0)}
		switch ev {
		case "unread-notifications":
			ref.Data = []any{map[string]any{"id": uuid.NewString(), "payload": map[string]any{"t": 1}}}
		case "new-notification", "notification-read":
			want.Data = frameData{ID: uuid.New(), Payload: benchPayload{T: rng.Int64(), M: rng.Int64N(1 << 30)}}
			ref.Data = map[string]any{
				"object": "o", "id": want.Data.ID.String(), "channels": []string{"realtime"}, "readAt": nil,
				"payload": map[string]any{"m": want.Data.Payload.M, "other": junk(0), "t": want.Data.Payload.T},
				"extra":   junk(0),
			}
		default:
			ref.Data = junk(0)
		}
		if rng.IntN(3) == 0 {
			ref.Ratio = rng.Float64()
		}
		b, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 { // encoding/json indents too, for all the bench knows
			var ind bytes.Buffer
			if err := json.Indent(&ind, b, " ", "\t"); err != nil {
				t.Fatal(err)
			}
			b = ind.Bytes()
		}
		var got frame
		if err := decodeFrame(b, &got); err != nil {
			t.Fatalf("frame %d: %v\n%s", i, err, b)
		}
		if got != want {
			t.Fatalf("frame %d: got %+v, want %+v\n%s", i, got, want, b)
		}
	}
}

// FuzzDecodeFrame: the scanner never panics and accepts only valid JSON.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"event":"new-notification","seq":7,"data":{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b","payload":{"t":1,"m":2}}}`,
		`{"event":"unread-notifications","seq":0,"unread":0,"data":[]}`,
		`{"event":"pong","data":{}}`, `{"a":[1,{"b":"\u00e9"},null,true,-0.5e+3]}`, `{`, `"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if decodeFrame(b, &fr) == nil && !json.Valid(b) {
			t.Fatalf("decodeFrame accepted invalid JSON %q", b)
		}
	})
}

func TestLogEntryEvents(t *testing.T) {
	for e, want := range map[eventKind]bool{
		eventNew: true, eventRead: true, eventAllRead: true,
		eventSnapshot: false, eventPong: false, eventError: false, eventOther: false,
	} {
		if e.logEntry() != want {
			t.Errorf("event %d: logEntry = %v, want %v", e, !want, want)
		}
	}
}

func TestReadAllReusesItsBuffer(t *testing.T) {
	buf := make([]byte, 0, 64)
	msg := strings.Repeat("x", 40)
	got, err := readAll(strings.NewReader(msg), buf)
	if err != nil || string(got) != msg {
		t.Fatalf("readAll = %q, %v", got, err)
	}
	if &got[:1][0] != &buf[:1][0] {
		t.Error("a message that fits did not reuse the buffer")
	}
	long := strings.Repeat("y", 1000)
	got, err = readAll(strings.NewReader(long), got[:0])
	if err != nil || string(got) != long {
		t.Fatalf("readAll of a long message = %d bytes, %v", len(got), err)
	}
	r := strings.NewReader(long)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(long)
		got, _ = readAll(r, got[:0])
	})
	if allocs != 0 {
		t.Errorf("readAll into a grown buffer allocates %v times", allocs)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	in := []byte(`{"event":"new-notification","seq":7,"unread":3,"data":{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b","object":"bench.deliver","receiverId":"bench-0a1b2c3d-17","senderId":"system","type":"bench.deliver","payload":{"t":1700000000000000000,"m":99},"channels":["realtime"],"createdAt":"2026-11-27T10:00:00.123456Z","readAt":null,"seq":7}}`)
	var f frame
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := decodeFrame(in, &f); err != nil {
			b.Fatal(err)
		}
	}
}
