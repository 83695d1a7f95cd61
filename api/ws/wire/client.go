package wire

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/heraldhq/herald"
)

// ClientFrame is a decoded client frame.
type ClientFrame struct {
	Event ClientEvent
	ID    string // mark-read: the notification
	Ref   string // the client's name for the frame, echoed by the error frame it causes
}

// MaxRef is the longest ref a client frame may carry, in bytes.
const MaxRef = 64

// ParseClientFrame decodes one client frame: a JSON object {"event": "...", "data": ...}.
// Its error, a *herald.Error, is what the error frame says: bad_frame (not JSON, not an
// object), unknown_event, or validation_failed naming the missing or wrong field.
// Fields it does not know are ignored. A frame's "ref" (a string of at most MaxRef
// bytes) is kept in the frame even when the frame fails further on, so that its error
// frame can echo it; a ref that is not such a string is validation_failed (field ref).
func ParseClientFrame(b []byte) (ClientFrame, error) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return ClientFrame{}, herald.Errorf(herald.CodeBadFrame, "a frame must be a JSON object")
	}
	var raw struct {
		Event json.RawMessage `json:"event"`
		Data  json.RawMessage `json:"data"`
		Ref   json.RawMessage `json:"ref"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return ClientFrame{}, herald.Errorf(herald.CodeBadFrame, "a frame must be a JSON object")
	}
	var f ClientFrame
	if len(raw.Ref) > 0 && string(raw.Ref) != "null" {
		if json.Unmarshal(raw.Ref, &f.Ref) != nil || len(f.Ref) > MaxRef {
			f.Ref = ""
			return f, herald.FieldError("ref", "ref must be a string of at most 64 bytes")
		}
	}
	if len(raw.Event) == 0 || string(raw.Event) == "null" {
		return f, herald.FieldError("event", "event is required")
	}
	if err := json.Unmarshal(raw.Event, &f.Event); err != nil {
		return f, herald.FieldError("event", "event must be a string")
	}
	switch f.Event {
	case EventRefresh, EventMarkAllRead, EventPing:
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
	return f, herald.Errorf(herald.CodeUnknownEvent, "unknown event %q", herald.Truncate(string(f.Event), 64))
}
