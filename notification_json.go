package herald

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes n as encoding/json would from its field tags, byte for byte, but
// without reflection: a notification is encoded for every frame and response, and this
// is several times faster.
func (n Notification) MarshalJSON() ([]byte, error) {
	return n.AppendJSON(make([]byte, 0, 256+len(n.Payload))), nil
}

// AppendJSON appends the JSON encoding of n to b.
func (n *Notification) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"object":`...)
	b = appendString(b, n.Object)
	b = append(b, `,"receiverId":`...)
	b = appendString(b, n.ReceiverID)
	b = append(b, `,"senderId":`...)
	b = appendString(b, n.SenderID)
	b = append(b, `,"type":`...)
	b = appendString(b, n.Type)
	b = append(b, `,"payload":`...)
	b = appendRaw(b, n.Payload)
	b = append(b, `,"channels":`...)
	if n.Channels == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range n.Channels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, string(c))
		}
		b = append(b, ']')
	}
	b = append(b, `,"createdAt":`...)
	b = appendTime(b, n.CreatedAt)
	b = append(b, `,"readAt":`...)
	if n.ReadAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendTime(b, *n.ReadAt)
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, n.Seq, 10)
	return append(b, '}')
}

// AppendJSON appends the JSON encoding of r to b.
func (r *ReadAll) AppendJSON(b []byte) []byte {
	b = append(b, `{"readAt":`...)
	b = appendTime(b, r.ReadAt)
	b = append(b, `,"updated":`...)
	b = strconv.AppendInt(b, r.Updated, 10)
	return append(b, '}')
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		// Out of time.Time's JSON range: let it say so the way encoding/json does.
		j, err := t.MarshalJSON()
		if err != nil {
			return append(b, "null"...)
		}
		return append(b, j...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendRaw appends a raw JSON value as encoding/json does with a json.RawMessage:
// compacted, with <, >, &, U+2028 and U+2029 escaped; null when empty.
func appendRaw(b []byte, raw json.RawMessage) []byte {
	if raw == nil {
		return append(b, "null"...)
	}
	if plain(raw) {
		return append(b, raw...) // the common case: nothing to compact or escape
	}
	buf := bytes.NewBuffer(b)
	start := buf.Len()
	if err := json.Compact(buf, raw); err != nil {
		return append(b[:start], "null"...) // stored payloads are valid JSON
	}
	out := buf.Bytes()
	if bytes.ContainsAny(out[start:], "<>&") || bytes.Contains(out[start:], []byte("\u2028")) || bytes.Contains(out[start:], []byte("\u2029")) {
		region := append([]byte(nil), out[start:]...)
		buf.Truncate(start)
		json.HTMLEscape(buf, region)
		out = buf.Bytes()
	}
	return out
}

// plain reports whether encoding/json would copy raw unchanged: no whitespace between
// tokens, and no <, >, &, U+2028 or U+2029 in its strings (raw is valid JSON).
func plain(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped character cannot end the string
			case '"':
				inString = false
			case '<', '>', '&':
				return false
			case 0xE2: // U+2028 and U+2029 are E2 80 A8 and E2 80 A9
				if i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
					return false
				}
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			return false
		}
	}
	return true
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does.
func appendString(b []byte, s string) []byte { return AppendJSONString(b, s, true) }

// AppendJSONString appends s as a JSON string, the one escaper of the module: the way
// encoding/json does (U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD), and
// with escapeHTML also <, > and & (as encoding/json does by default). Without it they
// are kept as they are, for JSON that is not headed for HTML.
func AppendJSONString[S ~string | ~[]byte](b []byte, s S, escapeHTML bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!escapeHTML || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ValidStringText reports whether raw, the text of a valid JSON string between its
// quotes, decodes without replacement: it is valid UTF-8, and every \uD800-\uDFFF
// escape in it is half of a surrogate pair. encoding/json replaces what fails with
// U+FFFD, so two different texts would read as one: the API and authentication refuse
// such text instead.
func ValidStringText(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++
			continue
		}
		r := hex4(raw[i+2 : i+6])
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low surrogate first
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return false
			}
			if lo := hex4(raw[i+8 : i+12]); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 11
		default:
			i += 5
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// decodeRune is utf8.DecodeRune for a string or a byte slice, without converting one
// to the other (which would copy all of it).
func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	var buf [utf8.UTFMax]byte
	return utf8.DecodeRune(buf[:copy(buf[:], s)])
}
