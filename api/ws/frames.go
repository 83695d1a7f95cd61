package ws

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/heraldhq/herald"
)

// The client → server events.
const (
	EventRefresh  = "refresh-unread"
	EventMarkRead = "mark-read"
	EventReadAll  = "mark-all-read"
	EventPing     = "ping"
)

// The codes of error frames (besides not_found and unavailable, which come from the
// operation a frame asked for).
const (
	CodeBadFrame     herald.Code = "bad_frame"
	CodeUnknownEvent herald.Code = "unknown_event"
)

// ClientFrame is a decoded client frame.
type ClientFrame struct {
	Event string
	ID    string // mark-read: the notification
}

// ParseClientFrame decodes one client frame: a JSON object {"event": "...", "data": ...}.
// Its error, a *herald.Error, is what the error frame says: bad_frame (not JSON, not an
// object), unknown_event, or validation_failed naming the missing or wrong field.
// Fields it does not know are ignored.
func ParseClientFrame(b []byte) (ClientFrame, error) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return ClientFrame{}, herald.Errorf(CodeBadFrame, "a frame must be a JSON object")
	}
	var raw struct {
		Event json.RawMessage `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return ClientFrame{}, herald.Errorf(CodeBadFrame, "a frame must be a JSON object")
	}
	var f ClientFrame
	if len(raw.Event) == 0 || string(raw.Event) == "null" {
		return f, herald.FieldError("event", "event is required")
	}
	if err := json.Unmarshal(raw.Event, &f.Event); err != nil {
		return f, herald.FieldError("event", "event must be a string")
	}
	switch f.Event {
	case EventRefresh, EventReadAll, EventPing:
		return f, nil
	case EventMarkRead:
		var data struct {
			ID *string `json:"id"`
		}
		if d := bytes.TrimLeft(raw.Data, " \t\r\n"); len(d) == 0 || d[0] != '{' {
			return f, herald.FieldError("data", `mark-read needs data {"id": "..."}`)
		}
		if err := json.Unmarshal(raw.Data, &data); err != nil {
			return f, herald.FieldError("data.id", "data.id must be a string")
		}
		if data.ID == nil || strings.TrimSpace(*data.ID) == "" {
			return f, herald.FieldError("data.id", "data.id is required")
		}
		f.ID = *data.ID
		return f, nil
	}
	return f, herald.Errorf(CodeUnknownEvent, "unknown event %q", truncate(f.Event, 64))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// pongFrame answers a client ping.
var pongFrame = []byte(`{"event":"pong","data":{}}`)

type errorData struct {
	Code    herald.Code `json:"code"`
	Message string      `json:"message"`
	Field   string      `json:"field,omitempty"`
}

// errorFrame encodes err as an error frame. Internal errors say no more than that.
func errorFrame(err error) []byte {
	e := herald.AsError(err)
	msg := e.Message
	if e.Code == herald.CodeInternal {
		msg = "internal error"
	}
	b, mErr := json.Marshal(struct {
		Event string    `json:"event"`
		Data  errorData `json:"data"`
	}{"error", errorData{Code: e.Code, Message: msg, Field: e.Field}})
	if mErr != nil {
		return []byte(`{"event":"error","data":{"code":"internal","message":"internal error"}}`)
	}
	return b
}
