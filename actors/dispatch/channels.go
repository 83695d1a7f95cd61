package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/persistence"
)

// Contacts looks up how a user is reached.
type Contacts interface {
	Contact(ctx context.Context, userID string) (persistence.Contact, error)
}

// Email sends deliveries as e-mail. The address is the payload's "email" field when it
// is a string and a service created the notification (the delivery's ByService: an API
// key or a routing rule), else the receiver's contact (PUT /contacts/{userId}). The
// subject is the payload's "subject", "title" or "message", else the type; the text is
// the payload's "text", "message" or "body", else the payload as JSON. Rules set these
// fields with templates, so subject and body are templated like any payload.
type Email struct {
	Sender   *email.Sender
	Contacts Contacts
}

// Send implements Sender.
func (e Email) Send(ctx context.Context, d persistence.Delivery) error {
	n := &d.Notification
	var p map[string]any
	_ = json.Unmarshal(n.Payload, &p) // a stored payload is always a JSON object
	to := ""
	if d.ByService {
		to = field(p, "email")
	}
	if to == "" {
		c, err := e.Contacts.Contact(ctx, d.UserID)
		if err != nil {
			return fmt.Errorf("looking up the contact of %q: %w", d.UserID, err)
		}
		to = c.Email
	}
	if to == "" {
		return permanent(fmt.Sprintf("no email address for user %q: set one with PUT /contacts/{userId}, or have a service put \"email\" in the payload", d.UserID))
	}
	subject := first(field(p, "subject"), field(p, "title"), field(p, "message"), n.Type)
	text := first(field(p, "text"), field(p, "message"), field(p, "body"))
	if text == "" {
		b, _ := json.MarshalIndent(p, "", "  ")
		text = string(b)
	}
	return e.Sender.Send(ctx, email.Message{To: to, Subject: oneLine(subject), Text: text, ID: d.ID})
}

// Webhook posts deliveries to every configured URL, signed (Standard Webhooks). The
// body is {"type", "timestamp", "data": {"deliveryId", "notification"}}, type being
// notification.created, or notification.unread for an escalation. A failure at any URL
// fails the attempt, and a retry posts to every URL again, with the same webhook-id.
type Webhook struct {
	Sender *webhook.Sender
	URLs   []string
	Now    func() time.Time // default time.Now
}

type webhookBody struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      webhookData `json:"data"`
}

type webhookData struct {
	DeliveryID   string               `json:"deliveryId"`
	Notification *herald.Notification `json:"notification"`
}

// Send implements Sender.
func (w Webhook) Send(ctx context.Context, d persistence.Delivery) error {
	if len(w.URLs) == 0 {
		return permanent("no webhook URL is configured (HERALD_WEBHOOK_URLS)")
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	typ := "notification.created"
	if d.UnreadOnly {
		typ = "notification.unread"
	}
	body, err := json.Marshal(webhookBody{Type: typ, Timestamp: now().UTC(), Data: webhookData{DeliveryID: d.ID, Notification: &d.Notification}})
	if err != nil {
		return permanent("encoding the webhook body: " + err.Error())
	}
	for _, u := range w.URLs {
		if err := w.Sender.Send(ctx, u, d.ID, body); err != nil {
			return err
		}
	}
	return nil
}

func field(p map[string]any, k string) string {
	s, _ := p[k].(string)
	return s
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// oneLine keeps a subject on one line (a template may have produced line breaks).
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}
