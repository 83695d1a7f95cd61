package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The events scenario's event and the rule that routes it.
const (
	fanoutEvent = "bench.fanout"        // the event the bench posts
	fanoutRule  = "herald-bench-fanout" // the rule's name, as a 202 lists it
	fanoutType  = "bench.event"         // the type of the notifications it yields
)

// fanoutRules is the rules file the events scenario needs: -start-server loads it into
// the server it starts, -print-rules prints it for a server started otherwise.
const fanoutRules = `# The rule of herald-bench's events scenario (herald-bench -print-rules prints it).
#
# An event bench.fanout notifies each id in its data's receiverIds. The payload carries
# the publish time (t, Unix ns) and the event's marker (m), both rendered as strings
# (a templated value always is one), which the bench reads back on the sockets.
# Add the rule to the server's HERALD_RULES file (the server reloads it on SIGHUP); no
# other rule may match bench.fanout.
rules:
  - name: ` + fanoutRule + `
    match: ` + fanoutEvent + `
    notify:
      - receiver: receiverIds
        type: ` + fanoutType + `
        channels: [realtime]
        payload:
          t: "{{.data.t}}"
          m: "{{.data.m}}"
`

// writeRules writes the bench's rules file into dir and returns its path.
func writeRules(dir string, rules []byte) (string, error) {
	path := filepath.Join(dir, "rules.yaml")
	return path, os.WriteFile(path, rules, 0o600)
}

// event appends the body of the event with markers first..first+k-1, published at t:
// its receivers are users[(first+j) % len(users)] for j < k (distinct while k ≤ the
// number of users), and its data carries t and first.
func (p *publishing) event(b []byte, first int64, k int, t int64) []byte {
	b = append(b, `{"name":"`+fanoutEvent+`","data":{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"m":`...)
	b = strconv.AppendInt(b, first, 10)
	b = append(b, `,"receiverIds":[`...)
	b = appendReceivers(b, p.users, first, k)
	return append(b, "]}}"...)
}

// errFound ends a scan once the field sought has been read.
var errFound = errors.New("found")

// eventNotifications reads "notifications" from a 202 of POST /events: how many
// notifications the event stored. It stops reading there (the list follows it).
func eventNotifications(answer []byte) (int64, error) {
	s := scanner{b: answer}
	n := int64(-1)
	err := s.object(func(key []byte) error {
		if string(key) != "notifications" {
			return s.skip()
		}
		var err error
		if n, err = s.int(); err == nil {
			err = errFound
		}
		return err
	})
	switch {
	case err == errFound:
		return n, nil
	case err != nil:
		return 0, err
	}
	return 0, errors.New("no notifications count in the answer")
}

// eventReceipt turns the marker of an event's notification received by user idx into
// that user's own marker: first + j, where the user is the event's j-th receiver. ok is
// false when the user is none of the event's receivers.
func eventReceipt(first int64, idx, users, fanout int64) (m int64, ok bool) {
	j := ((idx-first%users)%users + users) % users
	return first + j, j < fanout
}

// probeEvents posts one event for a user of the run that never connects, and checks
// that the server routes it as the bench's rule does: one notification, whose payload
// gives back the event's t and m.
func (s *session) probeEvents(ctx context.Context) error {
	api := newREST(s.t.base, s.t.apiKey, 1)
	const t, m = 1, 42
	p := &publishing{users: []string{"bench-" + s.run + "-probe"}}
	status, _, answer, err := api.postRead(ctx, "/events", p.event(nil, m, 1, t), []byte{})
	if err != nil {
		return fmt.Errorf("probe: POST /events: %w", err)
	}
	if status != http.StatusAccepted {
		return fmt.Errorf("probe: POST /events answered %d, want 202", status)
	}
	var a struct {
		Notifications int               `json:"notifications"`
		Rules         []string          `json:"rules"`
		Data          []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("probe: the answer of POST /events: %w", err)
	}
	const load = "load the rule herald-bench -print-rules prints into the server's HERALD_RULES file"
	switch {
	case a.Notifications == 0:
		return fmt.Errorf("probe: the server routes %s to no notification (rules matched: %v): %s", fanoutEvent, a.Rules, load)
	case a.Notifications != 1 || len(a.Data) != 1:
		return fmt.Errorf("probe: the server routes %s for one receiver to %d notifications (rules %v): only the bench's rule may match it",
			fanoutEvent, a.Notifications, a.Rules)
	}
	var d frameData
	sc := scanner{b: a.Data[0]}
	err = sc.object(func(key []byte) error { return decodeData(&sc, key, &d) })
	if err != nil || d.Payload != (benchPayload{T: t, M: m}) {
		return fmt.Errorf("probe: the rule for %s does not give back the event's t and m in the payload (%s): %s", fanoutEvent, a.Data[0], load)
	}
	return nil
}

// events runs the events scenario: see the package doc.
func (s *session) events(ctx context.Context, r *Result) error {
	o := s.o
	r.cond("users (one connection each)", o.n)
	r.cond("fan-out (receivers per event)", o.fanout)
	r.cond("publish for", o.duration)
	if o.rate > 0 {
		r.cond("target rate", fmt.Sprintf("%s events (%s notifications)", fmtRate(o.rate), fmtRate(o.rate*float64(o.fanout))))
	} else {
		r.cond("target rate", "flat out")
	}
	r.cond("publish", "POST /events "+fanoutEvent+", receiverIds routed by the rule "+fanoutRule+" (herald-bench -print-rules)")
	r.cond("concurrent publishers", o.publishers)
	r.cond("drain window", o.drain)
	if err := s.probeEvents(ctx); err != nil {
		return err
	}

	l := newLedger(o.maxNotes)
	rc := newReceipts(l, o.n)
	users, fanout := int64(o.n), int64(o.fanout)
	onNote := func(c *client, d *frameData, now int64) {
		p := d.Payload
		if p.T == 0 {
			return // not the bench's
		}
		m, ok := eventReceipt(p.M, int64(c.idx), users, fanout)
		if !ok {
			rc.misrouted.Add(1)
			return
		}
		p.M = m
		rc.record(p, now)
	}
	f, err := s.connect(ctx, r, onNote)
	if err != nil {
		return err
	}
	defer f.stop()

	start := time.Now()
	pub := &publishing{
		rest: newREST(s.t.base, s.t.apiKey, o.publishers), ledger: l, users: s.userIDs(),
		rate: o.rate, start: start, end: start.Add(o.duration),
		mode: publishEvents, fanout: o.fanout,
	}
	srvCPU, benchCPU := startCPU(s.t.pid), startCPU(selfPID())
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := pub.stats.events.Load()
		return eventsLine(o.scenario, el, n, rm.rate(n, el), pub.stats.acked.Load(), rc.delivered.Load(), rc.lat.percentile(99))
	})
	wr := s.startWindows(start, pub.end, rc, &pub.stats)
	pub.run(ctx, o.publishers)
	pubEnd := time.Now()
	wr.end(pubEnd)
	cpu(r, "publishing", srvCPU, benchCPU)
	drained := rc.drain(ctx, &pub.stats.acked, o.drain)
	drainTook := time.Since(pubEnd)
	p.Stop()
	f.stop()
	wr.finish(r)

	tl := l.tally(pubEnd.UnixNano())
	pubDur := pubEnd.Sub(start)
	events := pub.stats.events.Load()
	r.duration("publishing took", pubDur)
	r.count("events accepted (202)", events)
	r.metric("events/s accepted", float64(events)/pubDur.Seconds(), "/s")
	if o.rate > 0 && float64(events)/pubDur.Seconds() < 0.95*o.rate {
		r.note("the target rate was not reached (%s of %s events): %d publishers each wait for their answer, so either "+
			"the server is saturated (see its CPU) or more -publishers would get there",
			fmtRate(float64(events)/pubDur.Seconds()), fmtRate(o.rate), o.publishers)
	}
	if l.next.Load() > l.limit {
		r.note("publishing stopped at -max-notifications (%d) before the end of -duration", o.maxNotes)
	}
	r.count("notifications stored", tl.Acked) // as the 202s count them
	r.metric("notifications/s stored", float64(tl.Acked)/pubDur.Seconds(), "/s")
	r.count("delivered", tl.Received)
	r.metric("delivered/s (while publishing)", float64(tl.ReceivedBy)/pubDur.Seconds(), "/s")
	if drained {
		r.duration("drain (end of publishing to last receipt)", drainTook)
	}
	latency(r, "latency (event to socket)", &rc.lat)
	latency(r, "request latency (until 202)", &pub.stats.latency)
	publishFailures(r, &pub.stats)
	r.count("received although not acknowledged", tl.UnackedDelivered)
	r.check("events not routed to -fanout notifications", pub.stats.offFanout.Load())
	pub.stats.mu.Lock()
	if pub.stats.firstOff != "" {
		r.note("first event routed to other than %d notifications: %s", o.fanout, pub.stats.firstOff)
	}
	pub.stats.mu.Unlock()
	rc.checks(r, tl.Lost)
	socketChecks(r, f)
	return nil
}
