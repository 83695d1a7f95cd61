package rules_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/events/rules"
)

func mustParse(t testing.TB, doc string) *rules.Set {
	t.Helper()
	s, err := rules.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func mustRoute(t testing.TB, s *rules.Set, ev rules.Event) []rules.Routed {
	t.Helper()
	out, err := s.Route(ev)
	if err != nil {
		t.Fatalf("Route(%s): %v", ev.Name, err)
	}
	return out
}

// data decodes JSON as the server does.
func data(t testing.TB, js string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func payload(t testing.TB, r rules.Routed) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Notification.Payload, &m); err != nil {
		t.Fatalf("payload %s: %v", r.Notification.Payload, err)
	}
	return m
}

func heraldErr(t *testing.T, err error) *herald.Error {
	t.Helper()
	var e *herald.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *herald.Error", err, err)
	}
	return e
}

const ownerApplicant = `
rules:
  - name: owner-on-application
    match: project.role.application.created
    notify:
      - receiver: project.ownerId
        type: project.role.application.created
        object: project.application.received
        sender: "{{.data.applicant.id}}"
        channels: [realtime, email]
        payload:
          message: "{{.data.applicant.name}} applied for {{.data.role.title}} in {{.data.project.name}}"
          projectId: "{{.data.project.id}}"
          tenant: "{{.tenantId}}"
          event: "{{.name}}"
          count: 3
          ratio: 0.5
          urgent: false
          none: null
          nested:
            list: [a, "{{.data.role.title}}", 1, {x: "{{.data.project.name}}"}]
      - receiver: applicant.id
        type: project.role.application.sent
        payload:
          message: "You applied for {{.data.role.title}} in {{.data.project.name}}"
`

const applicationData = `{
	"project": {"id": "p1", "name": "Atlas", "ownerId": "user-1"},
	"applicant": {"id": "user-9", "name": "Ada"},
	"role": {"title": "Backend"}
}`

func TestRouteOwnerAndApplicant(t *testing.T) {
	s := mustParse(t, ownerApplicant)
	out := mustRoute(t, s, rules.Event{
		Name: "project.role.application.created", TenantID: "acme", Data: data(t, applicationData),
	})
	if len(out) != 2 {
		t.Fatalf("got %d notifications, want 2", len(out))
	}
	owner, applicant := out[0], out[1]
	want := herald.NewNotification{
		ReceiverID: "user-1",
		SenderID:   "user-9",
		Type:       "project.role.application.created",
		Object:     "project.application.received",
		Channels:   []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail},
		ByService:  true,
	}
	got := owner.Notification
	got.Payload = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("owner notification\n got %+v\nwant %+v", got, want)
	}
	wantPayload := `{"message":"Ada applied for Backend in Atlas","projectId":"p1","tenant":"acme",` +
		`"event":"project.role.application.created","count":3,"ratio":0.5,"urgent":false,"none":null,` +
		`"nested":{"list":["a","Backend",1,{"x":"Atlas"}]}}`
	if string(owner.Notification.Payload) != wantPayload {
		t.Errorf("owner payload (keys in file order)\n got %s\nwant %s", owner.Notification.Payload, wantPayload)
	}
	if owner.Rule != "owner-on-application" || applicant.Rule != "owner-on-application" {
		t.Errorf("rules %q, %q", owner.Rule, applicant.Rule)
	}

	a := applicant.Notification
	if a.ReceiverID != "user-9" || a.SenderID != herald.DefaultSenderID || a.Object != a.Type ||
		!reflect.DeepEqual(a.Channels, []herald.Channel{herald.ChannelRealtime}) || a.IdempotencyKey != "" {
		t.Errorf("applicant notification %+v: want receiver user-9, sender system, object = type, channels [realtime], no key", a)
	}
	if m := payload(t, applicant); m["message"] != "You applied for Backend in Atlas" {
		t.Errorf("applicant message %q", m["message"])
	}
	for _, r := range out {
		n := r.Notification
		if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
			t.Errorf("routed notification does not validate: %v", err)
		}
	}
}

func TestMatchWildcards(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"project.created", "project.created", true},
		{"project.created", "project.created.v2", false},
		{"project.created", "project", false},
		{"project.created", "Project.created", false},
		{"project.role.*", "project.role.assigned", true},
		{"project.role.*", "project.role.application.created", false},
		{"project.role.*", "project.role", false},
		{"project.role.**", "project.role.assigned", true},
		{"project.role.**", "project.role.application.created", true},
		{"project.role.**", "project.role", false},
		{"tenant.*.project.created", "tenant.acme.project.created", true},
		{"tenant.*.project.created", "tenant.project.created", false},
		{"tenant.*.project.created", "tenant.a.b.project.created", false},
		{"tenant.*.project.created", "tenant.acme.project.updated", false},
		{"tenant.**.created", "tenant.a.b.project.created", true},
		{"tenant.**.created", "tenant.created", false},
		{"*.created", "project.created", true},
		{"*.created", "created", false},
		{"*", "project", true},
		{"*", "project.created", false},
		{"**", "project.role.application.created", true},
		{"*.*", "a.b", true},
		{"**.*", "a", false},
		{"**.*", "a.b", true},
		{"a.**.b.**.c", "a.x.b.y.z.c", true},
		{"a.**.b.**.c", "a.b.c", false},
		{"project.*", "project.", false},
		{"project.**", "project..created", false},
		{"*.created", ".created", false},
	}
	for _, c := range cases {
		doc := fmt.Sprintf("rules:\n  - name: r\n    match: %q\n    notify: [{receiver: id, type: t}]\n", c.pattern)
		s := mustParse(t, doc)
		got := len(s.Matching(c.name)) == 1
		if got != c.want {
			t.Errorf("%q matches %q: got %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestMatchOrderAndSeveralPatterns(t *testing.T) {
	s := mustParse(t, `
rules:
  - {name: a, match: "project.**", notify: [{receiver: id, type: a}]}
  - {name: b, match: project.created, notify: [{receiver: id, type: b}]}
  - {name: c, match: [project.created, "*.created"], notify: [{receiver: id, type: c}]}
  - {name: d, match: "tenant.*.project.created", notify: [{receiver: id, type: d}]}
  - {name: e, match: project.updated, notify: [{receiver: id, type: e}]}
`)
	if got, want := s.Matching("project.created"), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Matching(project.created) = %v, want %v (file order, each rule once)", got, want)
	}
	out := mustRoute(t, s, rules.Event{Name: "project.created", Data: map[string]any{"id": "u"}})
	var types []string
	for _, r := range out {
		types = append(types, r.Notification.Type)
	}
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(types, want) {
		t.Errorf("routed types %v, want %v", types, want)
	}
	if got := s.Matching("tenant.acme.project.created"); !reflect.DeepEqual(got, []string{"d"}) {
		t.Errorf("Matching(tenant.acme.project.created) = %v", got)
	}
	if s.Len() != 5 || !reflect.DeepEqual(s.Names(), []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("Len %d Names %v", s.Len(), s.Names())
	}
}

func TestNoMatch(t *testing.T) {
	s := mustParse(t, ownerApplicant)
	out, err := s.Route(rules.Event{Name: "project.deleted", Data: map[string]any{}})
	if err != nil || out == nil || len(out) != 0 {
		t.Errorf("Route of an unmatched event = %v, %v; want an empty slice and nil", out, err)
	}
	var none *rules.Set
	out, err = none.Route(rules.Event{Name: "project.created"})
	if err != nil || out == nil || len(out) != 0 {
		t.Errorf("nil Set: Route = %v, %v; want an empty slice and nil", out, err)
	}
	_, err = s.Route(rules.Event{Name: " "})
	if e := heraldErr(t, err); e.Code != herald.CodeValidation || e.Field != "name" {
		t.Errorf("blank name: %+v", e)
	}
}

const fanOut = `
rules:
  - name: members-on-update
    match: project.updated
    notify:
      - receiver: memberIds
        type: project.updated
        sender: "{{.data.by}}"
        channels: [realtime, webhook]
        escalate: {after: 30m}
        digest: {window: 10m}
        payload:
          message: 'The project "{{.data.title}}" was updated'
`

func TestFanOut(t *testing.T) {
	s := mustParse(t, fanOut)
	ev := rules.Event{Name: "project.updated", Data: data(t, `{"memberIds": ["u1", "u2", "u1", "u3"], "by": "u0", "title": "Atlas \"A\" <b>"}`)}
	out := mustRoute(t, s, ev)
	var got []string
	for _, r := range out {
		got = append(got, r.Notification.ReceiverID)
		if r.Notification.SenderID != "u0" {
			t.Errorf("sender %q", r.Notification.SenderID)
		}
		if m := payload(t, r); m["message"] != `The project "Atlas "A" <b>" was updated` {
			t.Errorf("message %q", m["message"])
		}
		if r.Escalate == nil || *r.Escalate != (rules.Escalate{After: 30 * time.Minute, Channel: herald.ChannelEmail}) {
			t.Errorf("escalate %+v, want 30m to email (the default channel)", r.Escalate)
		}
		if r.Digest == nil || r.Digest.Window != 10*time.Minute {
			t.Errorf("digest %+v", r.Digest)
		}
	}
	if want := []string{"u1", "u2", "u3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("receivers %v, want %v (one per distinct id, in order)", got, want)
	}
	// Each notification owns its channels and extras: changing one changes no other,
	// nor the next Route.
	out[0].Notification.Channels[0] = "changed"
	out[0].Escalate.After = time.Hour
	if out[1].Notification.Channels[0] != herald.ChannelRealtime || out[1].Escalate.After != 30*time.Minute {
		t.Error("notifications of a fan-out share their channels or escalate")
	}
	again := mustRoute(t, s, ev)
	if again[0].Notification.Channels[0] != herald.ChannelRealtime || again[0].Escalate.After != 30*time.Minute {
		t.Error("a caller's change to a Routed reached the Set")
	}

	ev.Data = data(t, `{"memberIds": [], "by": "u0", "title": "Atlas"}`)
	if out := mustRoute(t, s, ev); len(out) != 0 {
		t.Errorf("empty list: %d notifications, want 0", len(out))
	}
	ev.Data = map[string]any{"memberIds": []string{"u1", "u2"}, "by": "u0", "title": "Atlas"}
	if out := mustRoute(t, s, ev); len(out) != 2 {
		t.Errorf("[]string receivers: %d notifications, want 2", len(out))
	}
}

func TestFanOutOverBatchLimit(t *testing.T) {
	s := mustParse(t, fanOut)
	ids := make([]any, herald.MaxBatch+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%d", i)
	}
	_, err := s.Route(rules.Event{Name: "project.updated", Data: map[string]any{"memberIds": ids, "by": "u0", "title": "A"}})
	if e := heraldErr(t, err); e.Code != herald.CodeValidation || e.Field != "data.memberIds" {
		t.Errorf("%d receivers: %+v", len(ids), e)
	}
}

func TestReceiverErrors(t *testing.T) {
	s := mustParse(t, ownerApplicant+`
  - name: members
    match: project.updated
    notify: [{receiver: memberIds, type: project.updated}]
`)
	cases := []struct {
		event, data, field, msg string
	}{
		{"project.role.application.created", `{"applicant": {"id": "u9", "name": "Ada"}, "role": {"title": "B"}}`, "data.project.ownerId", "missing"},
		{"project.role.application.created", `{"project": {"id": "p", "name": "A"}, "applicant": {"id": "u9"}, "role": {"title": "B"}}`, "data.project.ownerId", "missing"},
		{"project.role.application.created", `{"project": "p1"}`, "data.project.ownerId", "not an object"},
		{"project.role.application.created", `{"project": {"ownerId": 42}}`, "data.project.ownerId", "not a number"},
		{"project.role.application.created", `{"project": {"ownerId": null}}`, "data.project.ownerId", "not null"},
		{"project.role.application.created", `{"project": {"ownerId": "  "}}`, "data.project.ownerId", "blank"},
		{"project.updated", `{"memberIds": ["u1", 7]}`, "data.memberIds[1]", "not a number"},
		{"project.updated", `{"memberIds": ["u1", ""]}`, "data.memberIds[1]", "blank"},
		{"project.updated", `{"memberIds": {"a": "u1"}}`, "data.memberIds", "not an object"},
		{"project.updated", `{}`, "data.memberIds", "missing"},
	}
	for _, c := range cases {
		out, err := s.Route(rules.Event{Name: c.event, Data: data(t, c.data)})
		if err == nil {
			t.Errorf("%s %s: no error, %d notifications", c.event, c.data, len(out))
			continue
		}
		e := heraldErr(t, err)
		if e.Code != herald.CodeValidation || e.Field != c.field || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s %s: got %s field %q; want %s field %q, message containing %q",
				c.event, c.data, e, e.Field, herald.CodeValidation, c.field, c.msg)
		}
		if out != nil {
			t.Errorf("%s: notifications returned with the error", c.event)
		}
	}
	// No data at all.
	_, err := s.Route(rules.Event{Name: "project.updated"})
	if e := heraldErr(t, err); e.Field != "data.memberIds" {
		t.Errorf("nil data: %+v", e)
	}
}

func TestTemplateErrorsAtRouteTime(t *testing.T) {
	s := mustParse(t, ownerApplicant)
	cases := []struct {
		data, field, msg string
	}{
		// The applicant has no name: the owner's message cannot be written.
		{`{"project": {"id": "p", "name": "A", "ownerId": "u1"}, "applicant": {"id": "u9"}, "role": {"title": "B"}}`,
			"data.applicant.name", `rule "owner-on-application", notify[0].payload.message: at <.data.applicant.name>: map has no entry for key "name"`},
		{`{"project": {"id": "p", "name": "A", "ownerId": "u1"}, "applicant": {"id": "u9", "name": null}, "role": {"title": "B"}}`,
			"data", `rule "owner-on-application", notify[0].payload.message: a value it prints is null`},
		{`{"project": {"id": "p", "name": "A", "ownerId": "u1"}, "applicant": {"name": "Ada"}, "role": {"title": "B"}}`,
			"data.applicant.id", `notify[0].sender: at <.data.applicant.id>: map has no entry for key "id"`},
	}
	for _, c := range cases {
		_, err := s.Route(rules.Event{Name: "project.role.application.created", Data: data(t, c.data)})
		if err == nil {
			t.Errorf("%s: no error", c.data)
			continue
		}
		e := heraldErr(t, err)
		if e.Code != herald.CodeValidation || e.Field != c.field || !strings.Contains(e.Message, c.msg) {
			t.Errorf("got code %s field %q message %q\nwant code %s field %q message containing %q",
				e.Code, e.Field, e.Message, herald.CodeValidation, c.field, c.msg)
		}
	}
}

func TestPayloadLimit(t *testing.T) {
	s := mustParse(t, `
rules:
  - name: big
    match: big
    notify:
      - receiver: id
        type: big
        payload: {text: "{{range .data.parts}}{{.}}{{end}}"}
`)
	parts := make([]any, 100)
	for i := range parts {
		parts[i] = strings.Repeat("x", 1000)
	}
	ev := rules.Event{Name: "big", Data: map[string]any{"id": "u1", "parts": parts}}
	_, err := s.Route(ev)
	if e := heraldErr(t, err); e.Code != herald.CodeTooLarge || e.Field != "payload" {
		t.Errorf("100 KB payload under the default limit: %+v", e)
	}
	if _, err := s.WithMaxPayload(200 << 10).Route(ev); err != nil {
		t.Errorf("100 KB payload under a 200 KiB limit: %v", err)
	}
	if _, err := s.Route(ev); err == nil {
		t.Error("WithMaxPayload changed the original Set")
	}
}

func TestIdempotencyKeys(t *testing.T) {
	s := mustParse(t, ownerApplicant+strings.Replace(fanOut, "rules:\n", "", 1))
	route := func(name, key, js string) []rules.Routed {
		return mustRoute(t, s, rules.Event{Name: name, IdempotencyKey: key, Data: data(t, js)})
	}
	keys := func(out []rules.Routed) []string {
		var k []string
		for _, r := range out {
			k = append(k, r.Notification.IdempotencyKey)
		}
		return k
	}
	members := `{"memberIds": ["u1", "u2", "u3"], "by": "u0", "title": "A"}`
	first := keys(route("project.updated", "ev-1", members))
	if again := keys(route("project.updated", "ev-1", members)); !reflect.DeepEqual(first, again) {
		t.Errorf("a replay got other keys:\n%v\n%v", first, again)
	}
	seen := map[string]bool{}
	for _, k := range first {
		if k == "" || len(k) > herald.MaxIDBytes || seen[k] {
			t.Errorf("key %q: empty, too long or shared by two receivers (%v)", k, first)
		}
		seen[k] = true
	}
	// A receiver's key does not depend on the other receivers.
	if k := keys(route("project.updated", "ev-1", `{"memberIds": ["u3"], "by": "u0", "title": "A"}`)); k[0] != first[2] {
		t.Errorf("u3's key changed with the other receivers: %s vs %s", k[0], first[2])
	}
	if k := keys(route("project.updated", "ev-2", members)); k[0] == first[0] {
		t.Error("two events share a key")
	}
	if k := keys(route("project.updated", "", members)); k[0] != "" {
		t.Errorf("no event key, yet notification key %q", k[0])
	}
	// Owner and applicant of one event: two targets, two keys; the same user as both
	// still gets two keys.
	selfApply := `{"project": {"id": "p", "name": "A", "ownerId": "u1"}, "applicant": {"id": "u1", "name": "Ada"}, "role": {"title": "B"}}`
	k := keys(route("project.role.application.created", "ev-3", selfApply))
	if len(k) != 2 || k[0] == k[1] {
		t.Errorf("owner and applicant keys %v", k)
	}
	for _, r := range route("project.role.application.created", "ev-3", selfApply) {
		if !r.Notification.ByService || r.Notification.IdempotencyScope() != "s:"+r.Notification.IdempotencyKey {
			t.Errorf("notification not marked as a service's: %+v", r.Notification)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	rule := func(body string) string {
		return "rules:\n  - name: ok\n    match: a.b\n    notify: [{receiver: id, type: t}]\n" +
			"  - name: owner-on-application\n    match: project.role.application.created\n" + body
	}
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"bad template", rule(`    notify:
      - receiver: ownerId
        type: t
        payload:
          message: "{{.data.applicant.name} applied"
`), []string{`rules[1] "owner-on-application": notify[0].payload.message (line 11): template: bad character`}},
		{"unclosed action in sender", rule("    notify: [{receiver: ownerId, type: t, sender: \"{{.data.x\"}]\n"),
			[]string{`rules[1] "owner-on-application": notify[0].sender`, "template"}},
		{"unknown function", rule("    notify: [{receiver: ownerId, type: t, payload: {m: \"{{upper .data.x}}\"}}]\n"),
			[]string{`notify[0].payload.m`, `function "upper" not defined`}},
		{"field of the event misspelt", rule("    notify: [{receiver: ownerId, type: t, payload: {m: \"{{.Data.x}}\"}}]\n"),
			[]string{`notify[0].payload.m`, `no field .Data`}},
		{"define", rule("    notify: [{receiver: ownerId, type: t, payload: {m: '{{define \"x\"}}y{{end}}'}}]\n"),
			[]string{`notify[0].payload.m`, `not supported`}},
		{"unknown rule field", rule("    notfy: []\n"),
			[]string{`rules[1] "owner-on-application": notfy (line 7): unknown field`}},
		{"unknown target field", rule("    notify: [{receiver: ownerId, type: t, chanels: [email]}]\n"),
			[]string{`rules[1] "owner-on-application": notify[0].chanels`, "unknown field"}},
		{"unknown escalate field", rule("    notify: [{receiver: ownerId, type: t, escalate: {after: 1m, chanel: email}}]\n"),
			[]string{`notify[0].escalate.chanel`, "unknown field"}},
		{"unknown top-level field", "rule: []\n", []string{`rule (line 1): unknown field`}},
		{"duplicate field", rule("    match: b\n    notify: [{receiver: ownerId, type: t}]\n"),
			[]string{`rules[1] "owner-on-application": match`, "duplicate field"}},
		{"duplicate name", "rules:\n  - {name: r, match: a, notify: [{receiver: id, type: t}]}\n  - {name: r, match: b, notify: [{receiver: id, type: t}]}\n",
			[]string{`rules[1] "r": name (line 3): duplicate rule name, already used by rules[0]`}},
		{"no name", "rules:\n  - {match: a, notify: [{receiver: id, type: t}]}\n", []string{`rules[0]: name`, "required"}},
		{"bad name", "rules:\n  - {name: 'a b', match: a, notify: [{receiver: id, type: t}]}\n", []string{`rules[0] "a b": name`}},
		{"no match", rule("    notify: [{receiver: ownerId, type: t}]\n")[:0] + "rules:\n  - {name: r, notify: [{receiver: id, type: t}]}\n", []string{`rules[0] "r": match`, "required"}},
		{"bad pattern", "rules:\n  - {name: r, match: 'project.*ed', notify: [{receiver: id, type: t}]}\n", []string{`rules[0] "r": match`, "mixes *"}},
		{"empty segment", "rules:\n  - {name: r, match: [a, 'project..created'], notify: [{receiver: id, type: t}]}\n", []string{`rules[0] "r": match[1]`, "empty segment"}},
		{"no notify", "rules:\n  - {name: r, match: a}\n", []string{`rules[0] "r": notify`, "required"}},
		{"empty notify", "rules:\n  - {name: r, match: a, notify: []}\n", []string{`rules[0] "r": notify`, "empty"}},
		{"no receiver", rule("    notify: [{type: t}]\n"), []string{`notify[0].receiver`, "required"}},
		{"receiver template", rule("    notify: [{receiver: '{{.data.id}}', type: t}]\n"), []string{`notify[0].receiver`, "not a template"}},
		{"no type", rule("    notify: [{receiver: id}]\n"), []string{`notify[0].type`, "required"}},
		{"type too long", rule("    notify: [{receiver: id, type: " + strings.Repeat("t", 300) + "}]\n"), []string{`notify[0].type`, "longer than 256"}},
		{"type not a string", rule("    notify: [{receiver: id, type: [a]}]\n"), []string{`notify[0].type`, "must be a string"}},
		{"unknown channel", rule("    notify: [{receiver: id, type: t, channels: [realtime, sms]}]\n"), []string{`notify[0].channels[1]`, `unknown channel "sms"`}},
		{"duplicate channel", rule("    notify: [{receiver: id, type: t, channels: [email, email]}]\n"), []string{`notify[0].channels[1]`, "duplicate"}},
		{"empty channels", rule("    notify: [{receiver: id, type: t, channels: []}]\n"), []string{`notify[0].channels`, "empty"}},
		{"payload not an object", rule("    notify: [{receiver: id, type: t, payload: [a]}]\n"), []string{`notify[0].payload`, "mapping"}},
		{"escalate without after", rule("    notify: [{receiver: id, type: t, escalate: {channel: email}}]\n"), []string{`notify[0].escalate.after`, "required"}},
		{"escalate bad duration", rule("    notify: [{receiver: id, type: t, escalate: {after: 30}}]\n"), []string{`notify[0].escalate.after`, "not a duration"}},
		{"escalate negative", rule("    notify: [{receiver: id, type: t, escalate: {after: -1m}}]\n"), []string{`notify[0].escalate.after`, "positive"}},
		{"escalate to realtime", rule("    notify: [{receiver: id, type: t, escalate: {after: 1m, channel: realtime}}]\n"), []string{`notify[0].escalate.channel`, "realtime"}},
		{"escalate to a channel it has", rule("    notify: [{receiver: id, type: t, channels: [realtime, email], escalate: {after: 1m}}]\n"), []string{`notify[0].escalate.channel`, "already in channels"}},
		{"digest without window", rule("    notify: [{receiver: id, type: t, digest: {}}]\n"), []string{`notify[0].digest.window`, "required"}},
		{"digest bad window", rule("    notify: [{receiver: id, type: t, digest: {window: soon}}]\n"), []string{`notify[0].digest.window`, "not a duration"}},
		{"empty document", "", []string{"empty"}},
		{"comment only", "# nothing\n", []string{"empty"}},
		{"no rules key", "{}\n", []string{"rules", "required"}},
		{"rules not a list", "rules: {}\n", []string{"rules", "must be a list"}},
		{"scalar document", "hello\n", []string{"mapping with the key rules"}},
		{"two documents", "rules: []\n---\nrules: []\n", []string{"more than one YAML document"}},
		{"YAML syntax", "rules:\n  - name: [\n", []string{"yaml"}},
	}
	for _, c := range cases {
		_, err := rules.Parse([]byte(c.doc))
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\ndoes not contain %q", c.name, err, w)
			}
		}
	}
}

func TestLoadErrorsAreAllReported(t *testing.T) {
	_, err := rules.Parse([]byte(`
rules:
  - {name: a, match: x, notify: [{receiver: id, type: t, chanels: [email]}]}
  - {name: b, match: y, notify: [{receiver: id, type: t, payload: {m: "{{"}}]}
`))
	if err == nil || !strings.Contains(err.Error(), `rules[0] "a"`) || !strings.Contains(err.Error(), `rules[1] "b"`) {
		t.Errorf("want both rules' errors, got %v", err)
	}
}

func TestJSONRules(t *testing.T) {
	doc := "{\n\t\"rules\": [\n\t\t{\n\t\t\t\"name\": \"r\",\n\t\t\t\"match\": \"project.created\",\n" +
		"\t\t\t\"notify\": [{\"receiver\": \"ownerId\", \"type\": \"project.created\", \"payload\": {\"message\": \"Your project \\\"{{.data.title}}\\\"\\tis ready\"}}]\n" +
		"\t\t}\n\t]\n}\n"
	s := mustParse(t, doc)
	out := mustRoute(t, s, rules.Event{Name: "project.created", Data: map[string]any{"ownerId": "u1", "title": "Atlas"}})
	if len(out) != 1 || payload(t, out[0])["message"] != "Your project \"Atlas\"\tis ready" {
		t.Fatalf("JSON rules routed %+v", out)
	}
	// A bare list is accepted too.
	s = mustParse(t, `[{name: r, match: a, notify: [{receiver: id, type: t}]}]`)
	if s.Len() != 1 {
		t.Errorf("bare list: %d rules", s.Len())
	}
}

func TestYAMLAnchors(t *testing.T) {
	s := mustParse(t, `
rules:
  - name: a
    match: a
    notify:
      - receiver: id
        type: a
        payload: &common
          projectId: "{{.data.projectId}}"
          message: "hello"
  - name: b
    match: b
    notify:
      - receiver: id
        type: b
        payload: *common
`)
	out := mustRoute(t, s, rules.Event{Name: "b", Data: map[string]any{"id": "u", "projectId": "p1"}})
	if got := string(out[0].Notification.Payload); got != `{"projectId":"p1","message":"hello"}` {
		t.Errorf("payload %s", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(fanOut), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := rules.Load(path); err != nil || s.Len() != 1 {
		t.Fatalf("Load = %v, %v", s, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - {name: r, match: a, notify: [{receiver: id, type: t, x: 1}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Load(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `rules[0] "r": notify[0].x`) {
		t.Errorf("Load of a bad file: %v", err)
	}
	if _, err := rules.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// Many goroutines route through one Set; with -race this proves Route only reads it.
func TestConcurrentRoute(t *testing.T) {
	s := mustParse(t, ownerApplicant+strings.Replace(fanOut, "rules:\n", "", 1))
	app := data(t, applicationData)
	members := data(t, `{"memberIds": ["u1", "u2", "u3"], "by": "u0", "title": "A"}`)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				ev := rules.Event{Name: "project.updated", Data: members, IdempotencyKey: fmt.Sprint(g, i)}
				if i%2 == 0 {
					ev = rules.Event{Name: "project.role.application.created", Data: app}
				}
				if out, err := s.Route(ev); err != nil || len(out) == 0 {
					t.Errorf("Route: %d, %v", len(out), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkRoute(b *testing.B) {
	s := mustParse(b, fanOut)
	ids := make([]any, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%d", i)
	}
	ev := rules.Event{
		Name:           "project.updated",
		IdempotencyKey: "evt-123",
		Data:           map[string]any{"memberIds": ids, "by": "user-0", "title": "Atlas"},
	}
	b.ReportAllocs()
	for b.Loop() {
		out, err := s.Route(ev)
		if err != nil || len(out) != len(ids) {
			b.Fatal(len(out), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ids)), "ns/notification")
}

func TestOptionalValue(t *testing.T) {
	s := mustParse(t, `
rules:
  - name: r
    match: a
    notify:
      - receiver: id
        type: t
        payload: {m: '{{with index .data "who"}}{{.}}{{else}}someone{{end}} did it'}
`)
	for js, want := range map[string]string{
		`{"id": "u"}`:               "someone did it",
		`{"id": "u", "who": null}`:  "someone did it",
		`{"id": "u", "who": "Ada"}`: "Ada did it",
	} {
		out := mustRoute(t, s, rules.Event{Name: "a", Data: data(t, js)})
		if got := payload(t, out[0])["m"]; got != want {
			t.Errorf("%s: %q, want %q", js, got, want)
		}
	}
}

// The complete example of the package doc parses and routes.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(src), "A complete example:\n//\n")
	if !ok {
		t.Fatal("no example in doc.go")
	}
	var doc strings.Builder
	for _, line := range strings.Split(after, "\n") {
		code, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		doc.WriteString(code + "\n")
	}
	s := mustParse(t, doc.String())
	out := mustRoute(t, s, rules.Event{Name: "project.role.application.created", Data: data(t,
		`{"projectOwnerId": "u1", "applicantId": "u9", "applicantName": "Ada", "roleName": "Backend",
		  "projectTitle": "Atlas", "projectId": "p1", "applicationId": "a1"}`)})
	if len(out) != 2 || payload(t, out[0])["message"] != `Ada applied for the role "Backend" in your project "Atlas"` {
		t.Errorf("doc example routed %d notifications: %+v", len(out), out)
	}
	out = mustRoute(t, s, rules.Event{Name: "tenant.acme.project.updated", Data: data(t,
		`{"memberIds": ["u1", "u2"], "projectTitle": "Atlas"}`)})
	if len(out) != 2 || out[1].Escalate == nil || out[1].Digest == nil {
		t.Errorf("doc example fan-out: %+v", out)
	}
}

func TestEmptyRuleList(t *testing.T) {
	for _, doc := range []string{"rules: []\n", "rules: []\n---\n", "[]"} {
		s, err := rules.Parse([]byte(doc))
		if err != nil || s.Len() != 0 {
			t.Errorf("%q: %v, %v", doc, s, err)
			continue
		}
		if out, err := s.Route(rules.Event{Name: "project.created"}); err != nil || len(out) != 0 {
			t.Errorf("%q: Route = %v, %v", doc, out, err)
		}
	}
}

// Parse never panics, and a Set it accepts routes any event without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(ownerApplicant), "project.role.application.created")
	f.Add([]byte(fanOut), "project.updated")
	f.Add([]byte("rules:\n  - {name: r, match: 'a.**.b', notify: [{receiver: x.y, type: t, payload: {m: '{{range .data.l}}{{.}}{{end}}'}}]}\n"), "a.c.b")
	f.Add([]byte(`{"rules": [{"name": "r", "match": "*", "notify": [{"receiver": "id", "type": "t"}]}]}`), "x")
	f.Fuzz(func(t *testing.T, doc []byte, name string) {
		s, err := rules.Parse(doc)
		if err != nil {
			return
		}
		d := map[string]any{"id": "u", "x": map[string]any{"y": []any{"a", "b"}}, "l": []any{1.0, "s"}, "memberIds": []any{"u1"}}
		out, err := s.Route(rules.Event{Name: name, Data: d, IdempotencyKey: "k"})
		if err == nil {
			for _, r := range out {
				n := r.Notification
				if verr := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); verr != nil {
					t.Errorf("routed notification does not validate: %v", verr)
				}
			}
		}
	})
}

// Several ** never make matching backtrack exponentially: this returns at once, where a
// naive matcher would try C(60,10) ways to split the name.
func TestMatchManyDoubleStars(t *testing.T) {
	s := mustParse(t, `rules: [{name: r, match: "**.**.**.**.**.**.**.**.**.**.x", notify: [{receiver: id, type: t}]}]`)
	name := strings.Repeat("a.", 60) + "b"
	if got := s.Matching(name); len(got) != 0 {
		t.Errorf("matched %v", got)
	}
	if got := s.Matching(strings.Repeat("a.", 60) + "x"); len(got) != 1 {
		t.Errorf("did not match: %v", got)
	}
}

func TestNumbersWithUseNumber(t *testing.T) {
	s := mustParse(t, `rules: [{name: r, match: a, notify: [{receiver: id, type: t, payload: {m: "{{.data.n}} items"}}]}]`)
	dec := json.NewDecoder(strings.NewReader(`{"id": "u", "n": 1000000}`))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	out := mustRoute(t, s, rules.Event{Name: "a", Data: d})
	if got := payload(t, out[0])["m"]; got != "1000000 items" {
		t.Errorf("got %q", got)
	}
}
