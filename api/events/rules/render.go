package rules

import (
	"bytes"
	"errors"
	"strings"
	"text/template"

	"github.com/heraldhq/herald"
)

type pkind uint8

const (
	pLiteral  pkind = iota // lit: pre-encoded JSON
	pTemplate              // tmpl: rendered, then encoded as a JSON string
	pObject                // keys (pre-encoded `"key":`) and kids
	pArray                 // kids
)

// pnode is a compiled payload value.
type pnode struct {
	kind  pkind
	field string // "notify[0].payload.message"
	lit   []byte
	tmpl  *template.Template
	keys  [][]byte
	kids  []*pnode
}

var errTooLarge = errors.New("output over the payload limit")

// renderer holds the state of one Route call: the value templates see and buffers.
type renderer struct {
	root    map[string]any
	max     int
	scratch limitedBuffer
	out     []byte
}

// limitedBuffer is a bytes.Buffer that refuses to grow past max, so that a template
// ranging over a huge list cannot take unbounded memory before the payload limit applies.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

func (b *limitedBuffer) WriteString(s string) (int, error) {
	if b.Len()+len(s) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.WriteString(s)
}

// exec executes t and returns its output, valid until the next exec.
func (r *renderer) exec(t *template.Template) ([]byte, error) {
	r.scratch.Reset()
	r.scratch.max = r.max
	if err := t.Execute(&r.scratch, r.root); err != nil {
		return nil, err
	}
	b := r.scratch.Bytes()
	if bytes.Contains(b, noValue) {
		return nil, errNull
	}
	return b, nil
}

var (
	noValue = []byte("<no value>")
	errNull = errors.New("a value it prints is null")
)

// text renders a text value.
func (r *renderer) text(t *text) (string, *renderError) {
	if t.tmpl == nil {
		return t.lit, nil
	}
	b, err := r.exec(t.tmpl)
	if err != nil {
		return "", &renderError{field: t.field, err: err}
	}
	return string(b), nil
}

// payload renders a payload into a new slice.
func (r *renderer) payload(n *pnode) ([]byte, *renderError) {
	r.out = r.out[:0]
	if err := r.value(n); err != nil {
		return nil, err
	}
	return bytes.Clone(r.out), nil
}

func (r *renderer) value(n *pnode) *renderError {
	switch n.kind {
	case pLiteral:
		r.out = append(r.out, n.lit...)
	case pTemplate:
		b, err := r.exec(n.tmpl)
		if err != nil {
			return &renderError{field: n.field, err: err}
		}
		r.out = herald.AppendJSONString(r.out, b, false) // JSON, not HTML: <, > and & stay
	case pObject:
		r.out = append(r.out, '{')
		for i, k := range n.keys {
			if i > 0 {
				r.out = append(r.out, ',')
			}
			r.out = append(r.out, k...)
			if err := r.value(n.kids[i]); err != nil {
				return err
			}
		}
		r.out = append(r.out, '}')
	case pArray:
		r.out = append(r.out, '[')
		for i, k := range n.kids {
			if i > 0 {
				r.out = append(r.out, ',')
			}
			if err := r.value(k); err != nil {
				return err
			}
		}
		r.out = append(r.out, ']')
	}
	if len(r.out) > r.max {
		return &renderError{field: n.field, err: errTooLarge}
	}
	return nil
}

// renderError is a template that failed on an event.
type renderError struct {
	field string // the rules field: "notify[0].payload.message"
	err   error
}

// dataField names the event field a template execution error is about, from the
// "at <.data.a.b>" of text/template's message: "data.a.b", or "data" when it cannot tell.
func (e *renderError) dataField() string {
	msg := e.err.Error()
	i := strings.Index(msg, " at <")
	if i < 0 {
		return "data"
	}
	rest := msg[i+len(" at <"):]
	j := strings.Index(rest, ">: ")
	if j < 0 {
		return "data"
	}
	ref := strings.TrimPrefix(rest[:j], "$")
	if !strings.HasPrefix(ref, ".data") || strings.ContainsAny(ref, " ()|") {
		return "data"
	}
	return ref[1:]
}

// cause is the part of the error worth telling the caller: text/template's message
// without the template's name and position.
func (e *renderError) cause() string {
	msg := e.err.Error()
	if i := strings.Index(msg, " at <"); i >= 0 {
		return "at <" + msg[i+len(" at <"):]
	}
	return strings.TrimPrefix(msg, "template: "+e.field+": ")
}
