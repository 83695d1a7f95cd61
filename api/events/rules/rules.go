package rules

import (
	"text/template"
	"time"

	"github.com/heraldhq/herald"
)

// Event is a domain event as POST /events receives it.
type Event struct {
	Name     string // e.g. "project.role.application.created"
	TenantID string // optional; templates see it as .tenantId
	// Data is the event's data as encoding/json decodes a JSON object into a
	// map[string]any. Decode it with UseNumber: a template prints a json.Number as sent,
	// while a float64 1000000 prints as 1e+06. Route only reads Data, so one decoded map
	// may be routed concurrently.
	Data           map[string]any
	IdempotencyKey string // optional; see the package doc, Idempotency
}

// Escalate asks the delivery step to send the notification through Channel too when it
// is still unread After its creation.
type Escalate struct {
	After   time.Duration
	Channel herald.Channel
}

// Digest asks the delivery step to group notifications of the same receiver, type and rule
// created within Window.
type Digest struct {
	Window time.Duration
}

// Routed is one notification an event routes to.
type Routed struct {
	// Notification is validated, as for a service caller (ByService is true, SenderID
	// defaults to "system"). Notifications of one fan-out share their Payload bytes:
	// treat it as read-only.
	Notification herald.NewNotification
	Rule         string    // name of the rule that produced it
	Escalate     *Escalate // nil unless the rule's target has escalate; a copy per Routed
	Digest       *Digest   // nil unless the rule's target has digest; a copy per Routed
}

// Set is a loaded, validated rules file. It is immutable: build it with Load or Parse
// (and WithMaxPayload), then share it freely.
type Set struct {
	rules      []*rule
	exact      map[string][]int // event name -> indexes of rules with that exact pattern
	wild       []wildRule       // rules with at least one wildcard pattern, in file order
	maxPayload int              // 0: herald.DefaultMaxPayload
}

type wildRule struct {
	rule     int
	patterns []pattern
}

type rule struct {
	name     string
	patterns []pattern
	targets  []*target
}

type target struct {
	index         int
	field         string   // "notify[0]"
	receiver      []string // path segments inside the event data
	receiverField string   // "data.project.ownerId"
	typ, object   string
	sender        *text // nil: the default sender
	channels      []herald.Channel
	payload       *pnode // nil: {}
	escalate      *Escalate
	digest        *Digest
}

// text is a string value of the rules: a literal, or a template.
type text struct {
	field string // "notify[0].sender"
	lit   string
	tmpl  *template.Template // nil for a literal
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Names returns the rule names in file order.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, len(s.rules))
	for i, r := range s.rules {
		names[i] = r.name
	}
	return names
}

// Matching returns the names of the rules an event called name matches, in file order.
func (s *Set) Matching(name string) []string {
	if s == nil {
		return nil
	}
	var segBuf [16]string
	var idxBuf [16]int
	var names []string
	for _, i := range s.match(idxBuf[:0], name, splitName(segBuf[:0], name)) {
		names = append(names, s.rules[i].name)
	}
	return names
}

// WithMaxPayload returns a copy of s whose notifications are validated against a payload
// limit of max bytes instead of herald.DefaultMaxPayload (max <= 0 means the default).
// s itself is unchanged.
func (s *Set) WithMaxPayload(max int) *Set {
	if s == nil {
		return nil
	}
	c := *s
	c.maxPayload = max
	return &c
}

func (s *Set) payloadLimit() int {
	if s.maxPayload > 0 {
		return s.maxPayload
	}
	return herald.DefaultMaxPayload
}
