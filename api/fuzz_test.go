package api

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// FuzzCreateRequest feeds arbitrary bodies to the create decoding and validation: no
// panic, every failure is a contract error, and whatever passes is what storage expects.
func FuzzCreateRequest(f *testing.F) {
	for _, s := range []string{
		`{"receiverId":"u","type":"t"}`,
		`{"receiverId":"u","type":"t","payload":{"m":"hi"},"channels":["email","realtime","email"]}`,
		`{"receiverId":"u","type":"t","payload":null}`,
		`{"receiverId":" ","type":"t","senderId":"x"}`,
		`{"receiverIds":["a","b"],"type":"t","idempotencyKey":"k"}`,
		`{"items":[{"receiverId":"a","type":"t"},{}]}`,
		`[]`, `{`, `{"payload":"\u0000"}`, `{"channels":"realtime"}`,
		`{"items":[]}`, `{"items":null,"receiverIds":["a","b"],"type":"t","payload":{"receiverId":"x"}}`,
		`{"receiverIds":["a"],"type":"t","payload":{"items":{"receiverId":1,"receiverId":2}}}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	codes := map[herald.Code]bool{herald.CodeBadRequest: true, herald.CodeValidation: true, herald.CodeTooLarge: true}
	f.Fuzz(func(t *testing.T, body []byte, service bool) {
		caller := herald.Caller{UserID: "caller", Service: service}
		b, err := decodeBatch(body)
		// Sizing the items array first changes nothing in what is decoded.
		var plain batchBody
		perr := decodeJSON(body, &plain)
		if fmt.Sprint(err) != fmt.Sprint(perr) || err == nil && !reflect.DeepEqual(*b, plain) {
			t.Fatalf("decodeBatch: %v %+v, decodeJSON: %v %+v", err, b, perr, plain)
		}
		if err != nil {
			if !codes[herald.ErrorCode(err)] {
				t.Fatalf("decode error %v is not a contract error", err)
			}
			return
		}
		items, err := batchItems(b)
		if err != nil {
			items = []herald.NewNotification{b.NewNotification}
		}
		for i := range items {
			n := &items[i]
			if err := n.Validate(caller, herald.ValidateOptions{MaxPayload: 512}); err != nil {
				code := herald.ErrorCode(err)
				if !codes[code] && (service || code != herald.CodeForbidden) {
					t.Fatalf("validate error %v is not a contract error", err)
				}
				continue
			}
			if strings.TrimSpace(n.ReceiverID) == "" || len(n.ReceiverID) > herald.MaxIDBytes ||
				strings.TrimSpace(n.Type) == "" || n.Object == "" || n.SenderID == "" {
				t.Fatalf("validated notification breaks the contract: %+v", n)
			}
			if !service && n.SenderID != "caller" {
				t.Fatalf("user caller sent as %q", n.SenderID)
			}
			if len(n.Payload) > 512 || bytes.TrimLeft(n.Payload, " \t\r\n")[0] != '{' {
				t.Fatalf("payload %q passed validation", n.Payload)
			}
			if len(n.Channels) == 0 {
				t.Fatal("no channels after validation")
			}
			for j, c := range n.Channels {
				if !c.Valid() {
					t.Fatalf("channel %q passed validation", c)
				}
				if !service && c != herald.ChannelRealtime {
					t.Fatalf("a user caller's channel %q passed validation", c)
				}
				for _, d := range n.Channels[:j] {
					if c == d {
						t.Fatalf("duplicate channel %q", c)
					}
				}
			}
		}
	})
}
