package api

import (
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// TestDecodeJSONErrors: each kind of bad body gets its own error, and an object
// followed by more data reports the object's own errors first.
func TestDecodeJSONErrors(t *testing.T) {
	cases := []struct {
		body, code, field, message string
	}{
		{``, "bad_request", "", "request body is empty"},
		{`[1]`, "bad_request", "", "must be a JSON object"},
		{`{"receiverId":"u"`, "bad_request", "", "malformed JSON: unexpected end of input"},
		{`{"receiverId":"u",}`, "bad_request", "", "malformed JSON: invalid character '}' looking for beginning of object key string at byte 19"},
		{`{"receiverId":"u"} x`, "bad_request", "", "malformed JSON: unexpected data after the object"},
		{`{"receiverId":"u"}{"type":"t"}`, "bad_request", "", "malformed JSON: unexpected data after the object"},
		{`{"receiverId":"u"}  ` + "\n", "", "", ""},
		{`{"receiverId":1} x`, "validation_failed", "receiverId", "receiverId must be a JSON string"},
		{`{"items":[{"type":true}]}`, "validation_failed", "items.type", "items.type must be a JSON string"},
		{`{"channels":"email"}`, "bad_request", "channels", "channels must be an array of channel names"},
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
