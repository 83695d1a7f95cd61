package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
)

// bodyReadTimeout bounds how long reading one request body may take.
const bodyReadTimeout = 30 * time.Second

// decodeBody reads a JSON object of at most limit bytes into v. Malformed JSON is
// bad_request; a value of the wrong type for a field is validation_failed naming it.
func decodeBody(r *http.Request, w http.ResponseWriter, limit int64, v any) error {
	// A body trickling in must not hold a handler (and a drain) for ever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if isMaxBytes(err) {
			return herald.Errorf(herald.CodeTooLarge, "request body is larger than %d bytes", limit)
		}
		return herald.Errorf(herald.CodeBadRequest, "could not read the request body")
	}
	return decodeJSON(body, v)
}

func decodeJSON(body []byte, v any) error {
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) == 0 {
		return herald.Errorf(herald.CodeBadRequest, "request body is empty; a JSON object is expected")
	}
	if t[0] != '{' {
		return herald.Errorf(herald.CodeBadRequest, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			if te.Field == "channels" || len(te.Field) > 9 && te.Field[len(te.Field)-9:] == ".channels" {
				return &herald.Error{Code: herald.CodeBadRequest, Message: "channels must be an array of channel names", Field: te.Field}
			}
			return herald.FieldError(te.Field, "%s must be a JSON %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return herald.Errorf(herald.CodeBadRequest, "malformed JSON: %s", jsonMessage(err))
	}
	if dec.More() {
		return herald.Errorf(herald.CodeBadRequest, "malformed JSON: unexpected data after the object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "bool":
		return "boolean"
	}
	return "number"
}

func jsonMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// queryInt reads an optional integer query parameter within [min, max]; def when absent.
func queryInt(r *http.Request, name string, def, min, max int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < min || v > max {
		return 0, herald.FieldError(name, "%s must be an integer from %d to %d", name, min, max)
	}
	return v, nil
}
