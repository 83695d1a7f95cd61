package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/heraldhq/herald"
)

// status maps each error code of the contract to its HTTP status. It is the only place
// that does.
func status(code herald.Code) int {
	switch code {
	case herald.CodeBadRequest, herald.CodeBadFrame, herald.CodeUnknownEvent:
		return http.StatusBadRequest
	case herald.CodeUnauthorized:
		return http.StatusUnauthorized
	case herald.CodeForbidden:
		return http.StatusForbidden
	case herald.CodeNotFound:
		return http.StatusNotFound
	case herald.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case herald.CodeIdempotencyConflict:
		return http.StatusConflict
	case herald.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case herald.CodeValidation:
		return http.StatusUnprocessableEntity
	case herald.CodeRateLimited:
		return http.StatusTooManyRequests
	case herald.CodeUnavailable, herald.CodeOutcomeUnknown:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorJSON `json:"error"`
}

type errorJSON struct {
	Code    herald.Code `json:"code"`
	Message string      `json:"message"`
	Field   string      `json:"field,omitempty"`
}

// writeError sends err as the contract's error JSON. Server-side failures (a 5xx with a
// cause, and internal errors) are logged, causes never sent; a 5xx without a cause is a
// refusal the server chose (shutting down, a budget full), counted by its metric rather
// than logged per request.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := herald.AsError(err)
	code := status(e.Code)
	if code >= 500 && (e.Err != nil || e.Code == herald.CodeInternal) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "err", err)
	}
	msg := e.Message
	if e.Code == herald.CodeInternal {
		msg = "internal error"
	}
	if e.Code == herald.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	}
	writeJSON(w, code, errorBody{Error: errorJSON{Code: e.Code, Message: msg, Field: e.Field}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	writeRaw(w, code, b)
}

// writeNotifications answers {"data": [notifications]} without reflection: the batch
// create's answer, on the hot path of every service that publishes in batches.
func writeNotifications(w http.ResponseWriter, code int, ns []herald.Notification) {
	size := 16
	for i := range ns {
		size += 320 + len(ns[i].Payload)
	}
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Grow(size)
	b := buf.AvailableBuffer()
	b = append(b, `{"data":[`...)
	for i := range ns {
		if i > 0 {
			b = append(b, ',')
		}
		b = ns[i].AppendJSON(b)
	}
	b = append(b, "]}"...)
	writeRaw(w, code, b)
	*buf = *bytes.NewBuffer(b[:0]) // the pool keeps the array, grown or not
}

// writeNotification answers one notification without reflection (and without
// encoding/json's check of a Marshaler's output): the single create's answer.
func writeNotification(w http.ResponseWriter, code int, n *herald.Notification) {
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Grow(320 + len(n.Payload))
	b := n.AppendJSON(buf.AvailableBuffer())
	writeRaw(w, code, b)
	*buf = *bytes.NewBuffer(b[:0]) // the pool keeps the array, grown or not
}

// The values of the headers every JSON answer carries, shared: net/http only reads
// them.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// isMaxBytes reports whether err came from a body over its limit.
func isMaxBytes(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}
