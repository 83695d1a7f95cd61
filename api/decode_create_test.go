package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// createSeeds are create bodies for the differential tests: every field, escapes,
// unicode, duplicates, wrong types, nulls, nested payloads, trailing data, numbers and
// spaces, valid and not.
var createSeeds = []string{
	`{"receiverId":"u","type":"t"}`,
	`{"receiverId":"user-1","senderId":"svc","type":"a.b","object":"o","payload":{"m":"hi","n":[1,2.5,-3e+7,{"x":null}]},"channels":["realtime","email","webhook"],"idempotencyKey":"k-1"}`,
	" \t\r\n{ \"receiverId\" : \"u\" , \"type\" :\"t\", \"payload\" : { \"a\" : [ 1 , 2 ] } \n} \r\n\t",
	`{}`, `{ }`, ``, ` `, `[]`, `"x"`, `null`, `{`, `}`, `{"receiverId"}`, `{"receiverId":}`, `{"receiverId":"u",}`,
	`{"receiverId":"u"} x`, `{"receiverId":"u"}{}`, `{"receiverId":1} x`, `{"receiverId":"u"}]`,
	// Escapes and unicode.
	`{"receiverId":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","type":"\u0074"}`,
	`{"receiverId":"caf` + "\u00e9 \U0001F600" + `","type":"日本"}`,
	`{"receiverId":"a\u0000b","type":"t"}`,
	`{"receiverId":"a\udc00"}`, `{"receiverId":"a\ud800"}`, `{"receiverId":"a\ud800\u0041"}`, `{"receiverId":"a\ud800\ud800"}`,
	`{"receiverId":"a\ud83d\ude00\ud83d"}`, `{"receiverId":"\uD83D\uDE00"}`, `{"receiverId":"\uFFFD"}`,
	"{\"receiverId\":\"a\xffb\"}", "{\"receiverId\":\"\xed\xa0\x80\"}", "{\"receiverId\":\"\xc0\xaf\"}",
	"{\"receiverId\":\"a\x01\"}", "{\"receiverId\":\"a\x7f\"}", `{"receiverId":"\x"}`, `{"receiverId":"\u12"}`, `{"receiverId":"\u12G4"}`,
	"{\"payload\":{\"a\":\"\xff\\udc00\"}}", "{\"x\xff\":1}", "{\"\\u00ff\":1}",
	// Names: escaped, folded, unknown, duplicated.
	`{"receiver\u0049d":"a"}`, `{"receiverId":"a","receiver\u0049d":"b"}`, `{"\u0072eceiverId":"a"}`,
	`{"RECEIVERID":"a"}`, `{"receiverid":"a"}`, `{"ſenderId":"x"}`, `{"\u017fenderId":"x"}`, `{"idempotencyKey":"a","idempotency` + "\u212a" + `ey":"b"}`,
	`{"receiverId":"a","receiverId":"b"}`, `{"receiverId":null,"receiverId":"b"}`, `{"payload":{},"payload":{}}`, `{"channels":[],"channels":null}`,
	`{"extra":1,"extra":{"receiverId":2},"Extra":[true]}`, `{"ByService":true,"Escalate":{},"Digest":1,"-":2}`,
	`{"receiverIdX":"a","receiverI":"b","":"c"}`,
	// Nulls and wrong types.
	`{"receiverId":null,"senderId":null,"type":null,"object":null,"idempotencyKey":null,"payload":null,"channels":null}`,
	`{"receiverId":1}`, `{"receiverId":true}`, `{"receiverId":{}}`, `{"receiverId":[]}`, `{"receiverId":nul}`, `{"receiverId":nullx}`,
	`{"channels":"realtime"}`, `{"channels":{}}`, `{"channels":[1]}`, `{"channels":[["realtime"]]}`, `{"channels":[null,"email",null]}`,
	`{"channels":[]}`, `{"channels":[ ]}`, `{"channels":["realtime",]}`, `{"channels":["re\u0061ltime"]}`, `{"channels":["a","b","c","d","e","f","g"]}`,
	"{\"channels\":[\"\xff\"]}", `{"channels":["\udc00"]}`,
	// Payloads of every kind, and numbers.
	`{"payload":"x"}`, `{"payload":12}`, `{"payload":true}`, `{"payload":false}`, `{"payload":[]}`, `{"payload":[{}]}`, `{"payload":{"a":{"b":{"c":[[[]]]}}}}`,
	`{"payload":-0}`, `{"payload":0.5e-3}`, `{"payload":1E+400}`, `{"payload":123456789012345678901234567890}`,
	`{"payload":01}`, `{"payload":-}`, `{"payload":1.}`, `{"payload":.5}`, `{"payload":+1}`, `{"payload":1e}`, `{"payload":1e+}`, `{"payload":0x1}`,
	`{"payload":tru}`, `{"payload":True}`, `{"payload":{"a":1,}}`, `{"payload":[1,]}`, `{"payload":{"a" 1}}`, `{"payload":{1:2}}`, `{"payload":[}`, `{"payload":{]}`,
	`{"payload":{"a":1} , "type":"t"}`, `{"payload":{"<&>":"\u2028"}}`,
	`{"extra":123456789012345678901234567890e99999}`,
}

// FuzzDecodeCreate compares the single create's reader with decodeJSON on arbitrary
// bodies: the same value or the same error, success always without the slow path, and
// nothing decoded pointing into the body.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range createSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		compareCreate(t, body)
	})
}

// compareCreate checks readCreate and decodeCreate against decodeJSON for body.
func compareCreate(t *testing.T, body []byte) {
	t.Helper()
	var want herald.NewNotification
	wantErr := decodeJSON(body, &want)

	buf := append([]byte(nil), body...)
	var fast herald.NewNotification
	ok := readCreate(buf, &fast)
	if ok != (wantErr == nil) {
		t.Fatalf("%q: one-pass reader accepted it: %v; decodeJSON: %v", body, ok, wantErr)
	}
	if ok {
		for i := range buf {
			buf[i] = 'x' // what was decoded must not point into the body
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: one-pass reader decoded\n%#v\ndecodeJSON decoded\n%#v", body, fast, want)
		}
	}

	var got herald.NewNotification
	err := decodeCreate(body, &got)
	if !reflect.DeepEqual(err, wantErr) {
		t.Fatalf("%q: decodeCreate error %#v, decodeJSON error %#v", body, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decodeCreate decoded\n%#v\ndecodeJSON decoded\n%#v", body, got, want)
	}
}

// TestDecodeCreateKnowsEveryField: the one-pass reader knows the JSON fields of
// herald.NewNotification, as checkStrict sees them; a field added there must be added
// to it.
func TestDecodeCreateKnowsEveryField(t *testing.T) {
	var want, got []string
	for _, f := range shapeOf(typeOfNew).fields {
		want = append(want, f.name)
	}
	for _, f := range createFieldNames {
		got = append(got, string(f))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("readCreate knows the fields %q, herald.NewNotification has %q", got, want)
	}
}

// TestDecodeCreateSeeds runs the differential check on every seed, and on each
// seed cut short at every byte.
func TestDecodeCreateSeeds(t *testing.T) {
	for _, s := range createSeeds {
		for i := 0; i <= len(s); i++ {
			compareCreate(t, []byte(s[:i]))
		}
	}
}

// TestDecodeCreateCases: what the one-pass reader must decode exactly as encoding/json
// does, and what it must leave to decodeJSON, which refuses it.
func TestDecodeCreateCases(t *testing.T) {
	cases := []struct {
		body string
		want herald.NewNotification
	}{
		// A null payload is the raw text null (json.RawMessage keeps it); an absent one is nil.
		{`{"payload":null}`, herald.NewNotification{Payload: json.RawMessage("null")}},
		{`{"receiverId":"u"}`, herald.NewNotification{ReceiverID: "u"}},
		// The payload's raw text, inner spaces and all, not the spaces around it.
		{`{"payload": { "a" : [1, 2] } }`, herald.NewNotification{Payload: json.RawMessage(`{ "a" : [1, 2] }`)}},
		{`{"payload":"s"}`, herald.NewNotification{Payload: json.RawMessage(`"s"`)}},
		// Channels: null is nil, [] is empty but not nil, a null element is "".
		{`{"channels":null}`, herald.NewNotification{}},
		{`{"channels":[]}`, herald.NewNotification{Channels: []herald.Channel{}}},
		{`{"channels":[null,"email"]}`, herald.NewNotification{Channels: []herald.Channel{"", "email"}}},
		{`{"channels":["a","b","c","d","e","f"]}`, herald.NewNotification{Channels: []herald.Channel{"a", "b", "c", "d", "e", "f"}}},
		{`{"channels":["re\u0061ltime"]}`, herald.NewNotification{Channels: []herald.Channel{"realtime"}}},
		// A null string is no value.
		{`{"receiverId":null,"type":"t"}`, herald.NewNotification{Type: "t"}},
		// Escapes, surrogate pairs included; an escaped name is the name it spells.
		{`{"receiverId":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t\u0000"}`, herald.NewNotification{ReceiverID: "é😀\"\\/\b\f\n\r\t\x00"}},
		{`{"receiver\u0049d":"a"}`, herald.NewNotification{ReceiverID: "a"}},
		// Names that fold to no field are other names.
		{`{"receiverIdX":"a","":"b","日本":1,"receıverId":"c"}`, herald.NewNotification{}},
	}
	for _, c := range cases {
		var n herald.NewNotification
		if !readCreate([]byte(c.body), &n) {
			t.Errorf("%q: left to decodeJSON, want it read in one pass", c.body)
			continue
		}
		if !reflect.DeepEqual(n, c.want) {
			t.Errorf("%q: decoded %#v, want %#v", c.body, n, c.want)
		}
		compareCreate(t, []byte(c.body))
	}

	refused := []struct{ body, code, field, message string }{
		{`{"ſenderId":"x"}`, "bad_request", "ſenderId", `spelled "senderId"`},
		{`{"\u017fenderId":"x"}`, "bad_request", "ſenderId", `spelled "senderId"`},
		{`{"idempotency` + "\u212a" + `ey":"x"}`, "bad_request", "idempotency\u212aey", `spelled "idempotencyKey"`},
		{`{"receiverId":null,"receiverId":"b"}`, "bad_request", "receiverId", "sent twice"},
		{`{"receiverId":"a","receiver\u0049d":"b"}`, "bad_request", "receiverId", "sent twice"},
		{`{"receiverId":"a\ud800\ud800"}`, "validation_failed", "receiverId", "valid UTF-8"},
		{`{"channels":["\udc00"]}`, "validation_failed", "channels[0]", "valid UTF-8"},
		{`{"channels":[1]}`, "bad_request", "channels", "channels must be an array of channel names"},
		{`{"receiverId":1} x`, "validation_failed", "receiverId", "receiverId must be a JSON string"},
		{`{"receiverId":"u"} x`, "bad_request", "", "unexpected data after the object"},
		{`{"payload":01}`, "bad_request", "", "malformed JSON: invalid character '1' after object key:value pair at byte 13"},
	}
	for _, c := range refused {
		var n herald.NewNotification
		if readCreate([]byte(c.body), &n) {
			t.Errorf("%q: read in one pass, want it refused", c.body)
			continue
		}
		err := decodeCreate([]byte(c.body), &n)
		e := herald.AsError(err)
		if err == nil || string(e.Code) != c.code || e.Field != c.field || !strings.Contains(e.Message, c.message) {
			t.Errorf("%q: got %v (code %q, field %q), want code %q, field %q, message containing %q",
				c.body, err, e.Code, e.Field, c.code, c.field, c.message)
		}
		compareCreate(t, []byte(c.body))
	}
}

// TestDecodeCreateNesting: encoding/json refuses a body nested deeper than 10000
// levels; the one-pass reader takes what it takes, deep payloads included.
func TestDecodeCreateNesting(t *testing.T) {
	for _, depth := range []int{2, 300, 9999, 10000} { // the body's object is one level
		k := depth - 1 // levels of the payload
		payloads := []string{
			strings.Repeat("[", k) + strings.Repeat("]", k),
			strings.Repeat(`{"a":`, k-1) + "{}" + strings.Repeat("}", k-1),
		}
		for _, payload := range payloads {
			body := []byte(`{"receiverId":"u","payload":` + payload + `}`)
			var n herald.NewNotification
			if !readCreate(body, &n) {
				t.Errorf("depth %d (%.10s): left to decodeJSON", depth, payload)
			}
			compareCreate(t, body)
			deeper := []byte(`{"receiverId":"u","payload":[` + payload + `]}`)
			compareCreate(t, deeper)
		}
	}
}

// TestDecodeCreateAllocations: a typical create body costs one allocation for its
// strings, one for its payload and one for its channels (the contract's channel names
// none), and the value decoded into does not escape.
func TestDecodeCreateAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	cases := []struct {
		body   []byte
		allocs float64
	}{
		{benchCreateBody, 3}, // strings, payload, channels
		{[]byte(`{"receiverId":"user-1","senderId":"svc","type":"project.role.application.created","payload":{"message":"Ada applied"}}`), 2},
		{[]byte(`{"receiverId":"caf\u00e9","type":"t"}`), 1},
	}
	for _, c := range cases {
		allocs := testing.AllocsPerRun(100, func() {
			var n herald.NewNotification // the handler's, which stays on its stack
			if err := decodeCreate(c.body, &n); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > c.allocs {
			t.Errorf("%s: %v allocations, want at most %v", c.body, allocs, c.allocs)
		}
	}
}

// BenchmarkDecodeCreateOnePass is the single create's reader on the body of
// BenchmarkStrictCreate and BenchmarkDecodeCreate (which, with checkStrict, is
// decodeJSON's cost).
func BenchmarkDecodeCreateOnePass(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var n herald.NewNotification
		if err := decodeCreate(benchCreateBody, &n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCreateJSON is decodeJSON on the same body: what the one-pass reader
// replaces.
func BenchmarkDecodeCreateJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var n herald.NewNotification
		if err := decodeJSON(benchCreateBody, &n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCreateLargePayload: both readers on a body with a 12 KiB payload.
func BenchmarkDecodeCreateLargePayload(b *testing.B) {
	var p bytes.Buffer
	p.WriteString(`{"receiverId":"user-1","type":"t","payload":{"items":[`)
	for i := 0; p.Len() < 12<<10; i++ {
		if i > 0 {
			p.WriteByte(',')
		}
		fmt.Fprintf(&p, `{"id":%d,"name":"item number %d","tags":["a","b"],"price":%d.5,"ok":true}`, i, i, i)
	}
	p.WriteString(`]}}`)
	body := p.Bytes()
	for _, r := range []struct {
		name   string
		decode func([]byte, *herald.NewNotification) error
	}{
		{"onepass", decodeCreate},
		{"json", func(b []byte, n *herald.NewNotification) error { return decodeJSON(b, n) }},
	} {
		b.Run(r.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var n herald.NewNotification
				if err := r.decode(body, &n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
