package api_test

import (
	"net/http"
	"testing"

	"github.com/heraldhq/herald"
)

// TestAmbiguousBodiesRefused: a body that a reader of exact names would take for another
// notification than encoding/json does (a second receiverId, RECEIVERID, text that
// decoding would replace) is refused over HTTP with the field named, and nothing is
// stored for either reading of it.
func TestAmbiguousBodiesRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		cases := []struct {
			path, body string
			status     int
			code       herald.Code
			field      string
		}{
			{"/notifications", `{"receiverId":"alice","type":"t","receiverId":"bob"}`, http.StatusBadRequest, herald.CodeBadRequest, "receiverId"},
			{"/notifications", `{"receiverId":"alice","type":"t","RECEIVERID":"bob"}`, http.StatusBadRequest, herald.CodeBadRequest, "RECEIVERID"},
			{"/notifications", `{"receiverId":"alice","type":"t","ſenderId":"bob"}`, http.StatusBadRequest, herald.CodeBadRequest, "ſenderId"},
			{"/notifications", "{\"receiverId\":\"bob\xff\",\"type\":\"t\"}", http.StatusUnprocessableEntity, herald.CodeValidation, "receiverId"},
			{"/notifications", `{"receiverId":"bob\udc00","type":"t"}`, http.StatusUnprocessableEntity, herald.CodeValidation, "receiverId"},
			{"/notifications/batch", `{"receiverIds":["alice","bob"],"type":"t","Type":"u"}`, http.StatusBadRequest, herald.CodeBadRequest, "Type"},
			{"/notifications/batch", `{"items":[{"receiverId":"alice","type":"t"},{"receiverId":"bob","type":"t","receiverId":"alice"}]}`, http.StatusBadRequest, herald.CodeBadRequest, "items[1].receiverId"},
			{"/notifications/batch", "{\"receiverIds\":[\"alice\",\"bob\xc0\"],\"type\":\"t\"}", http.StatusUnprocessableEntity, herald.CodeValidation, "receiverIds[1]"},
			{"/events", `{"name":"project.created","Name":"x","data":{}}`, http.StatusBadRequest, herald.CodeBadRequest, "Name"},
		}
		for _, c := range cases {
			wantError(t, e.do("POST", c.path, testKey, c.body), c.status, c.code, c.field)
		}
		for _, user := range []string{"alice", "bob", "bob\uFFFD"} {
			if n := e.do("GET", "/notifications/unread/count", userToken(t, user), nil).json(t)["count"].(float64); n != 0 {
				t.Fatalf("%q has %v unread after refused bodies, want 0", user, n)
			}
		}
		// The same bodies spelled once and exactly are taken.
		if r := e.do("POST", "/notifications", testKey, `{"receiverId":"alice","type":"t","extra":"ignored"}`); r.code != http.StatusCreated {
			t.Fatalf("plain body: %d %s", r.code, r.body)
		}
	})
}
