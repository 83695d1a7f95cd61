package main

import (
	"errors"
	"strconv"

	"github.com/google/uuid"
)

// eventKind is a frame's event name.
type eventKind uint8

const (
	eventOther    eventKind = iota
	eventSnapshot           // unread-notifications
	eventNew                // new-notification
	eventRead               // notification-read
	eventAllRead            // all-notifications-read
	eventPong               // pong
	eventError              // error
)

// eventOf maps an event name to its kind.
func eventOf(name []byte) eventKind {
	switch string(name) { // compared in place, no allocation
	case "unread-notifications":
		return eventSnapshot
	case "new-notification":
		return eventNew
	case "notification-read":
		return eventRead
	case "all-notifications-read":
		return eventAllRead
	case "pong":
		return eventPong
	case "error":
		return eventError
	}
	return eventOther
}

// logEntry reports whether frames of kind e are event-log entries, numbered by seq.
func (e eventKind) logEntry() bool {
	return e == eventNew || e == eventRead || e == eventAllRead
}

// frame is the part of a server frame the bench reads: { "event", "seq", "data" }.
type frame struct {
	Event eventKind
	Seq   int64
	Data  frameData
}

// frameData is the part of a notification the bench reads. Other data (a snapshot's
// array, an error's code) leaves it zero.
type frameData struct {
	ID      uuid.UUID
	Payload benchPayload
}

// benchPayload is the payload of every notification the bench publishes. The events
// scenario's rule renders both fields through templates, which always yield JSON
// strings: the decoder reads "t":"123" as it reads "t":123.
type benchPayload struct {
	T int64 `json:"t"` // publish time, Unix nanoseconds; 0 in notifications not from the bench
	M int64 `json:"m"` // marker: the notification's index in the ledger (events: of the event's first receiver)
}

// decodeFrame decodes b into f, which it resets first so that f can be reused.
//
// Every socket decodes every frame on a machine whose CPUs the server shares, so this
// is a scanner for the few fields the bench reads rather than encoding/json (eight
// allocations a frame, ten times slower). It checks the JSON syntax of the whole frame
// but reads keys as they are sent: the server's encoder never escapes them.
func decodeFrame(b []byte, f *frame) error {
	*f = frame{}
	s := scanner{b: b}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "event":
			name, err := s.str()
			f.Event = eventOf(name)
			return err
		case "seq":
			var err error
			f.Seq, err = s.int()
			return err
		case "data":
			if s.ws() != '{' {
				return s.skip() // a snapshot's array, or null
			}
			return s.object(func(key []byte) error { return decodeData(&s, key, &f.Data) })
		}
		return s.skip()
	})
	if s.ws(); err == nil && s.i != len(s.b) {
		err = s.fail("data after the frame")
	}
	return err
}

// decodeData reads the notification fields the bench needs.
func decodeData(s *scanner, key []byte, d *frameData) error {
	switch string(key) {
	case "id":
		raw, err := s.str()
		if err != nil {
			return err
		}
		if d.ID, err = uuid.ParseBytes(raw); err != nil {
			return s.fail("id is not a UUID")
		}
		return nil
	case "payload":
		if s.ws() != '{' {
			return s.skip()
		}
		return s.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "t":
				d.Payload.T, err = s.intOrString()
			case "m":
				d.Payload.M, err = s.intOrString()
			default:
				err = s.skip()
			}
			return err
		})
	}
	return s.skip()
}

// maxDepth bounds the nesting of the values skip walks through.
const maxDepth = 64

// scanner walks JSON text. Each method reads one value, after any whitespace.
type scanner struct {
	b     []byte
	i     int
	depth int // of the objects and arrays skip is in
}

func (s *scanner) fail(what string) error {
	return errors.New("bad frame at byte " + strconv.Itoa(s.i) + ": " + what)
}

// ws skips whitespace and returns the next byte, 0 at the end (or a NUL).
func (s *scanner) ws() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// object reads an object, calling fn with each key; fn must read the value.
func (s *scanner) object(fn func(key []byte) error) error {
	if s.ws() != '{' {
		return s.fail("want an object")
	}
	s.i++
	if s.ws() == '}' {
		s.i++
		return nil
	}
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if s.ws() != ':' {
			return s.fail("want ':'")
		}
		s.i++
		if err := fn(key); err != nil {
			return err
		}
		switch s.ws() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.fail("want ',' or '}'")
		}
	}
}

// str reads a string and returns its content as sent, escapes included.
func (s *scanner) str() ([]byte, error) {
	if s.ws() != '"' {
		return nil, s.fail("want a string")
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], nil
		case c < 0x20:
			return nil, s.fail("control character in a string")
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, s.fail("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return nil, s.fail("bad \\u escape")
				}
				s.i += 6
			default:
				return nil, s.fail("bad escape")
			}
		default:
			s.i++
		}
	}
	return nil, s.fail("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// int reads a number that must be an integer within int64.
func (s *scanner) int() (int64, error) {
	s.ws()
	start := s.i
	if err := s.number(); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64) // no allocation: the conversion does not escape
	if err != nil {
		return 0, s.fail("want an integer")
	}
	return n, nil
}

// intOrString reads an integer within int64, or a string holding one as its only
// content ("-12"; no escapes, no spaces).
func (s *scanner) intOrString() (int64, error) {
	if s.ws() != '"' {
		return s.int()
	}
	raw, err := s.str()
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(raw), 10, 64) // no allocation, as in int
	if err != nil || len(raw) > 1 && (raw[0] == '+' || raw[0] == '0' || raw[0] == '-' && raw[1] == '0') {
		return 0, s.fail("want an integer in the string")
	}
	return n, nil
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return s.fail("want a number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("want digits after '.'")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("want an exponent")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// skip reads any value.
func (s *scanner) skip() error {
	c := s.ws()
	if c == '{' || c == '[' {
		if s.depth++; s.depth > maxDepth {
			return s.fail("nested too deep")
		}
		defer func() { s.depth-- }()
	}
	switch c {
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		s.i++
		if s.ws() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.skip(); err != nil {
				return err
			}
			switch s.ws() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return s.fail("want ',' or ']'")
			}
		}
	case '"':
		_, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("want " + lit)
	}
	s.i += len(lit)
	return nil
}
