package api_test

import (
	"net/http"
	"testing"

	"github.com/heraldhq/herald"
)

func TestPreferences(t *testing.T) {
	forEachStoreWith(t, envOptions{rules: exampleRules(t)}, func(t *testing.T, e *env) {
		olivia := userToken(t, "olivia")
		if p := e.do("GET", "/preferences", olivia, nil).json(t); len(p["channels"].(map[string]any)) != 0 || len(p["types"].(map[string]any)) != 0 {
			t.Fatalf("default preferences: %v", p)
		}
		r := e.do("PUT", "/preferences", olivia, `{"channels":{"email":false},"types":{"project.role.application.created":{"realtime":false}}}`)
		if r.code != http.StatusOK {
			t.Fatalf("put preferences: %d %s", r.code, r.body)
		}
		if p := e.do("GET", "/preferences", olivia, nil).json(t); p["channels"].(map[string]any)["email"] != false {
			t.Fatalf("preferences read back: %v", p)
		}
		wantError(t, e.do("PUT", "/preferences", olivia, `{"channels":{"sms":false}}`), 400, herald.CodeBadRequest, "channels.sms")
		wantError(t, e.do("PUT", "/preferences", olivia, `{"types":{"t":{"pigeon":true}}}`), 400, herald.CodeBadRequest, "types.t.pigeon")
		wantError(t, e.do("PUT", "/preferences", testKey, `{}`), 403, herald.CodeForbidden, "")

		// A create of a type olivia turned off is not stored: 202 saying so.
		r = e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "olivia", "type": "project.role.application.created"})
		if m := r.json(t); r.code != http.StatusAccepted || m["suppressed"] != true || m["receiverId"] != "olivia" {
			t.Fatalf("suppressed create: %d %s", r.code, r.body)
		}
		// A batch lists what was stored and the indexes of what was not.
		m := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": []map[string]any{
			{"receiverId": "olivia", "type": "project.role.application.created"},
			{"receiverId": "olivia", "type": "project.created"},
		}}).json(t)
		if data := m["data"].([]any); len(data) != 1 || len(m["suppressed"].([]any)) != 1 || m["suppressed"].([]any)[0].(float64) != 0 {
			t.Fatalf("batch with a suppressed item: %v", m)
		}
		// An event: the owner's notification is not stored, the applicant's is.
		a := e.do("POST", "/events", testKey, application).event(t)
		if a.Notifications != 1 || a.Data[0].ReceiverID != "ada" {
			t.Fatalf("event with the owner's type off: %+v", a)
		}
		if c := e.do("GET", "/notifications/unread/count", olivia, nil).json(t); c["count"].(float64) != 1 {
			t.Fatalf("olivia's count: %v, want 1 (the project.created)", c)
		}
	})
}

func TestContactsAndDeliveries(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		wantError(t, e.do("GET", "/contacts/ada", testKey, nil), 404, herald.CodeNotFound, "")
		if r := e.do("PUT", "/contacts/ada", testKey, `{"email":"ada@example.com"}`); r.code != 200 {
			t.Fatalf("put contact: %d %s", r.code, r.body)
		}
		if c := e.do("GET", "/contacts/ada", testKey, nil).json(t); c["email"] != "ada@example.com" {
			t.Fatalf("contact: %v", c)
		}
		wantError(t, e.do("PUT", "/contacts/ada", testKey, `{"email":"not an address"}`), 422, herald.CodeValidation, "email")
		wantError(t, e.do("PUT", "/contacts/ada", userToken(t, "ada"), `{"email":"a@example.com"}`), 403, herald.CodeForbidden, "")
		for _, id := range []string{"bob%ff", "bob%00", "%ed%a0%80"} { // invalid UTF-8, NUL, a surrogate
			wantError(t, e.do("PUT", "/contacts/"+id, testKey, `{"email":"b@example.com"}`), 422, herald.CodeValidation, "userId")
			wantError(t, e.do("GET", "/contacts/"+id, testKey, nil), 422, herald.CodeValidation, "userId")
		}

		// Without a dispatcher the deliveries wait in the outbox.
		e.do("POST", "/notifications", testKey, map[string]any{"receiverId": "ada", "type": "t", "channels": []string{"realtime", "email"}})
		m := e.do("GET", "/deliveries?state=pending", testKey, nil).json(t)
		data := m["data"].([]any)
		if len(data) != 1 || data[0].(map[string]any)["channel"] != "email" || data[0].(map[string]any)["notification"] == nil || m["next"] != nil {
			t.Fatalf("pending deliveries: %v", m)
		}
		if m := e.do("GET", "/deliveries", testKey, nil).json(t); len(m["data"].([]any)) != 0 {
			t.Fatalf("dead letters: %v", m)
		}
		wantError(t, e.do("GET", "/deliveries?state=lost", testKey, nil), 422, herald.CodeValidation, "state")
		wantError(t, e.do("GET", "/deliveries", userToken(t, "ada"), nil), 403, herald.CodeForbidden, "")
		id := data[0].(map[string]any)["id"].(string)
		wantError(t, e.do("POST", "/deliveries/"+id+"/retry", testKey, nil), 404, herald.CodeNotFound, "") // not dead
	})
}
