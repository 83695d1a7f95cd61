package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// FuzzParseClientFrame: any bytes decode to a known event or to an error frame with
// one of the contract's codes, never a panic.
func FuzzParseClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"event":"ping"}`, `{"event":"refresh-unread","data":null}`, `{"event":"mark-all-read"}`,
		`{"event":"mark-read","data":{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b"}}`,
		`{"event":"mark-read","data":{"id":""}}`, `{"event":"mark-read","data":[1]}`,
		`{"event":5}`, `{}`, `[]`, `null`, `"ping"`, ` {"event":"ping","extra":{"a":[1,2]}}`,
		"{\"event\":\"p\xffing\"}", `{"event":"ping"}{"event":"ping"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseClientFrame(b)
		if err != nil {
			e, ok := err.(*herald.Error)
			if !ok {
				t.Fatalf("error %T is not a *herald.Error", err)
			}
			switch e.Code {
			case herald.CodeBadFrame, herald.CodeUnknownEvent, herald.CodeValidation:
			default:
				t.Fatalf("unexpected code %s", e.Code)
			}
			if e.Message == "" {
				t.Fatal("error without a message")
			}
			var frame struct {
				Event string `json:"event"`
				Data  struct {
					Code    herald.Code `json:"code"`
					Message string      `json:"message"`
					Field   string      `json:"field"`
				} `json:"data"`
			}
			fb := EncodeError(err)
			if json.Unmarshal(fb, &frame) != nil || frame.Event != "error" || frame.Data.Code != e.Code ||
				(utf8.ValidString(e.Message) && frame.Data.Message != e.Message) || frame.Data.Field != e.Field {
				t.Fatalf("error frame %s for %v", fb, err)
			}
			return
		}
		switch fr.Event {
		case EventPing, EventRefresh, EventMarkAllRead:
		case EventMarkRead:
			if strings.TrimSpace(fr.ID) == "" {
				t.Fatal("mark-read accepted without an id")
			}
		default:
			t.Fatalf("accepted unknown event %q", fr.Event)
		}
	})
}
