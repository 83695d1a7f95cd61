package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/heraldhq/herald"
)

// decodeBody reads a JSON object of at most limit bytes into v. Malformed JSON is
// bad_request; a value of the wrong type for a field is validation_failed naming it.
func decodeBody(r *http.Request, w http.ResponseWriter, limit int64, v any) error {
	buf, err := readBody(r, w, limit)
	if err != nil {
		return err
	}
	defer putBuffer(buf)
	// The decoded values do not point into the buffer: encoding/json copies strings and
	// raw messages out of its input.
	return decodeJSON(buf.Bytes(), v)
}

// readBody reads a request body of at most limit bytes into a pooled buffer, which the
// caller puts back with putBuffer. The server's read timeout (HTTPOptions.ReadTimeout)
// bounds how long a body trickling in may hold the handler.
func readBody(r *http.Request, w http.ResponseWriter, limit int64) (*bytes.Buffer, error) {
	buf := getBuffer()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		putBuffer(buf)
		if isMaxBytes(err) {
			return nil, herald.Errorf(herald.CodeTooLarge, "request body is larger than %d bytes", limit)
		}
		return nil, herald.Errorf(herald.CodeBadRequest, "could not read the request body")
	}
	return buf, nil
}

// decodeJSON decodes the JSON object body into v, strictly (see checkStrict).
func decodeJSON(body []byte, v any) error {
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) == 0 {
		return herald.Errorf(herald.CodeBadRequest, "request body is empty; a JSON object is expected")
	}
	if t[0] != '{' {
		return herald.Errorf(herald.CodeBadRequest, "request body must be a JSON object")
	}
	err := json.Unmarshal(body, v)
	if se := (*json.SyntaxError)(nil); errors.As(err, &se) && strings.HasSuffix(se.Error(), "after top-level value") {
		// More data follows the object: the object's own errors come first.
		if err = json.Unmarshal(body[:se.Offset-1], v); err == nil {
			return herald.Errorf(herald.CodeBadRequest, "malformed JSON: unexpected data after the object")
		}
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// encoding/json names an embedded struct by its Go type: the batch body
			// embeds a notification's fields at its top level.
			field := strings.TrimPrefix(te.Field, "NewNotification.")
			if field == "channels" || strings.HasSuffix(field, ".channels") {
				return &herald.Error{Code: herald.CodeBadRequest, Message: "channels must be an array of channel names", Field: field}
			}
			return herald.FieldError(field, "%s must be a JSON %s", field, jsonKind(te.Type.Kind().String()))
		}
		return herald.Errorf(herald.CodeBadRequest, "malformed JSON: %s", jsonMessage(err))
	}
	return checkStrict(body, reflect.TypeOf(v))
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
	if errors.As(err, &se) && se.Error() == "unexpected end of JSON input" {
		return "unexpected end of input"
	}
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

// Request and answer buffers are pooled: a batch create reads and writes tens of
// kilobytes per request.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer put back in the pool; bigger ones are left to
// the collector rather than held.
const maxPooledBuffer = 1 << 20

func getBuffer() *bytes.Buffer {
	b := bufferPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		bufferPool.Put(b)
	}
}
