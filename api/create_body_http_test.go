package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
)

// TestCreateBodiesStoredAsSent: POST /notifications bodies with escapes, unicode, nulls,
// spaces and unknown fields are stored as encoding/json reads them, in the answer and
// in what the receiver reads back after other bodies went through the same pooled
// request buffers.
func TestCreateBodiesStoredAsSent(t *testing.T) {
	bodies := []string{
		`{"receiverId":"caf\u00e9-\ud83d\ude00","type":"t\/1","object":null,"payload":{ "m" : "a\"b\\c\u2028<&>" , "n":[1, -2.5e3] }}`,
		" \n{\"receiverId\" : \"caf\u00e9-\U0001F600\", \"senderId\":\"svc\\u0031\", \"type\":\"t/2\",\"extra\":{\"receiverId\":\"x\"},\"channels\":[\"realtime\",\"email\",\"realtime\"],\"idempotencyKey\":\"k\\n\"}\t",
		`{"receiver\u0049d":"caf\u00e9-\ud83d\ude00","type":"t3","payload":null,"channels":null}`,
	}
	forEachStore(t, func(t *testing.T, e *env) {
		var ids []string
		var want []herald.NewNotification
		for _, body := range bodies {
			var n herald.NewNotification
			if err := json.Unmarshal([]byte(body), &n); err != nil {
				t.Fatal(err)
			}
			r := e.do("POST", "/notifications", testKey, body)
			if n.Payload != nil && string(n.Payload) == "null" {
				// A null payload is the text null, which is no object.
				wantError(t, r, http.StatusUnprocessableEntity, herald.CodeValidation, "payload")
				continue
			}
			if r.code != http.StatusCreated {
				t.Fatalf("%s: %d %s", body, r.code, r.body)
			}
			if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
				t.Fatal(err)
			}
			checkStored(t, "answer to "+body, r.notification(t), n)
			ids, want = append(ids, r.notification(t).ID), append(want, n)
		}
		// The same body without the null payload is taken, then everything is read back.
		third := strings.Replace(bodies[2], `"payload":null,`, "", 1)
		var n herald.NewNotification
		if err := json.Unmarshal([]byte(third), &n); err != nil {
			t.Fatal(err)
		}
		if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := e.do("POST", "/notifications", testKey, third)
		if r.code != http.StatusCreated {
			t.Fatalf("%s: %d %s", third, r.code, r.body)
		}
		ids, want = append(ids, r.notification(t).ID), append(want, n)

		m := e.do("GET", "/notifications/unread", userToken(t, "café-😀"), nil)
		var page struct{ Data []herald.Notification }
		if err := json.Unmarshal(m.body, &page); err != nil || len(page.Data) != len(want) {
			t.Fatalf("unread: %d %s (%v), want %d notifications", m.code, m.body, err, len(want))
		}
		for i := range want {
			got := page.Data[len(page.Data)-1-i] // newest first
			if got.ID != ids[i] {
				t.Fatalf("unread[%d] is %s, want %s", i, got.ID, ids[i])
			}
			checkStored(t, "read back", got, want[i])
		}
	})
}

func checkStored(t *testing.T, what string, got herald.Notification, want herald.NewNotification) {
	t.Helper()
	// The answer's payload is encoding/json's encoding of the one sent (<, > and &
	// escaped): the same JSON value.
	var gp, wp any
	if err := json.Unmarshal(got.Payload, &gp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want.Payload, &wp); err != nil {
		t.Fatal(err)
	}
	if got.ReceiverID != want.ReceiverID || got.SenderID != want.SenderID || got.Type != want.Type ||
		got.Object != want.Object || !reflect.DeepEqual(gp, wp) || len(got.Channels) != len(want.Channels) {
		t.Fatalf("%s: stored %+v (payload %s), want %+v (payload %s)", what, got, got.Payload, want, want.Payload)
	}
	for i := range want.Channels {
		if got.Channels[i] != want.Channels[i] {
			t.Fatalf("%s: channels %v, want %v", what, got.Channels, want.Channels)
		}
	}
}
