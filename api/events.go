package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/events"
)

// maxEventBody bounds a POST /events body: the event's data is not a payload, but the
// payloads rendered from it are checked against the payload limit.
const maxEventBody = 256 << 10

type eventBody struct {
	Name           string          `json:"name"`
	TenantID       string          `json:"tenantId"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

type eventResponse struct {
	Notifications int                   `json:"notifications"`
	Replayed      bool                  `json:"replayed,omitempty"`
	Digested      int                   `json:"digested,omitempty"`
	Rules         []string              `json:"rules"`
	Data          []herald.Notification `json:"data"`
}

// postEvent is POST /events: a service ingests a domain event; the routing rules turn it
// into notifications, stored together before the 202.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, false, true)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	held, err := s.holdBody(w, r, maxEventBody)
	if err != nil {
		return err
	}
	defer s.bodies.release(held)
	var b eventBody
	if err := decodeBody(r, w, maxEventBody, &b); err != nil {
		return err
	}
	ev := events.Event{Name: b.Name, TenantID: b.TenantID, IdempotencyKey: b.IdempotencyKey}
	if err := checkEventField("tenantId", b.TenantID); err != nil {
		return err
	}
	if err := checkEventField("idempotencyKey", b.IdempotencyKey); err != nil {
		return err
	}
	if d := bytes.TrimSpace(b.Data); len(d) > 0 {
		if d[0] != '{' {
			return herald.FieldError("data", "data must be a JSON object")
		}
		dec := json.NewDecoder(bytes.NewReader(d))
		dec.UseNumber() // numbers print in messages as they were sent
		if err := dec.Decode(&ev.Data); err != nil {
			return herald.FieldError("data", "data must be a JSON object")
		}
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	res, err := s.events.Emit(r.Context(), ev)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, eventResponse{
		Notifications: len(res.Notifications),
		Replayed:      res.Replayed,
		Digested:      res.Digested,
		Rules:         nonNil(res.Rules),
		Data:          nonNil(res.Notifications),
	})
	return nil
}

// checkEventField applies the contract's limits for short strings to an optional field.
func checkEventField(field, v string) error {
	if len(v) > herald.MaxIDBytes {
		return herald.FieldError(field, "%s is longer than %d bytes", field, herald.MaxIDBytes)
	}
	return nil
}
