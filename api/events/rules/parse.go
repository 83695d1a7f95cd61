package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/heraldhq/herald"
)

const (
	maxNameBytes   = 100   // rule names
	maxErrors      = 50    // load errors reported at once
	maxPayloadNode = 10000 // payload values of one target, aliases expanded
)

// Load reads and parses the rules file at path. The error names the file and, for each
// problem (all of them, up to 50), the rule and field at fault.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("rules: %s: %w", path, err)
	}
	return s, nil
}

// Parse parses a rules document (YAML or JSON; see the package doc). The error lists
// every problem found (up to 50), each naming the rule, by index and name, and the field:
//
//	rules[2] "owner-on-application": notify[0].payload.message (line 14): template: unexpected "}" in operand
func Parse(data []byte) (*Set, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the rules document is empty")
	}
	if json.Valid(data) {
		// A JSON document may be indented with tabs, which YAML refuses. Outside its
		// strings JSON only has tabs as white space, and inside them no raw tab at all.
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, errors.New("the rules document is empty")
		}
		return nil, err
	}
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(more.Content) > 0 && !(more.Content[0].Kind == yaml.ScalarNode && more.Content[0].Tag == "!!null" && more.Content[0].Value == "") {
			return nil, fmt.Errorf("line %d: more than one YAML document; the rules file holds one", more.Line)
		}
	}
	p := &parser{}
	s := p.document(&doc)
	if len(p.errs) > 0 {
		// In file order; errors without a line (none so far) last.
		idx := make([]int, len(p.errs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool {
			la, lb := p.lines[idx[a]], p.lines[idx[b]]
			if la == 0 {
				la = math.MaxInt - 1
			}
			if lb == 0 {
				lb = math.MaxInt - 1
			}
			return la < lb
		})
		sorted := make([]error, len(idx))
		for i, j := range idx {
			sorted[i] = p.errs[j]
		}
		return nil, errors.Join(sorted...)
	}
	return s, nil
}

type parser struct {
	errs   []error
	lines  []int  // file line of each error, for sorting
	name   string // name of the rule last parsed, "" if none
	prefix string // context of the rule being parsed: `rules[2] "name": `
	budget int    // payload values left for the current target
}

func (p *parser) errf(n *yaml.Node, field, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, errors.New("too many errors, the rest are not shown"))
		p.lines = append(p.lines, math.MaxInt)
	}
	if len(p.errs) > maxErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	where, line := "", 0
	if n != nil && n.Line > 0 {
		where, line = fmt.Sprintf(" (line %d)", n.Line), n.Line
	}
	p.lines = append(p.lines, line)
	if field != "" {
		p.errs = append(p.errs, fmt.Errorf("%s%s%s: %s", p.prefix, field, where, msg))
		return
	}
	if p.prefix == "" {
		if line > 0 {
			p.errs = append(p.errs, fmt.Errorf("line %d: %s", line, msg))
		} else {
			p.errs = append(p.errs, errors.New(msg))
		}
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s%s: %s", strings.TrimSuffix(p.prefix, ": "), where, msg))
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "unknown"
}

// fields walks a mapping node: it reports keys not in allowed and duplicate keys, and
// returns the values by key.
func (p *parser) fields(n *yaml.Node, field string, allowed ...string) map[string]*yaml.Node {
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		name := k.Value
		where := joinField(field, name)
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errf(k, field, "a key must be a string, not %s", kindName(k))
			continue
		case name == "<<":
			p.errf(k, where, "merge keys (<<) are not supported")
			continue
		case !contains(allowed, name):
			p.errf(k, where, "unknown field (known: %s)", strings.Join(allowed, ", "))
			continue
		case out[name] != nil:
			p.errf(k, where, "duplicate field")
			continue
		}
		out[name] = deref(v)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// str returns the string of a scalar node, reporting anything else.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, field, "must be a string, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) document(doc *yaml.Node) *Set {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			p.errf(doc, "", "the rules document is empty")
			return nil
		}
		root = deref(doc.Content[0])
	}
	var list *yaml.Node
	switch root.Kind {
	case yaml.SequenceNode:
		list = root
	case yaml.MappingNode:
		f := p.fields(root, "", "rules")
		list = f["rules"]
		if list == nil {
			if len(p.errs) == 0 {
				p.errf(root, "rules", "required: the list of rules")
			}
			return nil
		}
		if list.Kind != yaml.SequenceNode {
			p.errf(list, "rules", "must be a list of rules, not %s", kindName(list))
			return nil
		}
	default:
		p.errf(root, "", "the rules document must be a mapping with the key rules, not %s", kindName(root))
		return nil
	}

	s := &Set{exact: make(map[string][]int)}
	seen := make(map[string]int)
	for i, rn := range list.Content {
		rn = deref(rn)
		r := p.rule(i, rn)
		if p.name != "" {
			if j, dup := seen[p.name]; dup {
				p.errf(rn, "name", "duplicate rule name, already used by rules[%d]", j)
				continue
			}
			seen[p.name] = i
		}
		if r == nil {
			continue
		}
		idx := len(s.rules)
		s.rules = append(s.rules, r)
		var wild []pattern
		for _, pt := range r.patterns {
			if pt.wild {
				wild = append(wild, pt)
				continue
			}
			if l := s.exact[pt.raw]; len(l) == 0 || l[len(l)-1] != idx {
				s.exact[pt.raw] = append(l, idx)
			}
		}
		if len(wild) > 0 {
			s.wild = append(s.wild, wildRule{rule: idx, patterns: wild})
		}
	}
	p.prefix = ""
	return s
}

// rule parses rules[i]; nil when it has errors (they are recorded).
func (p *parser) rule(i int, n *yaml.Node) *rule {
	p.prefix = fmt.Sprintf("rules[%d]: ", i)
	p.name = ""
	if n.Kind != yaml.MappingNode {
		p.errf(n, "", "a rule must be a mapping, not %s", kindName(n))
		return nil
	}
	errs := len(p.errs)
	// The name first, so that every other error names the rule.
	var name string
	for j := 0; j+1 < len(n.Content); j += 2 {
		if k := deref(n.Content[j]); k.Kind == yaml.ScalarNode && k.Value == "name" {
			if v := deref(n.Content[j+1]); v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
				name = v.Value
				p.name = name
				p.prefix = fmt.Sprintf("rules[%d] %q: ", i, name)
			}
			break
		}
	}
	f := p.fields(n, "", "name", "match", "notify")
	r := &rule{name: name}
	switch v := f["name"]; {
	case v == nil:
		p.errf(n, "name", "required")
	case v.Kind != yaml.ScalarNode || v.Tag == "!!null":
		p.errf(v, "name", "must be a string, not %s", kindName(v))
	default:
		if err := checkRuleName(name); err != nil {
			p.errf(v, "name", "%v", err)
		}
	}

	switch v := f["match"]; {
	case v == nil:
		p.errf(n, "match", "required: an event name or pattern, or a list of them")
	case v.Kind == yaml.SequenceNode:
		if len(v.Content) == 0 {
			p.errf(v, "match", "the list of patterns is empty")
		}
		for j, pn := range v.Content {
			r.addPattern(p, deref(pn), fmt.Sprintf("match[%d]", j))
		}
	default:
		r.addPattern(p, v, "match")
	}

	switch v := f["notify"]; {
	case v == nil:
		p.errf(n, "notify", "required: a list of one or more targets")
	case v.Kind != yaml.SequenceNode:
		p.errf(v, "notify", "must be a list of targets, not %s", kindName(v))
	case len(v.Content) == 0:
		p.errf(v, "notify", "the list of targets is empty")
	default:
		for j, tn := range v.Content {
			if t := p.target(j, deref(tn)); t != nil {
				r.targets = append(r.targets, t)
			}
		}
	}
	if len(p.errs) > errs {
		return nil
	}
	return r
}

func checkRuleName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > maxNameBytes:
		return fmt.Errorf("longer than %d bytes", maxNameBytes)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return fmt.Errorf("%q: use letters, digits and - _ . : only", name)
		}
	}
	return nil
}

func (r *rule) addPattern(p *parser, n *yaml.Node, field string) {
	raw, ok := p.str(n, field)
	if !ok {
		return
	}
	pt, err := compilePattern(raw)
	if err != nil {
		p.errf(n, field, "%v", err)
		return
	}
	for _, q := range r.patterns {
		if q.raw == pt.raw {
			p.errf(n, field, "duplicate pattern %q", raw)
			return
		}
	}
	r.patterns = append(r.patterns, pt)
}

// target parses notify[i] of the current rule; nil when it has errors.
func (p *parser) target(i int, n *yaml.Node) *target {
	field := fmt.Sprintf("notify[%d]", i)
	if n.Kind != yaml.MappingNode {
		p.errf(n, field, "a target must be a mapping, not %s", kindName(n))
		return nil
	}
	errs := len(p.errs)
	f := p.fields(n, field, "receiver", "type", "object", "sender", "channels", "payload", "escalate", "digest")
	t := &target{index: i, field: field}

	if v := f["receiver"]; v == nil {
		p.errf(n, field+".receiver", "required: the path in the event data of the receiver id (or list of ids)")
	} else if s, ok := p.str(v, field+".receiver"); ok {
		if segs, err := parsePath(s); err != nil {
			p.errf(v, field+".receiver", "%v", err)
		} else {
			t.receiver = segs
			t.receiverField = "data." + s
		}
	}

	if v := f["type"]; v == nil {
		p.errf(n, field+".type", "required")
	} else if s, ok := p.str(v, field+".type"); ok {
		t.typ = s
	}
	if v := f["object"]; v != nil {
		if s, ok := p.str(v, field+".object"); ok {
			t.object = s
		}
	}
	senderLit := ""
	if v := f["sender"]; v != nil {
		if s, ok := p.str(v, field+".sender"); ok {
			if t.sender, ok = p.text(v, field+".sender", s); ok && t.sender.tmpl == nil {
				senderLit = t.sender.lit
			}
		}
	}

	if v := f["channels"]; v != nil {
		switch {
		case v.Kind != yaml.SequenceNode:
			p.errf(v, field+".channels", "must be a list of channels, not %s", kindName(v))
		case len(v.Content) == 0:
			p.errf(v, field+".channels", "the list is empty; leave channels out for the default, [realtime]")
		}
		for j, cn := range v.Content {
			cf := fmt.Sprintf("%s.channels[%d]", field, j)
			s, ok := p.str(deref(cn), cf)
			if !ok {
				continue
			}
			c := herald.Channel(s)
			switch {
			case !c.Valid():
				p.errf(cn, cf, "unknown channel %q (known: realtime, email, webhook)", s)
			case contains(channelStrings(t.channels), s):
				p.errf(cn, cf, "duplicate channel %q", s)
			default:
				t.channels = append(t.channels, c)
			}
		}
	}
	if len(t.channels) == 0 {
		t.channels = []herald.Channel{herald.ChannelRealtime}
	}

	if v := f["payload"]; v != nil {
		if v.Kind != yaml.MappingNode {
			p.errf(v, field+".payload", "must be a mapping (a JSON object), not %s", kindName(v))
		} else {
			p.budget = maxPayloadNode
			t.payload = p.payload(v, field+".payload", 0)
		}
	}

	if v := f["escalate"]; v != nil {
		t.escalate = p.escalate(v, field+".escalate", t.channels)
	}
	if v := f["digest"]; v != nil {
		t.digest = p.digest(v, field+".digest")
	}

	if len(p.errs) > errs {
		return nil
	}
	// The literal fields must pass the contract's own validation.
	probe := herald.NewNotification{
		ReceiverID: "probe",
		SenderID:   senderLit,
		Type:       t.typ,
		Object:     t.object,
		Channels:   append([]herald.Channel(nil), t.channels...),
	}
	if err := probe.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		e := herald.AsError(err)
		f := e.Field
		if f == "senderId" {
			f = "sender"
		}
		p.errf(n, field+"."+f, "%s", e.Message)
		return nil
	}
	return t
}

func channelStrings(cs []herald.Channel) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// parsePath splits a receiver path.
func parsePath(s string) ([]string, error) {
	switch {
	case s == "":
		return nil, errors.New("must not be empty")
	case strings.Contains(s, "{{"):
		return nil, fmt.Errorf("%q: receiver is a path in the event data, such as project.ownerId, not a template", s)
	case strings.ContainsAny(s, " \t\r\n"):
		return nil, fmt.Errorf("%q: a path has no white space", s)
	}
	segs := strings.Split(s, ".")
	for _, seg := range segs {
		if seg == "" {
			return nil, fmt.Errorf("%q has an empty segment", s)
		}
	}
	return segs, nil
}

func (p *parser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.errf(n, field, "%q is not a duration such as 90s, 30m or 24h", s)
		return 0, false
	case d <= 0:
		p.errf(n, field, "must be positive")
		return 0, false
	}
	return d, true
}

func (p *parser) escalate(n *yaml.Node, field string, channels []herald.Channel) *Escalate {
	if n.Kind != yaml.MappingNode {
		p.errf(n, field, "must be a mapping {after: <duration>, channel: email|webhook}, not %s", kindName(n))
		return nil
	}
	f := p.fields(n, field, "after", "channel")
	e := &Escalate{Channel: herald.ChannelEmail}
	if v := f["after"]; v == nil {
		p.errf(n, field+".after", "required: how long the notification may stay unread, such as 30m")
	} else if d, ok := p.duration(v, field+".after"); ok {
		e.After = d
	}
	if v := f["channel"]; v != nil {
		if s, ok := p.str(v, field+".channel"); ok {
			e.Channel = herald.Channel(s)
			switch {
			case !e.Channel.Valid():
				p.errf(v, field+".channel", "unknown channel %q (known: email, webhook)", s)
			case e.Channel == herald.ChannelRealtime:
				p.errf(v, field+".channel", "cannot escalate to realtime, which every notification already gets; use email or webhook")
			}
		}
	}
	if contains(channelStrings(channels), string(e.Channel)) {
		p.errf(n, field+".channel", "%s is already in channels: the notification goes there at once, escalating to it would send it twice", e.Channel)
	}
	return e
}

func (p *parser) digest(n *yaml.Node, field string) *Digest {
	if n.Kind != yaml.MappingNode {
		p.errf(n, field, "must be a mapping {window: <duration>}, not %s", kindName(n))
		return nil
	}
	f := p.fields(n, field, "window")
	d := &Digest{}
	if v := f["window"]; v == nil {
		p.errf(n, field+".window", "required: how long to group notifications, such as 10m")
	} else if w, ok := p.duration(v, field+".window"); ok {
		d.Window = w
	}
	return d
}

// text compiles a string value: a literal without {{, a template otherwise.
func (p *parser) text(n *yaml.Node, field, s string) (*text, bool) {
	if !strings.Contains(s, "{{") {
		return &text{field: field, lit: s}, true
	}
	t, err := template.New(field).Option("missingkey=error").Parse(s)
	if err != nil {
		p.errf(n, field, "%s", cleanParseError(field, err))
		return nil, false
	}
	if len(t.Templates()) > 1 {
		p.errf(n, field, "template: {{define}} and {{block}} are not supported")
		return nil, false
	}
	if err := checkNode(t.Tree.Root, true); err != nil {
		p.errf(n, field, "template: %v", err)
		return nil, false
	}
	return &text{field: field, tmpl: t}, true
}

// cleanParseError drops the template's name (the field, already in the message) from a
// parse error: "template: notify[0].sender:1: unexpected ..." -> "template: unexpected ...".
func cleanParseError(name string, err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return msg
	}
	line, after, ok := strings.Cut(rest, ": ")
	if !ok {
		return msg
	}
	if line == "1" {
		return "template: " + after
	}
	if _, err := strconv.Atoi(line); err == nil {
		return "template line " + line + ": " + after
	}
	return "template: " + rest
}

// The fields of the value templates execute on.
var rootFields = []string{"name", "tenantId", "data"}

// checkNode rejects what would fail on every event: {{template}}, and a field of the
// event other than name, tenantId and data. rootDot says whether dot is the event.
func checkNode(n parse.Node, rootDot bool) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNode(c, rootDot); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkPipe(n.Pipe, rootDot)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, rootDot, rootDot)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, false, rootDot)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode, false, rootDot)
	case *parse.TemplateNode:
		return errors.New("{{template}} is not supported")
	}
	return nil
}

func checkBranch(b *parse.BranchNode, listDot, elseDot bool) error {
	if err := checkPipe(b.Pipe, elseDot); err != nil {
		return err
	}
	if err := checkNode(b.List, listDot); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkNode(b.ElseList, elseDot)
	}
	return nil
}

func checkPipe(pipe *parse.PipeNode, rootDot bool) error {
	if pipe == nil {
		return nil
	}
	for _, cmd := range pipe.Cmds {
		for _, arg := range cmd.Args {
			if err := checkArg(arg, rootDot); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkArg(arg parse.Node, rootDot bool) error {
	switch a := arg.(type) {
	case *parse.FieldNode:
		if rootDot && !contains(rootFields, a.Ident[0]) {
			return fmt.Errorf("the event has no field .%s (it has .name, .tenantId and .data)", a.Ident[0])
		}
	case *parse.VariableNode:
		if a.Ident[0] == "$" && len(a.Ident) > 1 && !contains(rootFields, a.Ident[1]) {
			return fmt.Errorf("the event has no field $.%s (it has .name, .tenantId and .data)", a.Ident[1])
		}
	case *parse.PipeNode:
		return checkPipe(a, rootDot)
	case *parse.ChainNode:
		return checkArg(a.Node, rootDot)
	}
	return nil
}

// payload compiles a payload value.
func (p *parser) payload(n *yaml.Node, field string, depth int) *pnode {
	n = deref(n)
	p.budget--
	if p.budget == 0 {
		p.errf(n, field, "the payload has more than %d values", maxPayloadNode)
	}
	if p.budget <= 0 {
		return nil
	}
	if depth > 32 {
		p.errf(n, field, "the payload is nested more than 32 levels deep")
		p.budget = 0
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := &pnode{kind: pObject, field: field}
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				p.errf(k, field, "a key must be a string, not %s", kindName(k))
				continue
			}
			kf := field + "." + k.Value
			if k.Value == "<<" && k.Tag == "!!merge" {
				p.errf(k, kf, "merge keys (<<) are not supported")
				continue
			}
			if seen[k.Value] {
				p.errf(k, kf, "duplicate key")
				continue
			}
			seen[k.Value] = true
			child := p.payload(n.Content[i+1], kf, depth+1)
			if child == nil {
				continue
			}
			out.keys = append(out.keys, append(herald.AppendJSONString(nil, k.Value, false), ':'))
			out.kids = append(out.kids, child)
		}
		return out
	case yaml.SequenceNode:
		out := &pnode{kind: pArray, field: field}
		for i, c := range n.Content {
			if child := p.payload(c, fmt.Sprintf("%s[%d]", field, i), depth+1); child != nil {
				out.kids = append(out.kids, child)
			}
		}
		return out
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return &pnode{kind: pLiteral, field: field, lit: []byte("null")}
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				p.errf(n, field, "%v", err)
				return nil
			}
			b, err := json.Marshal(v)
			if err != nil {
				p.errf(n, field, "%s is not a JSON value", n.Value)
				return nil
			}
			return &pnode{kind: pLiteral, field: field, lit: b}
		}
		t, ok := p.text(n, field, n.Value)
		if !ok {
			return nil
		}
		if t.tmpl == nil {
			return &pnode{kind: pLiteral, field: field, lit: herald.AppendJSONString(nil, t.lit, false)}
		}
		return &pnode{kind: pTemplate, field: field, tmpl: t.tmpl}
	}
	p.errf(n, field, "unsupported YAML value")
	return nil
}
