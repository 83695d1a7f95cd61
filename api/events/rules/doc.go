// Package rules turns a domain event into notifications: the event-routing rules behind
// POST /events.
//
// It owns the rules file format, its loading and validation (Load, Parse), and routing
// (Set.Route): which rules an event matches, whom each rule notifies, and what the
// notification says. It stores nothing and sends nothing: the caller hands the
// notifications Route returns to the store, exactly as if a service had created them.
//
// # Use
//
// The server loads the file named by HERALD_RULES at start and again on SIGHUP, and
// keeps the previous Set when the new one fails to load:
//
//	set, err := rules.Load(path) // every problem of the file, each naming its rule and field
//	if err != nil { ... keep the old set, log err ... }
//	current.Store(set.WithMaxPayload(cfg.MaxPayload)) // an atomic.Pointer[rules.Set]
//
//	routed, err := current.Load().Route(rules.Event{Name: ..., TenantID: ..., Data: ..., IdempotencyKey: ...})
//	// err is a *herald.Error (422 naming the field, 413 for a payload over the limit);
//	// otherwise store routed[i].Notification, all of them or none.
//
// A Set is immutable once built: Route only reads it, so any number of goroutines may
// route through one Set while another is loaded and swapped in. A nil *Set routes every
// event to nothing.
//
// # Format
//
// The file is YAML; JSON, being YAML, is accepted as well. The document is a mapping with
// one key, rules, holding a list of rules (a bare list of rules is accepted too). Unknown
// keys are errors, so a typo never silently disables a rule. An empty file is an error
// too (a file caught half-written must not drop every rule); rules: [] is a valid Set that
// routes nothing. A complete example:
//
//	rules:
//	  - name: owner-on-application            # required, unique; [A-Za-z0-9._:-], at most 100 bytes
//	    match: project.role.application.created  # one pattern, or a list of patterns
//	    notify:                               # one or more targets
//	      - receiver: projectOwnerId          # path into the event data: an id, or a list of ids
//	        type: project.role.application.created
//	        object: project.application.received   # optional, defaults to type
//	        sender: "{{.data.applicantId}}"   # optional template, defaults to "system"
//	        channels: [realtime, email]       # optional, subset of realtime, email, webhook; default [realtime]
//	        payload:                          # optional JSON object; string values are templates
//	          applicationId: "{{.data.applicationId}}"
//	          message: '{{.data.applicantName}} applied for the role "{{.data.roleName}}" in your project "{{.data.projectTitle}}"'
//	          links:                          # nested objects and lists are allowed
//	            project: "/projects/{{.data.projectId}}"
//	          important: true                 # numbers, booleans and null are copied as they are
//	      - receiver: applicantId             # a second notification for the same event
//	        type: project.role.application.sent
//	        payload:
//	          message: 'Your application for "{{.data.roleName}}" in "{{.data.projectTitle}}" was sent'
//	  - name: members-on-update
//	    match: [project.updated, "tenant.*.project.updated"]
//	    notify:
//	      - receiver: memberIds               # ["u1", "u2", ...]: one notification each
//	        type: project.updated
//	        escalate: {after: 30m, channel: email}  # optional: email it if still unread after 30m
//	        digest: {window: 10m}             # optional: group same receiver, type and rule over 10m
//	        payload:
//	          message: 'The project "{{.data.projectTitle}}" was updated'
//
// The file rules.example at the repository root is a fuller, working example.
//
// # Matching
//
// Event names and patterns are dot-separated segments. In a pattern, a segment * matches
// exactly one segment and a segment ** matches one or more; any other segment matches
// itself, and a segment may not mix * with other characters.
//
//	pattern                     matches                               does not match
//	project.created             project.created                       project.created.v2
//	project.role.*              project.role.assigned                 project.role.application.created
//	project.role.**             project.role.assigned,                project.role
//	                            project.role.application.created
//	tenant.*.project.created    tenant.acme.project.created           tenant.project.created
//
// One event may match several rules, and one rule may have several targets: Route
// returns every notification of every matching rule, in file order (rules, then targets,
// then receivers).
//
// # Targets
//
// receiver is a dotted path into the event data (not into the event: write ownerId or
// project.ownerId, never data.ownerId). Its value is one id string, or a list of id
// strings for a fan-out: one notification per distinct id, none for an empty list. A
// missing path, or a value that is neither, is a 422 naming the path, e.g.
// data.project.ownerId.
//
// sender and the string values of payload are Go text/template templates, parsed once at
// load. A string without {{ is a plain literal. Templates see the event as
//
//	.name       the event name, e.g. "tenant.acme.project.created"
//	.tenantId   the event's tenantId ("" when absent)
//	.data       the event data, JSON decoded: objects are map[string]any, lists []any,
//	            numbers json.Number when the server decodes with UseNumber (as it should:
//	            a float64 1000000 would print as 1e+06)
//
// with missingkey=error: a field missing from the data is an error (422) at routing
// time, not an empty string. A field that is present but null would print "<no value>";
// that is an error too. For a value that may be absent or null, index the map, which
// missingkey does not apply to: {{with index .data "x"}}{{.}}{{else}}someone{{end}}.
// Template syntax errors, {{define}}/{{template}}, and a field of the event other
// than name, tenantId and data (say {{.Data.x}}) are load errors. A templated value is
// always a JSON string; a payload key keeps its position from the file.
//
// escalate and digest are returned with each notification (Routed.Escalate,
// Routed.Digest), and the server acts on both. escalate: the notification is also sent
// through the channel if it is still unread after the delay (the delivery outbox;
// reading it first cancels that). digest: the notification is held in a durable digest
// of its receiver, type and rule; the first one opens a window, and when the window
// ends one notification is stored with the count and the items (a digest of one item
// is that item).
//
//	escalate: {after: <duration>, channel: email|webhook}  # channel defaults to email and must
//	                                                       # not already be in channels
//	digest: {window: <duration>}                           # group by receiver, type and rule
//
// Durations are Go durations: 90s, 30m, 24h (no days).
//
// # Idempotency
//
// When the event has an IdempotencyKey, each notification gets a key derived from (event
// key, rule name, target index, receiver): a replayed event yields the same keys, so the
// store returns the notifications it already has instead of creating them twice, and two
// receivers of one event never share a key. Editing a rule between an event and its
// replay changes the notification's body, which the store answers 409
// idempotency_conflict. Without an event key, notifications have none.
package rules
