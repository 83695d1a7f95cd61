package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/mailtest"
	"github.com/heraldhq/herald/internal/pgtest"
)

// signalling wraps the mailbox so that each message received is also an event on got.
type signalling struct {
	mb  *mailbox
	got chan struct{}
}

func (s signalling) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &signallingSession{mailSession: mailSession{mb: s.mb}, got: s.got}, nil
}

type signallingSession struct {
	mailSession
	got chan struct{}
}

func (s *signallingSession) Data(r io.Reader) error {
	err := s.mailSession.Data(r)
	s.got <- struct{}{}
	return err
}

// startSignallingMailbox is startMailbox with an event per message received.
func startSignallingMailbox(t *testing.T) (*mailbox, <-chan struct{}, string) {
	t.Helper()
	mb := &mailbox{ids: map[string]int{}, to: map[string]string{}, subj: map[string]string{}}
	got := make(chan struct{}, 64)
	return mb, got, mailtest.Serve(t, signalling{mb: mb, got: got})
}

// startSignallingHook is startHook (accepting every request) with an event per request.
func startSignallingHook(t *testing.T, secret []byte) (*hook, <-chan struct{}, string) {
	t.Helper()
	h := &hook{secret: secret, ids: map[string]int{}}
	got := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return h, got, srv.URL + "/hooks/herald"
}

func await(t *testing.T, what string, got <-chan struct{}) {
	t.Helper()
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestUserCannotSendEmailOrWebhooks: through the real binary, on both stores, a user
// token asking for the email or webhook channel (with an address of the attacker's in
// the payload) gets 403 naming channels, and nothing is stored; a user cannot post
// events either. A service's control notification then reaches both sinks, and they
// receive exactly it: no mail to the attacker's address, no other webhook.
func TestUserCannotSendEmailOrWebhooks(t *testing.T) {
	bin := buildHerald(t)
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			mb, mailed, smtpAddr := startSignallingMailbox(t)
			secret, err := webhook.ParseSecret(hookSecret)
			if err != nil {
				t.Fatal(err)
			}
			h, hooked, hookURL := startSignallingHook(t, secret)
			env := []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret2, "HERALD_API_KEYS=k1",
				"HERALD_SMTP_ADDR=" + smtpAddr, "HERALD_SMTP_FROM=Herald <herald@example.com>", "HERALD_SMTP_STARTTLS=never",
				"HERALD_WEBHOOK_URLS=" + hookURL, "HERALD_WEBHOOK_SECRET=" + hookSecret,
				"HERALD_DELIVERY_POLL=50ms", "HERALD_LOG_LEVEL=error"}
			if name == "embedded" {
				env = append(env, "HERALD_DATA_DIR="+t.TempDir())
			} else {
				env = append(env, "HERALD_DATABASE_URL="+pgtest.Shared(t).NewDatabase(t))
			}
			p := startHerald(t, bin, env)
			mallory, _ := auth.SignUserToken([]byte(secret2), "mallory", "", time.Hour)
			victim, _ := auth.SignUserToken([]byte(secret2), "victim", "", time.Hour)

			for _, chans := range []string{`["email"]`, `["webhook"]`, `["realtime","email","webhook"]`} {
				body := `{"receiverId":"victim","type":"account.security","channels":` + chans +
					`,"payload":{"email":"attacker@evil.example","subject":"Your password was reset","text":"Sign in at https://evil.example"}}`
				code, b := request(t, "POST", p.base+"/notifications", mallory, body)
				var e struct {
					Error struct{ Code, Message, Field string }
				}
				if code != 403 || json.Unmarshal(b, &e) != nil || e.Error.Code != "forbidden" || e.Error.Field != "channels" || e.Error.Message == "" {
					t.Fatalf("user create with channels %s: %d %s, want 403 forbidden on channels", chans, code, b)
				}
			}
			if code, b := request(t, "POST", p.base+"/events", mallory, `{"name":"project.updated","data":{}}`); code != 403 {
				t.Fatalf("user event: %d %s, want 403", code, b)
			}
			// Nothing was stored: no notification, no event, no delivery.
			if code, b := request(t, "GET", p.base+"/notifications/unread", victim, ""); code != 200 || !jsonHas(t, b, "total", 0.0) {
				t.Fatalf("victim's unread: %d %s", code, b)
			}
			var events struct{ Data []any }
			if code, b := request(t, "GET", p.base+"/notifications/events?since=0", victim, ""); code != 200 || json.Unmarshal(b, &events) != nil || len(events.Data) != 0 {
				t.Fatalf("victim's events: %d %s", code, b)
			}

			// The control: a service's notification through both channels.
			code, b := request(t, "POST", p.base+"/notifications", "k1",
				`{"receiverId":"carol","type":"t","channels":["email","webhook"],"payload":{"email":"carol@example.com","subject":"control"}}`)
			var control struct{ ID string }
			if code != 201 || json.Unmarshal(b, &control) != nil || control.ID == "" {
				t.Fatalf("service create: %d %s", code, b)
			}
			await(t, "the control email", mailed)
			await(t, "the control webhook", hooked)

			mb.mu.Lock()
			if len(mb.ids) != 1 {
				t.Errorf("the SMTP server received %d messages, want only the control: %v", len(mb.ids), mb.to)
			}
			for id, to := range mb.to {
				if to != "carol@example.com" || mb.subj[id] != "control" || mb.ids[id] != 1 {
					t.Errorf("message %s to %q subject %q (%d times), want the control to carol@example.com", id, to, mb.subj[id], mb.ids[id])
				}
			}
			mb.mu.Unlock()
			if requests, distinct, bad := h.snapshot(); requests != 1 || distinct != 1 || len(bad) != 0 {
				t.Fatalf("the webhook receiver got %d requests (%d deliveries, bad: %q), want only the control", requests, distinct, bad)
			}
			// Every delivery Herald holds, in any state, is one of the control's. (A row can
			// move from pending to sent between two listings: count ids, not rows.)
			rows := map[string]bool{}
			for _, state := range []string{"pending", "sent", "dead", "cancelled"} {
				var ds struct {
					Data []struct{ ID, NotificationID string }
				}
				code, b := request(t, "GET", p.base+"/deliveries?state="+state, "k1", "")
				if code != 200 || json.Unmarshal(b, &ds) != nil {
					t.Fatalf("deliveries %s: %d %s", state, code, b)
				}
				for _, d := range ds.Data {
					if d.NotificationID != control.ID {
						t.Fatalf("a %s delivery of notification %s, not the control %s", state, d.NotificationID, control.ID)
					}
					rows[d.ID] = true
				}
			}
			if len(rows) != 2 {
				t.Fatalf("%d deliveries, want the control's two", len(rows))
			}
		})
	}
}

// jsonHas reports whether the JSON object b has key k equal to v.
func jsonHas(t *testing.T, b []byte, k string, v any) bool {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m[k] == v
}
