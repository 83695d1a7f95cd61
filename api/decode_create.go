package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/heraldhq/herald"
)

// The single create (POST /notifications) is the request most host applications send,
// one per notification. Its body is read here in one pass over the bytes instead of
// encoding/json's two (a syntax scan, then the decode) plus checkStrict's third, and
// with one allocation for all the strings that are kept, one for the payload and one
// for the channels.
//
// The outcome is decodeJSON's for every body, by construction: the fast reader accepts
// only what decodeJSON accepts, decoding it to the same value, and gives up on anything
// else (malformed JSON, a wrong type, a field sent twice or spelled in another case,
// text that is not valid UTF-8, trailing data, nesting deeper than encoding/json
// allows), in which case decodeJSON reads the body and says what is wrong with it.
// FuzzDecodeCreate compares the two on arbitrary bodies.

// decodeCreateBody reads a single create body of at most limit bytes into n, as
// decodeBody does.
func decodeCreateBody(r *http.Request, w http.ResponseWriter, limit int64, n *herald.NewNotification) error {
	buf, err := readBody(r, w, limit)
	if err != nil {
		return err
	}
	defer putBuffer(buf)
	// The decoded values do not point into the buffer: readCreate copies what it keeps.
	return decodeCreate(buf.Bytes(), n)
}

// decodeCreate decodes the create body into n, which it overwrites: the outcome is
// decodeJSON's into a zero NewNotification.
func decodeCreate(body []byte, n *herald.NewNotification) error {
	if readCreate(body, n) {
		return nil
	}
	// Into another value, so that n (the handler's) does not escape to the heap.
	v := new(herald.NewNotification)
	err := decodeJSON(body, v)
	*n = *v
	return err
}

// The JSON fields of herald.NewNotification, by index: the bits of createReader.seen
// and the slots of createReader.strs (the string fields come first).
const (
	fieldReceiverID = iota
	fieldSenderID
	fieldType
	fieldObject
	fieldIdempotencyKey
	fieldPayload
	fieldChannels

	stringFields = fieldIdempotencyKey + 1

	fieldUnknown = -1 // a name that is no field: its value is skipped
	fieldFolded  = -2 // a name that folds to a field's without being it: decodeJSON refuses it
)

var createFieldNames = [...][]byte{
	fieldReceiverID:     []byte("receiverId"),
	fieldSenderID:       []byte("senderId"),
	fieldType:           []byte("type"),
	fieldObject:         []byte("object"),
	fieldIdempotencyKey: []byte("idempotencyKey"),
	fieldPayload:        []byte("payload"),
	fieldChannels:       []byte("channels"),
}

// textSpan is a string's text between its quotes, b[start:end], or (after
// createReader.keep) its place in the strings of the decoded value.
type textSpan struct {
	start, end int
	escaped    bool
	channel    herald.Channel // a channel of the contract, kept as the constant
}

// createReader reads one create body. It gives up (returns false) on anything
// decodeJSON would refuse and on nothing it accepts.
type createReader struct {
	b   []byte
	pos int

	seen      uint8 // fields sent
	strs      [stringFields]textSpan
	strSet    uint8 // string fields sent as a string (not null)
	payload   [2]int
	chanArray bool // channels was sent as an array (possibly empty)
	nchans    int
	chanBuf   [4]textSpan // the first channels, then moreChans
	moreChans []textSpan

	// depth is the nesting of the value being read (the body's object is 1);
	// bit depth%64 of container word depth/64 is set for an object, clear for an array
	// (words from 4 on are in deep: bodies nest that much only to be odd).
	depth   int
	shallow [4]uint64
	deep    []uint64
}

// maxJSONDepth is encoding/json's limit on nesting (its scanner's maxNestingDepth).
const maxJSONDepth = 10000

// readCreate decodes body into n when decodeJSON would accept it, and reports whether
// it did; n is not touched otherwise.
func readCreate(body []byte, n *herald.NewNotification) bool {
	d := createReader{b: body}
	if !d.object() {
		return false
	}
	d.space()
	if d.pos != len(d.b) {
		return false // data after the object
	}
	d.fill(n)
	return true
}

func (d *createReader) space() { d.pos = skipSpace(d.b, d.pos) }

// object reads the body's object.
func (d *createReader) object() bool {
	d.space()
	if d.pos >= len(d.b) || d.b[d.pos] != '{' {
		return false
	}
	d.pos++
	d.depth = 1
	d.space()
	if d.pos < len(d.b) && d.b[d.pos] == '}' {
		d.pos++
		return true
	}
	for {
		if d.pos >= len(d.b) || d.b[d.pos] != '"' {
			return false
		}
		key, ok := d.str(false)
		if !ok {
			return false
		}
		d.space()
		if d.pos >= len(d.b) || d.b[d.pos] != ':' {
			return false
		}
		d.pos++
		d.space()
		if d.pos >= len(d.b) {
			return false
		}
		f := d.field(key)
		if f == fieldFolded {
			return false
		}
		if f >= 0 {
			if d.seen&(1<<f) != 0 {
				return false // sent twice
			}
			d.seen |= 1 << f
		}
		switch f {
		case fieldUnknown:
			if !d.skip() {
				return false
			}
		case fieldPayload:
			start := d.pos
			if !d.skip() {
				return false
			}
			d.payload = [2]int{start, d.pos}
		case fieldChannels:
			if !d.channels() {
				return false
			}
		default: // a string field
			switch d.b[d.pos] {
			case '"':
				s, ok := d.str(true)
				if !ok {
					return false
				}
				d.strs[f] = s
				d.strSet |= 1 << f
			case 'n':
				// null leaves a string as it is.
				if !d.literal("null") {
					return false
				}
			default:
				return false // not a string
			}
		}
		if more, ok := d.next('}'); !more {
			return ok
		}
	}
}

// field returns the field the key names, as encoding/json and checkStrict read names.
// next reads what follows a member or an element: a comma (more follows) or end (the
// object or array ends there). ok is false for anything else.
func (d *createReader) next(end byte) (more, ok bool) {
	d.space()
	if d.pos >= len(d.b) {
		return false, false
	}
	switch d.b[d.pos] {
	case ',':
		d.pos++
		d.space()
		return true, true
	case end:
		d.pos++
		return false, true
	}
	return false, false
}

func (d *createReader) field(key textSpan) int {
	name := d.b[key.start:key.end]
	var buf [64]byte
	if key.escaped {
		name = appendUnquoted(buf[:0], name)
	}
	switch string(name) {
	case "receiverId":
		return fieldReceiverID
	case "senderId":
		return fieldSenderID
	case "type":
		return fieldType
	case "object":
		return fieldObject
	case "idempotencyKey":
		return fieldIdempotencyKey
	case "payload":
		return fieldPayload
	case "channels":
		return fieldChannels
	}
	// encoding/json would match a name that folds to a field's (with Unicode folding,
	// as bytes.EqualFold does), which checkStrict refuses.
	for _, f := range createFieldNames {
		if bytes.EqualFold(name, f) {
			return fieldFolded
		}
	}
	return fieldUnknown
}

// channels reads the value of channels: null, or an array of strings or nulls.
func (d *createReader) channels() bool {
	switch d.b[d.pos] {
	case 'n':
		return d.literal("null") // nil channels
	case '[':
	default:
		return false
	}
	d.pos++
	d.chanArray = true
	d.space()
	if d.pos < len(d.b) && d.b[d.pos] == ']' {
		d.pos++
		return true
	}
	for {
		if d.pos >= len(d.b) {
			return false
		}
		switch d.b[d.pos] {
		case '"':
			s, ok := d.str(true)
			if !ok {
				return false
			}
			d.addChannel(s)
		case 'n':
			// A null element is the empty channel, as encoding/json leaves it.
			if !d.literal("null") {
				return false
			}
			d.addChannel(textSpan{})
		default:
			return false
		}
		if more, ok := d.next(']'); !more {
			return ok
		}
	}
}

// str reads the string whose opening quote is at pos, checking its syntax as
// encoding/json's scanner does. With kept, its text must also decode without
// replacement (herald.ValidStringText), as checkStrict requires of a string field.
func (d *createReader) str(kept bool) (textSpan, bool) {
	b := d.b
	start := d.pos + 1
	escaped := false
	plain := strPlain
	if kept {
		plain = strASCII
	}
	for i := start; i < len(b); {
		for i < len(b) && strByte[b[i]] <= plain {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return textSpan{start: start, end: i, escaped: escaped}, true
		case c < 0x20:
			return textSpan{}, false
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return textSpan{}, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r := hexRune(b, i+2)
				if r < 0 {
					return textSpan{}, false
				}
				i += 6
				if kept && utf16.IsSurrogate(r) {
					// Only half of a pair that follows at once is text.
					if r >= 0xDC00 || i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return textSpan{}, false
					}
					if lo := hexRune(b, i+2); lo < 0xDC00 || lo > 0xDFFF {
						return textSpan{}, false
					}
					i += 6
				}
			default:
				return textSpan{}, false
			}
		case c >= utf8.RuneSelf && kept:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return textSpan{}, false
			}
			i += size
		default:
			i++
		}
	}
	return textSpan{}, false
}

// strByte classes the bytes of a string's text, for str's inner loop: strASCII needs
// no look, strPlain needs one only for a kept string (UTF-8), strSpecial always.
var strByte = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			t[c] = strSpecial
		case c >= utf8.RuneSelf:
			t[c] = strPlain
		}
	}
	return t
}()

const (
	strASCII uint8 = iota
	strPlain
	strSpecial
)

// hexRune is the rune of the four hex digits at b[i:], or -1.
func hexRune(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

func (d *createReader) literal(word string) bool {
	if !bytes.HasPrefix(d.b[d.pos:], []byte(word)) {
		return false
	}
	d.pos += len(word)
	return true
}

func (d *createReader) number() bool {
	b, i := d.b, d.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		i = digits(b, i)
	}
	d.pos = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// skip moves past the value at pos, checking its syntax as encoding/json's scanner
// does, its nesting limit included. It walks nested values without recursion.
func (d *createReader) skip() bool {
	base := d.depth
	for {
		// A value starts at pos (after spaces).
		d.space()
		if d.pos >= len(d.b) {
			return false
		}
		switch c := d.b[d.pos]; c {
		case '{', '[':
			d.pos++
			if !d.push(c == '{') {
				return false
			}
			d.space()
			if d.pos < len(d.b) && d.b[d.pos] == c+2 { // '}' or ']'
				d.pos++
				d.depth--
				break
			}
			if c == '{' && !d.memberKey() {
				return false
			}
			continue // to the first member's or element's value
		case '"':
			if _, ok := d.str(false); !ok {
				return false
			}
		case 't':
			if !d.literal("true") {
				return false
			}
		case 'f':
			if !d.literal("false") {
				return false
			}
		case 'n':
			if !d.literal("null") {
				return false
			}
		default:
			if !d.number() {
				return false
			}
		}
		// A value ended: close the containers it ends, up to the next value.
		for {
			if d.depth == base {
				return true
			}
			d.space()
			if d.pos >= len(d.b) {
				return false
			}
			inObject := *d.containerWord()&(1<<(d.depth%64)) != 0
			c := d.b[d.pos]
			if c == ',' {
				d.pos++
				if inObject && !d.memberKey() {
					return false
				}
				break
			}
			if inObject && c == '}' || !inObject && c == ']' {
				d.pos++
				d.depth--
				continue
			}
			return false
		}
	}
}

// memberKey reads an object member's key and colon, spaces included.
func (d *createReader) memberKey() bool {
	d.space()
	if d.pos >= len(d.b) || d.b[d.pos] != '"' {
		return false
	}
	if _, ok := d.str(false); !ok {
		return false
	}
	d.space()
	if d.pos >= len(d.b) || d.b[d.pos] != ':' {
		return false
	}
	d.pos++
	return true
}

// push enters an object or an array, within encoding/json's nesting limit.
func (d *createReader) push(object bool) bool {
	d.depth++
	if d.depth > maxJSONDepth {
		return false
	}
	if w := d.depth/64 - len(d.shallow); w >= len(d.deep) {
		d.deep = append(d.deep, 0)
	}
	if object {
		*d.containerWord() |= 1 << (d.depth % 64)
	} else {
		*d.containerWord() &^= 1 << (d.depth % 64)
	}
	return true
}

// containerWord is the word of the container bits that holds depth's.
func (d *createReader) containerWord() *uint64 {
	if w := d.depth / 64; w < len(d.shallow) {
		return &d.shallow[w]
	}
	return &d.deep[d.depth/64-len(d.shallow)]
}

func (d *createReader) addChannel(s textSpan) {
	if d.nchans < len(d.chanBuf) {
		d.chanBuf[d.nchans] = s
	} else {
		d.moreChans = append(d.moreChans, s)
	}
	d.nchans++
}

// channel is the i-th element of channels.
func (d *createReader) channel(i int) *textSpan {
	if i < len(d.chanBuf) {
		return &d.chanBuf[i]
	}
	return &d.moreChans[i-len(d.chanBuf)]
}

// fill sets n from what object read: the strings share one allocation, the payload is
// a copy of its raw text, and nothing points into the body.
func (d *createReader) fill(n *herald.NewNotification) {
	size := 0
	for f := range stringFields {
		if d.strSet&(1<<f) != 0 {
			size += d.strs[f].end - d.strs[f].start
		}
	}
	for i := range d.nchans {
		s := d.channel(i)
		if !s.escaped {
			switch string(d.b[s.start:s.end]) { // the contract's channels need no copy
			case string(herald.ChannelRealtime):
				s.channel = herald.ChannelRealtime
			case string(herald.ChannelEmail):
				s.channel = herald.ChannelEmail
			case string(herald.ChannelWebhook):
				s.channel = herald.ChannelWebhook
			}
		}
		if s.channel == "" {
			size += s.end - s.start
		}
	}
	// Unescaping never makes valid string text longer: size is enough.
	var sb strings.Builder
	sb.Grow(size)
	for f := range stringFields {
		if d.strSet&(1<<f) != 0 {
			d.keep(&sb, &d.strs[f])
		}
	}
	for i := range d.nchans {
		if s := d.channel(i); s.channel == "" {
			d.keep(&sb, s)
		}
	}
	all := sb.String()
	*n = herald.NewNotification{}
	for f := range stringFields {
		if d.strSet&(1<<f) == 0 {
			continue
		}
		s := all[d.strs[f].start:d.strs[f].end]
		switch f {
		case fieldReceiverID:
			n.ReceiverID = s
		case fieldSenderID:
			n.SenderID = s
		case fieldType:
			n.Type = s
		case fieldObject:
			n.Object = s
		case fieldIdempotencyKey:
			n.IdempotencyKey = s
		}
	}
	if d.seen&(1<<fieldPayload) != 0 {
		n.Payload = make(json.RawMessage, d.payload[1]-d.payload[0])
		copy(n.Payload, d.b[d.payload[0]:d.payload[1]])
	}
	if d.chanArray {
		n.Channels = make([]herald.Channel, d.nchans)
		for i := range n.Channels {
			s := d.channel(i)
			if s.channel != "" {
				n.Channels[i] = s.channel
			} else {
				n.Channels[i] = herald.Channel(all[s.start:s.end])
			}
		}
	}
}

// keep writes the decoded text of s to sb and makes s its place there.
func (d *createReader) keep(sb *strings.Builder, s *textSpan) {
	start := sb.Len()
	raw := d.b[s.start:s.end]
	if s.escaped {
		var buf [herald.MaxIDBytes]byte
		sb.Write(appendUnquoted(buf[:0], raw))
	} else {
		sb.Write(raw)
	}
	s.start, s.end = start, sb.Len()
}

// appendUnquoted appends the decoded text of a JSON string (raw, between its quotes,
// valid JSON) to b, as encoding/json decodes it: invalid UTF-8 and a lone surrogate
// escape become U+FFFD.
func appendUnquoted(b, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hexRune(raw, i+2)
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hexRune(raw, i+2)); dec != utf8.RuneError &&
						i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						b = utf8.AppendRune(b, dec)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default: // " \ /
				b = append(b, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return b
}
