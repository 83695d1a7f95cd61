package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/events/rules"
)

func exampleRules(t *testing.T) *rules.Set {
	t.Helper()
	set, err := rules.Load("../rules.example")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

type eventAnswer struct {
	Notifications int                   `json:"notifications"`
	Replayed      bool                  `json:"replayed"`
	Rules         []string              `json:"rules"`
	Data          []herald.Notification `json:"data"`
}

func (r response) event(t *testing.T) eventAnswer {
	t.Helper()
	if r.code != http.StatusAccepted {
		t.Fatalf("event: %d %s", r.code, r.body)
	}
	var a eventAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("event answer: %v: %s", err, r.body)
	}
	return a
}

var application = map[string]any{
	"name": "project.role.application.created",
	"data": map[string]any{"projectOwnerId": "olivia", "applicantId": "ada", "applicantName": "Ada",
		"projectTitle": "Atlas", "roleName": "Backend", "applicationId": 1000000},
}

func TestEvents(t *testing.T) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			e := newEnvOpts(t, stores[name](t), envOptions{rules: exampleRules(t)})
			owner := e.dial(t, "olivia", "")
			owner.expect(inboxSnapshot, 0)

			a := e.do("POST", "/events", testKey, application).event(t)
			if a.Notifications != 2 || len(a.Data) != 2 || len(a.Rules) != 1 || a.Replayed {
				t.Fatalf("application event: %+v", a)
			}
			// The owner hears of it live, with the message the rule renders; the
			// applicant has a confirmation. Numbers print as sent.
			f := owner.expect("new-notification", 1)
			n := f.notification(t)
			var p struct{ Message, ApplicationID string }
			_ = json.Unmarshal(n.Payload, &p)
			if n.Type != "project.role.application.created" || n.Object != "project.application.received" || n.SenderID != "ada" ||
				p.Message != `Ada applied for the role "Backend" in your project "Atlas"` || p.ApplicationID != "1000000" {
				t.Fatalf("owner's notification: %+v %s", n, n.Payload)
			}
			if c := e.do("GET", "/notifications/unread/count", userToken(t, "ada"), nil).json(t); c["count"].(float64) != 1 {
				t.Fatalf("applicant's count: %v", c)
			}

			// No rule: 202 with nothing stored, counted.
			if a := e.do("POST", "/events", testKey, map[string]any{"name": "invoice.paid", "data": map[string]any{}}).event(t); a.Notifications != 0 || len(a.Data) != 0 {
				t.Fatalf("unmatched event: %+v", a)
			}
			if m := e.metric(`herald_events_total{result="unmatched"}`); m != 1 {
				t.Fatalf("unmatched events counted %v", m)
			}

			// Bad input: nothing stored, a clear error.
			missing := map[string]any{"name": "project.role.application.created", "data": map[string]any{"applicantId": "ada"}}
			wantError(t, e.do("POST", "/events", testKey, missing), 422, herald.CodeValidation, "data.projectOwnerId")
			wantError(t, e.do("POST", "/events", testKey, `{"name":"project.created","data":[1]}`), 422, herald.CodeValidation, "data")
			wantError(t, e.do("POST", "/events", testKey, `{"data":{}}`), 422, herald.CodeValidation, "name")
			wantError(t, e.do("POST", "/events", testKey, `{"name":`), 400, herald.CodeBadRequest, "")
			wantError(t, e.do("POST", "/events", userToken(t, "ada"), application), 403, herald.CodeForbidden, "")
			wantError(t, e.do("POST", "/events", "", application), 401, herald.CodeUnauthorized, "")
			if c := e.do("GET", "/notifications/unread/count", userToken(t, "olivia"), nil).json(t); c["count"].(float64) != 1 {
				t.Fatalf("a refused event stored something: %v", c)
			}
			owner.quiet()
		})
	}
}

// TestEventIdempotency: one event posted several times at once yields its
// notifications once; every post answers with the same ones.
func TestEventIdempotency(t *testing.T) {
	forEachStoreWith(t, envOptions{rules: exampleRules(t)}, func(t *testing.T, e *env) {
		ev := map[string]any{"name": application["name"], "data": application["data"], "idempotencyKey": "app-1000000"}
		var wg sync.WaitGroup
		answers := make([]eventAnswer, 6)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = e.do("POST", "/events", testKey, ev).event(t)
			}()
		}
		wg.Wait()
		replays := 0
		for _, a := range answers {
			if a.Notifications != 2 || a.Data[0].ID != answers[0].Data[0].ID || a.Data[1].ID != answers[0].Data[1].ID {
				t.Fatalf("answers differ: %+v vs %+v", a, answers[0])
			}
			if a.Replayed {
				replays++
			}
		}
		if replays != len(answers)-1 {
			t.Fatalf("%d of %d posts were replays, want all but one", replays, len(answers))
		}
		for _, u := range []string{"olivia", "ada"} {
			if c := e.do("GET", "/notifications/unread/count", userToken(t, u), nil).json(t); c["count"].(float64) != 1 {
				t.Fatalf("%s has %v notifications, want 1", u, c["count"])
			}
		}
		// The same key with other data is a conflict.
		other := map[string]any{"name": application["name"], "idempotencyKey": "app-1000000",
			"data": map[string]any{"projectOwnerId": "olivia", "applicantId": "ada", "applicantName": "Bob",
				"projectTitle": "Atlas", "roleName": "Backend", "applicationId": 1}}
		wantError(t, e.do("POST", "/events", testKey, other), 409, herald.CodeIdempotencyConflict, "")
	})
}

func TestEventRateLimit(t *testing.T) {
	e := newEnvOpts(t, stores["embedded"](t), envOptions{rules: exampleRules(t),
		api: api.Options{ServiceRate: api.Rate{Per: 0.001, Burst: 1}}})
	e.do("POST", "/events", testKey, application).event(t)
	r := e.do("POST", "/events", testKey, application)
	wantError(t, r, 429, herald.CodeRateLimited, "")
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "rate") {
		t.Fatalf("429 without Retry-After: %v %s", r.header, r.body)
	}
}

func forEachStoreWith(t *testing.T, o envOptions, f func(t *testing.T, e *env)) {
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) { f(t, newEnvOpts(t, stores[name](t), o)) })
	}
}
