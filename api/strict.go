package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/heraldhq/herald"
)

// encoding/json is lenient where a body read by two parties must not be: it matches
// field names case-insensitively (with Unicode folding: "ſender" is "sender"), lets the
// last of duplicate fields win, and replaces invalid UTF-8 in strings with U+FFFD. A
// gateway or an audit log in front of Herald that reads exact names would then see
// another body than Herald stores. checkStrict walks a body that encoding/json has
// already accepted, with the shape of the value it was decoded into, and refuses:
//   - a field sent twice (400, naming it);
//   - a name that is not a field but folds to one, such as "RECEIVERID" (400);
//   - a string field whose raw text is not valid UTF-8, or holds a lone UTF-16
//     surrogate escape (422), either of which encoding/json would have replaced.
//
// Names that match no field at all are ignored, as encoding/json ignores them. Opaque
// values (payload, data: json.RawMessage) are skipped: they are the caller's own JSON,
// kept as sent. The walk does not allocate unless it finds something to refuse, or a
// field name holds an escape.

// shapeKind is what a JSON value decodes into.
type shapeKind uint8

const (
	shapeOpaque shapeKind = iota // anything: not looked into
	shapeString                  // a Go string: its raw text must be valid UTF-8
	shapeArray                   // a slice: elem for each element
	shapeObject                  // a struct: fields by exact name
	shapeMap                     // a map with string keys: keys unique, elem for each value
)

type shape struct {
	kind   shapeKind
	elem   *shape
	fields []shapeField // shapeObject; at most 64 (a bit each while walking)
}

type shapeField struct {
	name  string
	shape *shape
}

var (
	opaqueShape = &shape{kind: shapeOpaque}
	shapes      sync.Map // reflect.Type → *shape
	rawMessage  = reflect.TypeFor[json.RawMessage]()
)

// shapeOf returns the shape of values of t, built once per type.
func shapeOf(t reflect.Type) *shape {
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := building[t]; ok {
		return s // a recursive type
	}
	switch {
	case t == rawMessage:
		return opaqueShape
	case t.Kind() == reflect.String:
		return &shape{kind: shapeString}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return opaqueShape // []byte is base64 text
		}
		s := &shape{kind: shapeArray}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		s := &shape{kind: shapeMap}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	case t.Kind() == reflect.Struct:
		s := &shape{kind: shapeObject}
		building[t] = s
		addFields(s, t, building)
		if len(s.fields) > 64 {
			panic("api: checkStrict handles structs of at most 64 JSON fields: " + t.String())
		}
		return s
	}
	return opaqueShape
}

// addFields adds the JSON fields of struct t to s, those of embedded structs included,
// as encoding/json sees them (a field of the outer struct hides one of the same name in
// an embedded struct).
func addFields(s *shape, t reflect.Type, building map[reflect.Type]*shape) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.fields = append(s.fields, shapeField{name: name, shape: buildShape(f.Type, building)})
	}
	for _, et := range embedded {
		inner := &shape{kind: shapeObject}
		addFields(inner, et, building)
		for _, f := range inner.fields {
			if s.field(f.name) < 0 {
				s.fields = append(s.fields, f)
			}
		}
	}
}

func (s *shape) field(name string) int {
	for i := range s.fields {
		if s.fields[i].name == name {
			return i
		}
	}
	return -1
}

// checkStrict checks body, which encoding/json decoded into a value of type t without
// error, as the comment above says. Its error is a *herald.Error naming the field.
func checkStrict(body []byte, t reflect.Type) error {
	w := walker{b: body}
	w.space()
	return w.value(shapeOf(t))
}

// pathElem is one step of where the walk is: a field (name) or an element (index >= 0).
type pathElem struct {
	name  []byte
	index int
}

// walker walks a JSON text known to be valid.
type walker struct {
	b   []byte
	pos int
	// path is where the walk is, made into a field name only for an error: the first
	// depth steps (the bodies Herald reads are never deeper than maxPath).
	path  [maxPath]pathElem
	depth int
}

const maxPath = 8

// at returns the field name of where the walk is, with name appended when not nil:
// "items[2].receiverId".
func (w *walker) at(name []byte) string {
	var sb strings.Builder
	for _, e := range w.path[:min(w.depth, maxPath)] {
		if e.index >= 0 {
			sb.WriteString("[" + strconv.Itoa(e.index) + "]")
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.Write(e.name)
	}
	if name != nil {
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.Write(name)
	}
	return sb.String()
}

func (w *walker) push(name []byte, index int) {
	if w.depth < maxPath {
		w.path[w.depth] = pathElem{name, index}
	}
	w.depth++
}

func (w *walker) pop() { w.depth-- }

func (w *walker) space() { w.pos = skipSpace(w.b, w.pos) }

// skipSpace returns the index of the first byte of b from pos on that is not JSON
// whitespace (len(b) if none).
func skipSpace(b []byte, pos int) int {
	for pos < len(b) {
		switch b[pos] {
		case ' ', '\t', '\r', '\n':
			pos++
		default:
			return pos
		}
	}
	return pos
}

func (w *walker) value(s *shape) error {
	if w.pos >= len(w.b) {
		return nil
	}
	switch w.b[w.pos] {
	case '{':
		return w.object(s)
	case '[':
		return w.array(s)
	case '"':
		start := w.pos
		w.str()
		if s.kind == shapeString && !herald.ValidStringText(w.b[start+1:w.pos-1]) {
			field := w.at(nil)
			return herald.FieldError(field, "%s must be valid UTF-8", lastField(field))
		}
		return nil
	}
	for w.pos < len(w.b) { // a number, true, false or null
		switch w.b[w.pos] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return nil
		}
		w.pos++
	}
	return nil
}

func (w *walker) object(s *shape) error {
	w.pos++ // {
	var seen uint64
	var seenKeys map[string]struct{} // shapeMap
	for {
		w.space()
		if w.b[w.pos] == '}' {
			w.pos++
			return nil
		}
		start := w.pos
		escaped := w.str()
		raw := w.b[start+1 : w.pos-1]
		w.space()
		w.pos++ // :
		w.space()
		fieldShape := opaqueShape
		switch s.kind {
		case shapeObject:
			name := keyName(raw, escaped)
			i := s.fieldBytes(name)
			switch {
			case i >= 0 && seen&(1<<i) != 0:
				return w.strictError(name, "is sent twice: send each field once")
			case i >= 0:
				seen |= 1 << i
				fieldShape = s.fields[i].shape
			default:
				for j := range s.fields {
					if strings.EqualFold(s.fields[j].name, string(name)) {
						return w.strictError(name, "is not a field: field names are case-sensitive, this one is spelled "+strconv.Quote(s.fields[j].name))
					}
				}
			}
			if fieldShape == opaqueShape {
				w.value(opaqueShape) // nothing in it can be refused
			} else {
				w.push(name, -1)
				if err := w.value(fieldShape); err != nil {
					return err
				}
				w.pop()
			}
		case shapeMap:
			name := keyName(raw, escaped)
			if seenKeys == nil {
				seenKeys = map[string]struct{}{}
			}
			if _, dup := seenKeys[string(name)]; dup {
				return w.strictError(name, "is sent twice: send each key once")
			}
			seenKeys[string(name)] = struct{}{}
			w.push(name, -1)
			if err := w.value(s.elem); err != nil {
				return err
			}
			w.pop()
		default:
			w.value(opaqueShape)
		}
		w.space()
		if w.b[w.pos] == ',' {
			w.pos++
		}
	}
}

func (s *shape) fieldBytes(name []byte) int {
	for i := range s.fields {
		if s.fields[i].name == string(name) { // no allocation
			return i
		}
	}
	return -1
}

func (w *walker) array(s *shape) error {
	w.pos++ // [
	elem := opaqueShape
	if s.kind == shapeArray {
		elem = s.elem
	}
	for i := 0; ; i++ {
		w.space()
		if w.b[w.pos] == ']' {
			w.pos++
			return nil
		}
		if elem == opaqueShape {
			w.value(opaqueShape)
		} else {
			w.push(nil, i)
			if err := w.value(elem); err != nil {
				return err
			}
			w.pop()
		}
		w.space()
		if w.b[w.pos] == ',' {
			w.pos++
		}
	}
}

// str moves past the string at pos and reports whether it holds an escape.
func (w *walker) str() (escaped bool) {
	w.pos++ // "
	for {
		i := bytes.IndexByte(w.b[w.pos:], '"')
		if i < 0 {
			w.pos = len(w.b)
			return escaped
		}
		end := w.pos + i
		if bytes.IndexByte(w.b[w.pos:end], '\\') < 0 {
			w.pos = end + 1
			return escaped
		}
		escaped = true
		n := 0 // backslashes right before the quote: an odd number escapes it
		for end-n-1 >= w.pos && w.b[end-n-1] == '\\' {
			n++
		}
		w.pos = end + 1
		if n%2 == 0 {
			return escaped
		}
	}
}

// keyName is the name of a field as encoding/json reads it.
func keyName(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if json.Unmarshal(q, &s) != nil {
		return raw
	}
	return []byte(s)
}

func lastField(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// strictError is the 400 for a field name refused by checkStrict; the field is named
// as it was sent (valid UTF-8 or not), so that the caller finds it in its body.
func (w *walker) strictError(rawName []byte, problem string) *herald.Error {
	name := herald.Truncate(strings.ToValidUTF8(string(rawName), "\uFFFD"), 64)
	field := w.at([]byte(name))
	return &herald.Error{Code: herald.CodeBadRequest, Message: "field " + strconv.Quote(name) + " " + problem, Field: field}
}
