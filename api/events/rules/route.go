package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// Route returns the notifications ev routes to: those of every rule matching ev.Name, in
// file order. No matching rule is an empty slice and a nil error.
//
// The result is all or nothing. The error is a *herald.Error:
//   - 422 (herald.CodeValidation) when the event has no name (or one over 256 bytes), when a receiver path is
//     missing from the data or is not an id or a list of ids (Field names it, e.g.
//     "data.project.ownerId" or "data.memberIds[3]"), when a template fails on this
//     event, say a field it reads is missing or null (Field names the data field when it
//     can tell, else "data"; Message names the rule and the rules field), when a
//     notification fails herald's own validation, or when the event routes to more than
//     herald.MaxBatch notifications;
//   - 413 (herald.CodeTooLarge) when a rendered payload is over the limit.
func (s *Set) Route(ev Event) ([]Routed, error) {
	if err := checkEventName(ev.Name); err != nil {
		return nil, err
	}
	if s == nil {
		return []Routed{}, nil
	}
	var segBuf [16]string
	var idxBuf [16]int
	matched := s.match(idxBuf[:0], ev.Name, splitName(segBuf[:0], ev.Name))
	if len(matched) == 0 {
		return []Routed{}, nil
	}
	r := &renderer{
		root: map[string]any{"name": ev.Name, "tenantId": ev.TenantID, "data": ev.Data},
		max:  s.payloadLimit(),
	}
	opts := herald.ValidateOptions{MaxPayload: r.max}
	var out []Routed
	for _, ri := range matched {
		rl := s.rules[ri]
		for _, t := range rl.targets {
			receivers, err := t.receivers(ev.Data)
			if err != nil {
				return nil, err
			}
			if len(receivers) == 0 {
				continue
			}
			if len(out)+len(receivers) > herald.MaxBatch {
				return nil, herald.FieldError(t.receiverField,
					"the event routes to more than %d notifications (rule %q, %s.receiver)", herald.MaxBatch, rl.name, t.field)
			}
			sender := ""
			if t.sender != nil {
				var rerr *renderError
				if sender, rerr = r.text(t.sender); rerr != nil {
					return nil, rl.renderFailed(rerr)
				}
			}
			payload := []byte("{}")
			if t.payload != nil {
				var rerr *renderError
				if payload, rerr = r.payload(t.payload); rerr != nil {
					return nil, rl.renderFailed(rerr)
				}
			}
			if out == nil {
				out = make([]Routed, 0, len(receivers))
			}
			// One backing array for the channels of the fan-out: Validate writes to them.
			nc := len(t.channels)
			chans := make([]herald.Channel, nc*len(receivers))
			// Each Routed gets its own copy of escalate and digest, from one allocation.
			var escs []Escalate
			var digs []Digest
			if t.escalate != nil {
				escs = make([]Escalate, len(receivers))
			}
			if t.digest != nil {
				digs = make([]Digest, len(receivers))
			}
			for i, rcv := range receivers {
				c := chans[i*nc : (i+1)*nc : (i+1)*nc]
				copy(c, t.channels)
				n := herald.NewNotification{
					ReceiverID: rcv,
					SenderID:   sender,
					Type:       t.typ,
					Object:     t.object,
					Payload:    payload,
					Channels:   c,
				}
				if ev.IdempotencyKey != "" {
					n.IdempotencyKey = deriveKey(ev.IdempotencyKey, rl.name, t.index, rcv)
				}
				if err := n.Validate(herald.Caller{Service: true}, opts); err != nil {
					e := *herald.AsError(err)
					e.Message = fmt.Sprintf("rule %q, %s: %s", rl.name, t.field, e.Message)
					return nil, &e
				}
				rt := Routed{Notification: n, Rule: rl.name}
				if t.escalate != nil {
					escs[i] = *t.escalate
					rt.Escalate = &escs[i]
				}
				if t.digest != nil {
					digs[i] = *t.digest
					rt.Digest = &digs[i]
				}
				out = append(out, rt)
			}
		}
	}
	if out == nil {
		return []Routed{}, nil
	}
	return out, nil
}

func checkEventName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return herald.FieldError("name", "name is required")
	case len(name) > herald.MaxIDBytes:
		return herald.FieldError("name", "name is longer than %d bytes", herald.MaxIDBytes)
	case !utf8.ValidString(name):
		return herald.FieldError("name", "name must be valid UTF-8")
	}
	return nil
}

func (rl *rule) renderFailed(e *renderError) error {
	if errors.Is(e.err, errTooLarge) {
		return &herald.Error{
			Code:    herald.CodeTooLarge,
			Message: fmt.Sprintf("rule %q, %s: the rendered payload is larger than the limit", rl.name, e.field),
			Field:   "payload",
		}
	}
	return &herald.Error{
		Code:    herald.CodeValidation,
		Message: fmt.Sprintf("rule %q, %s: %s", rl.name, e.field, e.cause()),
		Field:   e.dataField(),
		Err:     e.err,
	}
}

// receivers returns the distinct receiver ids at the target's path in data.
func (t *target) receivers(data map[string]any) ([]string, error) {
	var v any = data
	for i, seg := range t.receiver {
		m, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil, herald.FieldError(t.receiverField, "%s is missing", t.receiverField)
			}
			return nil, herald.FieldError(t.receiverField, "%s is missing: data.%s is not an object",
				t.receiverField, strings.Join(t.receiver[:i], "."))
		}
		if v, ok = m[seg]; !ok {
			return nil, herald.FieldError(t.receiverField, "%s is missing", t.receiverField)
		}
	}
	switch v := v.(type) {
	case string:
		if err := checkReceiver(t.receiverField, v); err != nil {
			return nil, err
		}
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				field := t.elemField(i)
				return nil, herald.FieldError(field, "%s must be a string id, not %s", field, jsonKind(e))
			}
			if !validReceiver(s) {
				return nil, checkReceiver(t.elemField(i), s)
			}
			out = append(out, s)
		}
		return dedupe(out), nil
	case []string:
		for i, s := range v {
			if !validReceiver(s) {
				return nil, checkReceiver(t.elemField(i), s)
			}
		}
		return dedupe(append([]string(nil), v...)), nil
	}
	return nil, herald.FieldError(t.receiverField, "%s must be a string id or a list of string ids, not %s",
		t.receiverField, jsonKind(v))
}

func (t *target) elemField(i int) string {
	return t.receiverField + "[" + strconv.Itoa(i) + "]"
}

func validReceiver(id string) bool { return checkReceiver("", id) == nil }

// checkReceiver checks an id as herald.NewNotification.Validate does, naming the data
// field it came from.
func checkReceiver(field, id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return herald.FieldError(field, "%s must not be blank", field)
	case len(id) > herald.MaxIDBytes:
		return herald.FieldError(field, "%s is longer than %d bytes", field, herald.MaxIDBytes)
	case !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0:
		return herald.FieldError(field, "%s must be valid UTF-8 without NUL characters", field)
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return "a number"
}

// dedupe removes repeated ids in place, keeping the first of each.
func dedupe(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	if len(ids) <= 16 {
		out := ids[:0]
		for _, id := range ids {
			dup := false
			for _, prev := range out {
				if prev == id {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, id)
			}
		}
		return out
	}
	seen := make(map[string]struct{}, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// deriveKey is the idempotency key of one notification of an event: the same inputs
// always give the same key, and any change in one of them gives another.
func deriveKey(eventKey, rule string, target int, receiver string) string {
	var buf [512]byte
	b := buf[:0]
	for _, f := range [...]string{eventKey, rule, receiver} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(target))
	sum := sha256.Sum256(b)
	var out [len(keyPrefix) + 2*sha256.Size]byte
	copy(out[:], keyPrefix)
	hex.Encode(out[len(keyPrefix):], sum[:])
	return string(out[:])
}

const keyPrefix = "evt-"
