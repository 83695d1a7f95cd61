// Package events turns domain events into stored notifications: it routes an event
// through the current rules (package rules) and writes every notification the event
// yields in one atomic operation through the persistence actor, exactly as a service's
// batch create would. POST /events and the in-process API both go through an Emitter.
//
// The rules are swapped atomically (SetRules): an event is routed by one Set from start
// to end, and a reload never blocks an event in flight.
//
// An Emitter starts no goroutine and holds nothing to close: stopping is the Writer's.
package events

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/events/rules"
	"github.com/heraldhq/herald/persistence"
)

// Event is a domain event: a name, optional tenant, data and idempotency key.
type Event = rules.Event

// Result is what one event did.
type Result struct {
	// Notifications are the stored notifications, in rule order (the originals when the
	// event was a replay of an idempotency key).
	Notifications []herald.Notification
	// Replayed is true when every notification was already stored by an earlier post
	// of the same event (same idempotencyKey). Notifications the receivers'
	// preferences turned away are not in Notifications.
	Replayed bool
	// Rules names the rules the event matched.
	Rules []string
	// Digested counts the notifications held back in digests (rules with digest): they
	// are stored, grouped, when their digest's window ends.
	Digested int
}

// Emitter routes and stores events.
type Emitter struct {
	rules   atomic.Pointer[rules.Set]
	writer  persistence.Writer
	metrics *Metrics
}

// New returns an Emitter writing through w and routing with set (nil: no rules, every
// event is unmatched). m may be nil.
func New(w persistence.Writer, set *rules.Set, m *Metrics) *Emitter {
	e := &Emitter{writer: w, metrics: m}
	e.rules.Store(set)
	return e
}

// SetRules makes set the rules for the events that come after.
func (e *Emitter) SetRules(set *rules.Set) { e.rules.Store(set) }

// Rules returns the current rules.
func (e *Emitter) Rules() *rules.Set { return e.rules.Load() }

// Emit routes ev and stores what it yields, all or nothing. An event no rule matches is
// not an error: it stores nothing and is counted. Errors are *herald.Error values:
// validation_failed naming the event field at fault, too_large, idempotency_conflict,
// unavailable.
func (e *Emitter) Emit(ctx context.Context, ev Event) (Result, error) {
	set := e.rules.Load()
	routed, err := set.Route(ev)
	if err != nil {
		e.metrics.event("invalid", 0)
		return Result{}, err
	}
	if len(routed) == 0 {
		e.metrics.event("unmatched", 0)
		return Result{}, nil
	}
	creates := make([]herald.NewNotification, len(routed))
	var names []string
	for i := range routed {
		creates[i] = routed[i].Notification
		if esc := routed[i].Escalate; esc != nil {
			creates[i].Escalate = &herald.Escalation{After: esc.After, Channel: esc.Channel}
		}
		if d := routed[i].Digest; d != nil {
			creates[i].Digest = &herald.Digest{Rule: routed[i].Rule, Window: d.Window}
		}
		if i == 0 || routed[i].Rule != routed[i-1].Rule {
			names = append(names, routed[i].Rule)
		}
	}
	res, err := e.writer.Write(ctx, persistence.Op{Kind: persistence.OpCreate, Creates: creates})
	if err != nil {
		e.metrics.event("failed", 0)
		return Result{}, err
	}
	// What the receivers' preferences turned away is not stored and not listed.
	stored := res.Notifications[:0:0]
	replayed, any, digested := true, false, 0
	for i, n := range res.Notifications {
		if res.Suppressed != nil && res.Suppressed[i] {
			continue
		}
		if res.Digested != nil && res.Digested[i] {
			digested++
			continue
		}
		stored = append(stored, n)
		replayed, any = replayed && res.Replayed[i], true
	}
	e.metrics.event("routed", len(stored))
	return Result{Notifications: stored, Replayed: replayed && any, Rules: names, Digested: digested}, nil
}

// Metrics counts events by outcome and the notifications they yield. A nil *Metrics
// records nothing.
type Metrics struct {
	events        *prometheus.CounterVec
	notifications prometheus.Counter
}

// NewMetrics registers the event metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_total",
			Help: "Domain events received, by result: routed, unmatched (no rule), invalid (refused), failed (not stored).",
		}, []string{"result"}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_event_notifications_total",
			Help: "Notifications stored (or replayed) for domain events.",
		}),
	}
	for _, r := range []string{"routed", "unmatched", "invalid", "failed"} {
		m.events.WithLabelValues(r)
	}
	reg.MustRegister(m.events, m.notifications)
	return m
}

func (m *Metrics) event(result string, notifications int) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(result).Inc()
	m.notifications.Add(float64(notifications))
}
