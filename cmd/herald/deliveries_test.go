package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/mailtest"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
)

// mailbox is a real SMTP server on loopback that records Message-IDs by recipient.
type mailbox struct {
	mu   sync.Mutex
	ids  map[string]int // Message-ID → times received
	to   map[string]string
	subj map[string]string
}

func startMailbox(t *testing.T) (*mailbox, string) {
	t.Helper()
	mb := &mailbox{ids: map[string]int{}, to: map[string]string{}, subj: map[string]string{}}
	return mb, mailtest.Serve(t, mb)
}

func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }

type mailSession struct {
	mb *mailbox
	to string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = to
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	id := m.Header.Get("Message-ID")
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	s.mb.ids[id]++
	s.mb.to[id] = s.to
	s.mb.subj[id] = m.Header.Get("Subject")
	return nil
}
func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

func (mb *mailbox) distinct() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.ids)
}

// hook is a real webhook receiver that verifies signatures, fails the first failFirst
// requests with 503, and records delivery ids.
type hook struct {
	mu        sync.Mutex
	secret    []byte
	hangFirst int // the first hangFirst requests get no answer until the client gives up
	failFirst int
	requests  int
	ids       map[string]int
	bad       []string
}

func startHook(t *testing.T, secret []byte, failFirst int) (*hook, string) {
	h := &hook{secret: secret, failFirst: failFirst, ids: map[string]int{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/hooks/herald"
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests++
	if h.requests <= h.hangFirst {
		h.mu.Unlock()
		<-r.Context().Done()
		return
	}
	defer h.mu.Unlock()
	if err := webhook.Verify(h.secret, r.Header, body, time.Now(), 0); err != nil {
		h.bad = append(h.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if h.requests <= h.failFirst {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var b struct {
		Type string
		Data struct {
			DeliveryID   string
			Notification struct{ ID string }
		}
	}
	if json.Unmarshal(body, &b) != nil || b.Data.DeliveryID != r.Header.Get("webhook-id") || b.Data.Notification.ID == "" {
		h.bad = append(h.bad, "unexpected body "+string(body))
	}
	h.ids[r.Header.Get("webhook-id")]++
	w.WriteHeader(http.StatusNoContent)
}

func (h *hook) snapshot() (requests, distinct int, bad []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests, len(h.ids), append([]string(nil), h.bad...)
}

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestDeliveriesSurviveKill: email and webhook deliveries leave through the durable
// outbox; Herald is killed with SIGKILL while webhook attempts are failing and being
// retried; after a restart every delivery reaches its receiver, which sees each id
// once however many attempts it took. A delivery that cannot be made (no address)
// becomes a dead letter, and a retry after fixing the contact delivers it.
func TestDeliveriesSurviveKill(t *testing.T) {
	bin := buildHerald(t)
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			mb, smtpAddr := startMailbox(t)
			secret, err := webhook.ParseSecret(hookSecret)
			if err != nil {
				t.Fatal(err)
			}
			h, hookURL := startHook(t, secret, 15)
			env := []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret2, "HERALD_API_KEYS=k1",
				"HERALD_SMTP_ADDR=" + smtpAddr, "HERALD_SMTP_FROM=Herald <herald@example.com>", "HERALD_SMTP_STARTTLS=never",
				"HERALD_WEBHOOK_URLS=" + hookURL, "HERALD_WEBHOOK_SECRET=" + hookSecret,
				"HERALD_DELIVERY_POLL=50ms", "HERALD_DELIVERY_BACKOFF=50ms", "HERALD_DELIVERY_BACKOFF_MAX=200ms",
				"HERALD_DELIVERY_MAX_ATTEMPTS=100", "HERALD_DELIVERY_TIMEOUT=2s", "HERALD_LOG_LEVEL=error"}
			if name == "embedded" {
				env = append(env, "HERALD_DATA_DIR="+t.TempDir())
			} else {
				env = append(env, "HERALD_DATABASE_URL="+pgtest.Shared(t).NewDatabase(t))
			}
			p := startHerald(t, bin, env)
			const n = 20
			items := make([]map[string]any, n)
			for i := range items {
				items[i] = map[string]any{"receiverId": fmt.Sprint("user-", i%4), "type": "project.updated",
					"channels": []string{"realtime", "email", "webhook"},
					"payload":  map[string]any{"email": fmt.Sprintf("user-%d@example.com", i%4), "subject": fmt.Sprint("Update ", i), "message": "Atlas changed"}}
			}
			body, _ := json.Marshal(map[string]any{"items": items})
			if code, b := request(t, "POST", p.base+"/notifications/batch", "k1", string(body)); code != 201 {
				t.Fatalf("batch: %d %s", code, b)
			}
			// Kill it while the webhook receiver is still refusing.
			poll.Until(t, "failing webhook attempts", 30*time.Second, func() bool { r, _, _ := h.snapshot(); return r >= 5 })
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()

			p = startHerald(t, bin, env)
			poll.Until(t, "every delivery", 60*time.Second, func() bool {
				_, hooks, _ := h.snapshot()
				return hooks == n && mb.distinct() == n
			})
			requests, _, bad := h.snapshot()
			if len(bad) > 0 {
				t.Fatalf("the webhook receiver saw bad requests: %q", bad)
			}
			t.Logf("%d webhook requests for %d deliveries (15 refused); %d distinct emails", requests, n, mb.distinct())
			mb.mu.Lock()
			for id, to := range mb.to {
				if !strings.HasPrefix(to, "user-") || !strings.HasPrefix(mb.subj[id], "Update ") {
					t.Errorf("email %s to %q subject %q", id, to, mb.subj[id])
				}
			}
			mb.mu.Unlock()

			// No address: a dead letter at once (permanent), listed, and delivered by a
			// retry once the contact is set.
			code, b := request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"nomail","type":"t","channels":["email"]}`)
			if code != 201 {
				t.Fatalf("create: %d %s", code, b)
			}
			var dead struct {
				Data []struct {
					ID, State, LastError string
					Attempts             int
				}
			}
			poll.Until(t, "the dead letter", 30*time.Second, func() bool {
				code, b := request(t, "GET", p.base+"/deliveries?state=dead", "k1", "")
				return code == 200 && json.Unmarshal(b, &dead) == nil && len(dead.Data) == 1
			})
			if d := dead.Data[0]; d.Attempts != 1 || !strings.Contains(d.LastError, "no email address") {
				t.Fatalf("dead letter: %+v", d)
			}
			if code, b := request(t, "PUT", p.base+"/contacts/nomail", "k1", `{"email":"found@example.com"}`); code != 200 {
				t.Fatalf("put contact: %d %s", code, b)
			}
			if code, b := request(t, "POST", p.base+"/deliveries/"+dead.Data[0].ID+"/retry", "k1", ""); code != 200 {
				t.Fatalf("retry: %d %s", code, b)
			}
			poll.Until(t, "the retried email", 30*time.Second, func() bool {
				mb.mu.Lock()
				defer mb.mu.Unlock()
				for _, to := range mb.to {
					if to == "found@example.com" {
						return true
					}
				}
				return false
			})
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if err := p.cmd.Wait(); err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
		})
	}
}

const secret2 = "deliveries-secret-0123456789abcdef"

// TestEscalation: a rule emails a notification only if it is still unread after a
// delay; reading it on any device before then cancels the email.
func TestEscalation(t *testing.T) {
	bin := buildHerald(t)
	mb, smtpAddr := startMailbox(t)
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
  - name: nudge
    match: project.updated
    notify:
      - receiver: memberIds
        type: project.updated
        escalate: {after: 2s, channel: email}
        payload: {email: "{{.data.memberEmail}}", message: "Atlas changed"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret2, "HERALD_API_KEYS=k1",
		"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_RULES=" + rules, "HERALD_DELIVERY_POLL=50ms",
		"HERALD_SMTP_ADDR=" + smtpAddr, "HERALD_SMTP_FROM=herald@example.com", "HERALD_SMTP_STARTTLS=never", "HERALD_LOG_LEVEL=error"})
	code, b := request(t, "POST", p.base+"/events", "k1",
		`{"name":"project.updated","data":{"memberIds":["reader","ignorer"],"memberEmail":"member@example.com"}}`)
	if code != 202 {
		t.Fatalf("event: %d %s", code, b)
	}
	var a struct {
		Data []struct{ ID, ReceiverID string }
	}
	_ = json.Unmarshal(b, &a)
	reader, _ := auth.SignUserToken([]byte(secret2), "reader", "", time.Hour)
	for _, n := range a.Data {
		if n.ReceiverID == "reader" {
			if code, b := request(t, "PATCH", p.base+"/notifications/"+n.ID+"/read", reader, ""); code != 200 {
				t.Fatalf("read: %d %s", code, b)
			}
		}
	}
	poll.Until(t, "the escalation email", 30*time.Second, func() bool { return mb.distinct() == 1 })
	var cancelled struct{ Data []struct{ UserID string } }
	poll.Until(t, "the cancelled escalation", 30*time.Second, func() bool {
		code, b := request(t, "GET", p.base+"/deliveries?state=cancelled", "k1", "")
		return code == 200 && json.Unmarshal(b, &cancelled) == nil && len(cancelled.Data) == 1
	})
	if cancelled.Data[0].UserID != "reader" {
		t.Fatalf("cancelled escalation for %q, want reader", cancelled.Data[0].UserID)
	}
	var sent struct{ Data []struct{ UserID string } }
	// The email arrives before its outcome is recorded.
	poll.Until(t, "the sent escalation recorded", 30*time.Second, func() bool {
		code, b := request(t, "GET", p.base+"/deliveries?state=sent", "k1", "")
		return code == 200 && json.Unmarshal(b, &sent) == nil && len(sent.Data) == 1
	})
	if sent.Data[0].UserID != "ignorer" {
		t.Fatalf("sent escalation for %q, want ignorer", sent.Data[0].UserID)
	}
}

// TestDigestSurvivesKill: notifications a rule groups are held in a durable digest;
// Herald is killed with SIGKILL before the window ends, and after a restart the digest
// still becomes one notification with the count and the items.
func TestDigestSurvivesKill(t *testing.T) {
	bin := buildHerald(t)
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			rules := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(rules, []byte(`rules:
  - name: updates
    match: project.updated
    notify:
      - receiver: memberId
        type: project.updated
        digest: {window: 3s}
        payload: {message: "{{.data.title}} was updated"}
`), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret2, "HERALD_API_KEYS=k1",
				"HERALD_RULES=" + rules, "HERALD_DELIVERY_POLL=50ms", "HERALD_LOG_LEVEL=error"}
			if name == "embedded" {
				env = append(env, "HERALD_DATA_DIR="+t.TempDir())
			} else {
				env = append(env, "HERALD_DATABASE_URL="+pgtest.Shared(t).NewDatabase(t))
			}
			p := startHerald(t, bin, env)
			for _, title := range []string{"Atlas", "Borealis", "Cygnus"} {
				code, b := request(t, "POST", p.base+"/events", "k1", `{"name":"project.updated","data":{"memberId":"mia","title":"`+title+`"}}`)
				if code != 202 || !strings.Contains(string(b), `"digested":1`) {
					t.Fatalf("event: %d %s", code, b)
				}
			}
			user, _ := auth.SignUserToken([]byte(secret2), "mia", "", time.Hour)
			if code, b := request(t, "GET", p.base+"/notifications/unread", user, ""); code != 200 || !strings.Contains(string(b), `"total":0`) {
				t.Fatalf("held notifications were stored: %d %s", code, b)
			}
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()

			p = startHerald(t, bin, env)
			var page struct {
				Total int
				Data  []struct{ Payload json.RawMessage }
			}
			poll.Until(t, "the digest", 30*time.Second, func() bool {
				code, b := request(t, "GET", p.base+"/notifications/unread", user, "")
				return code == 200 && json.Unmarshal(b, &page) == nil && page.Total > 0
			})
			var d struct {
				Count   int
				Items   []struct{ Message string }
				Message string
			}
			if page.Total != 1 || json.Unmarshal(page.Data[0].Payload, &d) != nil || d.Count != 3 || len(d.Items) != 3 ||
				d.Message != "Atlas was updated (and 2 more)" {
				t.Fatalf("digest: total %d payload %s", page.Total, page.Data[0].Payload)
			}
		})
	}
}

// TestHangingWebhookIsRetried: an endpoint that never answers is given up on after the
// attempt's timeout and retried; the delivery lands once it answers.
func TestHangingWebhookIsRetried(t *testing.T) {
	bin := buildHerald(t)
	secret, _ := webhook.ParseSecret(hookSecret)
	h := &hook{secret: secret, hangFirst: 2, ids: map[string]int{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p := startHerald(t, bin, []string{"HERALD_ADDR=127.0.0.1:0", "HERALD_JWT_SECRET=" + secret2, "HERALD_API_KEYS=k1",
		"HERALD_DATA_DIR=" + t.TempDir(), "HERALD_WEBHOOK_URLS=" + srv.URL, "HERALD_WEBHOOK_SECRET=" + hookSecret,
		"HERALD_DELIVERY_TIMEOUT=300ms", "HERALD_DELIVERY_POLL=50ms", "HERALD_DELIVERY_BACKOFF=50ms", "HERALD_LOG_LEVEL=error"})
	if code, b := request(t, "POST", p.base+"/notifications", "k1", `{"receiverId":"u","type":"t","channels":["webhook"]}`); code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	poll.Until(t, "the delivery after two hung attempts", 30*time.Second, func() bool { _, n, _ := h.snapshot(); return n == 1 })
	var sent struct{ Data []struct{ Attempts int } }
	poll.Until(t, "the outcome recorded", 30*time.Second, func() bool {
		code, b := request(t, "GET", p.base+"/deliveries?state=sent", "k1", "")
		return code == 200 && json.Unmarshal(b, &sent) == nil && len(sent.Data) == 1
	})
	if sent.Data[0].Attempts != 3 {
		t.Fatalf("attempts = %d, want 3 (two timeouts, then delivered)", sent.Data[0].Attempts)
	}
}
