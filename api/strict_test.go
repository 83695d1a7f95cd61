package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// TestStrictBodies: a body encoding/json would read differently from a strict reader (a
// duplicate field, a name that only folds to a field, text it would replace) is refused,
// naming the field as sent; what a strict reader agrees on passes.
func TestStrictBodies(t *testing.T) {
	cases := []struct {
		body, code, field, message string
	}{
		// Accepted: unknown fields are ignored, opaque values are not looked into.
		{`{"receiverId":"u","type":"t","extra":1,"extra":2}`, "", "", ""},
		{`{"receiverId":"u","payload":{"a":1,"a":2,"RECEIVERID":"x","s":"\udc00"}}`, "", "", ""},
		{`{"receiverId":"caf\u00e9 \ud83d\ude00","type":"t"}`, "", "", ""},
		{`{"receiverId":"u","receiverIds":null}`, "", "", ""},

		{`{"receiverId":"alice","type":"t","receiverId":"bob"}`, "bad_request", "receiverId", `field "receiverId" is sent twice`},
		{`{"receiverId":"alice","RECEIVERID":"bob"}`, "bad_request", "RECEIVERID", `spelled "receiverId"`},
		{`{"ſenderId":"x"}`, "bad_request", "ſenderId", `spelled "senderId"`},
		{`{"receiverId":"a","receiver\u0049d":"x"}`, "bad_request", "receiverId", "sent twice"},
		{`{"items":[{"receiverId":"a"},{"receiverId":"a","Type":"t"}]}`, "bad_request", "items[1].Type", `spelled "type"`},
		{`{"items":[{"receiverId":"a","type":"t","type":"u"}]}`, "bad_request", "items[0].type", "sent twice"},

		{"{\"receiverId\":\"a\xffb\"}", "validation_failed", "receiverId", "receiverId must be valid UTF-8"},
		{`{"receiverId":"a\udc00"}`, "validation_failed", "receiverId", "valid UTF-8"},
		{`{"receiverId":"a\ud800"}`, "validation_failed", "receiverId", "valid UTF-8"},
		{`{"receiverId":"a\ud800\u0041"}`, "validation_failed", "receiverId", "valid UTF-8"},
		{"{\"receiverIds\":[\"a\",\"b\xc0\"]}", "validation_failed", "receiverIds[1]", "valid UTF-8"},
		{"{\"items\":[{},{\"idempotencyKey\":\"k\xed\xa0\x80\"}]}", "validation_failed", "items[1].idempotencyKey", "valid UTF-8"},
		{"{\"channels\":[\"realtime\",\"\xff\"]}", "validation_failed", "channels[1]", "valid UTF-8"},
	}
	for _, c := range cases {
		var b batchBody
		err := decodeJSON([]byte(c.body), &b)
		if c.code == "" {
			if err != nil {
				t.Errorf("%q: %v, want no error", c.body, err)
			}
			continue
		}
		e := herald.AsError(err)
		if err == nil || string(e.Code) != c.code || e.Field != c.field || !strings.Contains(e.Message, c.message) {
			t.Errorf("%q: got %v (code %q, field %q), want code %q, field %q, message containing %q",
				c.body, err, e.Code, e.Field, c.code, c.field, c.message)
		}
	}
}

// TestStrictMaps: the keys of a map field are the caller's, compared exactly, but each
// may be sent once.
func TestStrictMaps(t *testing.T) {
	var p struct {
		Channels map[string]bool            `json:"channels"`
		Types    map[string]map[string]bool `json:"types"`
	}
	if err := decodeJSON([]byte(`{"channels":{"email":false,"Email":true}}`), &p); err != nil {
		t.Fatalf("keys that differ in case are distinct keys: %v", err)
	}
	err := decodeJSON([]byte(`{"types":{"t":{"email":false,"email":true}}}`), &p)
	if e := herald.AsError(err); err == nil || e.Code != herald.CodeBadRequest || e.Field != "types.t.email" {
		t.Fatalf("duplicate map key: %v (field %q), want bad_request naming types.t.email", err, e.Field)
	}
}

// BenchmarkStrictCreate is the strict walk of a typical create body: no allocation.
func BenchmarkStrictCreate(b *testing.B) {
	body := benchCreateBody
	var n herald.NewNotification
	if err := decodeJSON(body, &n); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := checkStrict(body, typeOfNew); err != nil {
			b.Fatal(err)
		}
	}
}

var benchCreateBody = []byte(`{"receiverId":"user-123","type":"project.role.application.created","object":"project.application.received",` +
	`"payload":{"message":"Ada applied for Backend in Atlas","projectId":"p-1","nested":{"a":[1,2,{"b":"c"}]}},"channels":["realtime"],"idempotencyKey":"k-1"}`)

var typeOfNew = reflect.TypeFor[*herald.NewNotification]()

// BenchmarkDecodeCreate is what the strict walk adds to: encoding/json's decode of the
// same body.
func BenchmarkDecodeCreate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var n herald.NewNotification
		if err := json.Unmarshal(benchCreateBody, &n); err != nil {
			b.Fatal(err)
		}
	}
}
