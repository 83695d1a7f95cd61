package herald

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	service := Caller{Service: true}
	user := Caller{UserID: "u1"}
	cases := []struct {
		name   string
		n      NewNotification
		caller Caller
		code   Code
		field  string
	}{
		{"ok", NewNotification{ReceiverID: "a", Type: "t"}, service, "", ""},
		{"no receiver", NewNotification{Type: "t"}, service, CodeValidation, "receiverId"},
		{"blank type", NewNotification{ReceiverID: "a", Type: " \t"}, service, CodeValidation, "type"},
		{"257-byte type", NewNotification{ReceiverID: "a", Type: strings.Repeat("t", 257)}, service, CodeValidation, "type"},
		{"256-byte type", NewNotification{ReceiverID: "a", Type: strings.Repeat("t", 256)}, service, "", ""},
		{"NUL in receiver", NewNotification{ReceiverID: "a\x00b", Type: "t"}, service, CodeValidation, "receiverId"},
		{"invalid UTF-8 object", NewNotification{ReceiverID: "a", Type: "t", Object: "\xff"}, service, CodeValidation, "object"},
		{"invalid UTF-8 payload", NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage("{\"a\":\"\xff\"}")}, service, CodeValidation, "payload"},
		{"null payload", NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage("null")}, service, CodeValidation, "payload"},
		{"string payload", NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage(`"x"`)}, service, CodeValidation, "payload"},
		{"payload over limit", NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage(`{"x":"` + strings.Repeat("x", DefaultMaxPayload) + `"}`)}, service, CodeTooLarge, "payload"},
		{"unknown channel", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{"sms"}}, service, CodeBadRequest, "channels"},
		{"user as another sender", NewNotification{ReceiverID: "a", Type: "t", SenderID: "u2"}, user, CodeValidation, "senderId"},
		{"user as itself", NewNotification{ReceiverID: "a", Type: "t", SenderID: "u1"}, user, "", ""},
		{"long idempotency key", NewNotification{ReceiverID: "a", Type: "t", IdempotencyKey: strings.Repeat("k", 257)}, service, CodeValidation, "idempotencyKey"},
		// Only a service may make Herald send mail or signed webhooks.
		{"user asks for email", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelRealtime, ChannelEmail}}, user, CodeForbidden, "channels"},
		{"user asks for webhook", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelWebhook}}, user, CodeForbidden, "channels"},
		{"user asks for realtime", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelRealtime, ChannelRealtime}}, user, "", ""},
		{"user asks for an unknown channel", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{"sms", ChannelEmail}}, user, CodeBadRequest, "channels"},
		{"service asks for email and webhook", NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelEmail, ChannelWebhook}}, service, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.n.Validate(c.caller, ValidateOptions{})
			if ErrorCode(err) != c.code {
				t.Fatalf("code %q (%v), want %q", ErrorCode(err), err, c.code)
			}
			if err != nil && AsError(err).Field != c.field {
				t.Fatalf("field %q, want %q", AsError(err).Field, c.field)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	n := NewNotification{ReceiverID: "a", Type: "project.created", Channels: []Channel{ChannelRealtime, ChannelRealtime}}
	if err := n.Validate(Caller{UserID: "u1"}, ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n.Object != "project.created" || n.SenderID != "u1" || string(n.Payload) != "{}" ||
		len(n.Channels) != 1 || n.Channels[0] != ChannelRealtime || n.ByService {
		t.Fatalf("defaults: %+v", n)
	}
	s := NewNotification{ReceiverID: "a", Type: "t"}
	if err := s.Validate(Caller{Service: true}, ValidateOptions{}); err != nil || s.SenderID != DefaultSenderID ||
		len(s.Channels) != 1 || s.Channels[0] != ChannelRealtime || !s.ByService {
		t.Fatalf("service defaults: %+v %v", s, err)
	}
	d := NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelEmail, ChannelRealtime, ChannelEmail}}
	if err := d.Validate(Caller{Service: true}, ValidateOptions{}); err != nil ||
		len(d.Channels) != 2 || d.Channels[0] != ChannelEmail || d.Channels[1] != ChannelRealtime {
		t.Fatalf("channels without repeats: %+v %v", d, err)
	}
}

// TestValidateForbiddenChannelField: the refusal of a user's email channel names the
// field with the batch item's prefix, like every other field error.
func TestValidateForbiddenChannelField(t *testing.T) {
	n := NewNotification{ReceiverID: "a", Type: "t", Channels: []Channel{ChannelEmail}}
	err := n.Validate(Caller{UserID: "u1"}, ValidateOptions{FieldPrefix: "items[3]."})
	if e := AsError(err); err == nil || e.Code != CodeForbidden || e.Field != "items[3].channels" ||
		!strings.Contains(e.Message, "email") || !strings.Contains(e.Message, "API key") {
		t.Fatalf("got %v (field %q), want forbidden on items[3].channels", err, AsError(err).Field)
	}
}

func TestFingerprint(t *testing.T) {
	a := NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage(`{"x": 1}`)}
	b := NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage(`{"x":1}`)}
	c := NewNotification{ReceiverID: "a", Type: "t", Payload: json.RawMessage(`{"x":2}`)}
	for _, n := range []*NewNotification{&a, &b, &c} {
		if err := n.Validate(Caller{Service: true}, ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if string(a.Fingerprint()) != string(b.Fingerprint()) {
		t.Fatal("whitespace changed the fingerprint")
	}
	if string(a.Fingerprint()) == string(c.Fingerprint()) {
		t.Fatal("a different payload kept the fingerprint")
	}
}
