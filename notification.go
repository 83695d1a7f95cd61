package herald

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Channel is a way a notification reaches its receiver beyond storage.
type Channel string

// The channels of the contract. A notification is always stored before any channel sees it.
const (
	ChannelRealtime Channel = "realtime"
	ChannelEmail    Channel = "email"
	ChannelWebhook  Channel = "webhook"
)

// Valid reports whether c is one of the contract's channels.
func (c Channel) Valid() bool {
	return c == ChannelRealtime || c == ChannelEmail || c == ChannelWebhook
}

// Limits of the contract.
const (
	MaxIDBytes        = 256      // receiverId, senderId, type, object, idempotencyKey
	DefaultMaxPayload = 16 << 10 // bytes of payload as sent
	MaxBatch          = 1000     // notifications in one batch create
	DefaultSenderID   = "system" // senderId of a service caller that sets none
)

// Notification is a stored notification as the contract shows it.
type Notification struct {
	ID         string          `json:"id"`
	Object     string          `json:"object"`
	ReceiverID string          `json:"receiverId"`
	SenderID   string          `json:"senderId"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
	Channels   []Channel       `json:"channels"`
	CreatedAt  time.Time       `json:"createdAt"`
	ReadAt     *time.Time      `json:"readAt"`
	Seq        int64           `json:"seq"`
}

// Unread reports whether n has not been read.
func (n *Notification) Unread() bool { return n.ReadAt == nil }

// NewNotification is what a caller asks to create. Validate fills the defaults.
type NewNotification struct {
	ReceiverID     string          `json:"receiverId"`
	SenderID       string          `json:"senderId,omitempty"`
	Type           string          `json:"type"`
	Object         string          `json:"object,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Channels       []Channel       `json:"channels,omitempty"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	// ByService is set by Validate: the caller was a service. Idempotency keys of users
	// and of services are apart even when a service sends as a user's id; only a service
	// may ask for the email and webhook channels; and the outbox rows of the notification
	// record it (persistence.Delivery.ByService), since an e-mail goes to the payload's
	// "email" address only for a notification a service created.
	ByService bool `json:"-"`
	// Escalate, set by routing rules, also sends the notification through another
	// channel if it is still unread after a while. Not part of the wire format.
	Escalate *Escalation `json:"-"`
	// Digest, set by routing rules, holds the notification back to be grouped with the
	// others of the same receiver, type and rule over a window. Not part of the wire format.
	Digest *Digest `json:"-"`
}

// Digest groups notifications of one receiver, type and rule: the first opens a window
// of Window, and when it ends one notification with the count and the items is stored
// instead of each.
type Digest struct {
	Rule   string
	Window time.Duration
}

// Escalation sends a notification through Channel (email or webhook) when it is still
// unread After its creation; reading it before then, on any device, cancels that.
type Escalation struct {
	After   time.Duration
	Channel Channel
}

// IdempotencyScope returns the key under which IdempotencyKey is unique for this
// caller, together with SenderID: a user's keys, and the keys a service sends as each
// senderId, never meet.
func (n *NewNotification) IdempotencyScope() string {
	if n.IdempotencyKey == "" {
		return ""
	}
	if n.ByService {
		return "s:" + n.IdempotencyKey
	}
	return "u:" + n.IdempotencyKey
}

// Caller says who asks for a change: a user (by id) or a service.
type Caller struct {
	UserID  string // set for a user caller
	Service bool   // true for a service (API key) caller
}

// ValidateOptions tunes Validate. The zero value means the contract's defaults.
type ValidateOptions struct {
	MaxPayload  int    // bytes; 0 means DefaultMaxPayload
	FieldPrefix string // prefixed to Error.Field, e.g. "items[3]."
}

// Validate checks n as the contract says and fills its defaults: senderId from the
// caller, object from type, payload {} and channels ["realtime"]. It returns an *Error
// naming the field that failed. A user caller asking for the email or webhook channel
// is refused with forbidden on channels: those channels send from the operator's name
// (its mail sender, its webhook signature), so only a service may ask for them.
func (n *NewNotification) Validate(c Caller, o ValidateOptions) error {
	max := o.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	p := o.FieldPrefix
	n.ByService = c.Service
	if err := checkID(p+"receiverId", n.ReceiverID, true); err != nil {
		return err
	}
	if err := checkID(p+"type", n.Type, true); err != nil {
		return err
	}
	if err := checkID(p+"object", n.Object, false); err != nil {
		return err
	}
	if n.Object == "" {
		n.Object = n.Type
	}
	switch {
	case c.Service:
		if err := checkID(p+"senderId", n.SenderID, false); err != nil {
			return err
		}
		if n.SenderID == "" {
			n.SenderID = DefaultSenderID
		}
	default:
		if n.SenderID != "" && n.SenderID != c.UserID {
			return FieldError(p+"senderId", "senderId must be the caller's own id or absent")
		}
		n.SenderID = c.UserID
	}
	if err := checkID(p+"idempotencyKey", n.IdempotencyKey, false); err != nil {
		return err
	}
	switch {
	case n.Payload == nil:
		n.Payload = json.RawMessage("{}")
	case len(n.Payload) > max:
		return &Error{Code: CodeTooLarge, Message: "payload is larger than the limit", Field: p + "payload"}
	default:
		t := bytes.TrimLeft(n.Payload, " \t\r\n")
		if len(t) == 0 || t[0] != '{' || !json.Valid(n.Payload) {
			return FieldError(p+"payload", "payload must be a JSON object")
		}
		if !utf8.Valid(n.Payload) {
			return FieldError(p+"payload", "payload must be valid UTF-8")
		}
	}
	if len(n.Channels) == 0 {
		n.Channels = []Channel{ChannelRealtime}
	} else {
		seen := 0
		for i, ch := range n.Channels {
			if !ch.Valid() {
				return &Error{Code: CodeBadRequest, Message: "unknown channel " + quote(string(ch)), Field: p + "channels"}
			}
			if !c.Service && ch != ChannelRealtime {
				return &Error{Code: CodeForbidden, Field: p + "channels",
					Message: "channel " + quote(string(ch)) + " is for services: only an API key may ask for the email and webhook channels"}
			}
			dup := false
			for _, prev := range n.Channels[:seen] {
				dup = dup || prev == ch
			}
			if !dup {
				n.Channels[seen] = n.Channels[i]
				seen++
			}
		}
		n.Channels = n.Channels[:seen]
	}
	return nil
}

func checkID(field, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return FieldError(field, "%s is required", lastPart(field))
	case len(v) > MaxIDBytes:
		return FieldError(field, "%s is longer than %d bytes", lastPart(field), MaxIDBytes)
	case v != "" && strings.TrimSpace(v) == "":
		return FieldError(field, "%s must not be blank", lastPart(field))
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return FieldError(field, "%s must be valid UTF-8 without NUL characters", lastPart(field))
	}
	return nil
}

func lastPart(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

func quote(s string) string { return string(AppendJSONString(nil, s, false)) }

// Fingerprint identifies the content of a validated NewNotification, so that a replayed
// idempotency key can be told apart from a key reused with a different body.
func (n *NewNotification) Fingerprint() []byte {
	h := sha256.New()
	var l [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(l[:], uint64(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	field([]byte(n.ReceiverID))
	field([]byte(n.SenderID))
	field([]byte(n.Type))
	field([]byte(n.Object))
	var compact bytes.Buffer
	if json.Compact(&compact, n.Payload) == nil {
		field(compact.Bytes())
	} else {
		field(n.Payload)
	}
	for _, c := range n.Channels {
		field([]byte(c))
	}
	return h.Sum(nil)
}
