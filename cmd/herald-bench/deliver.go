package main

import (
	"context"
	"sync/atomic"
	"time"
)

// receipts keeps the books of published notifications as sockets receive them.
type receipts struct {
	ledger *ledger
	lat    histogram // create→socket latency of first receipts
	win    windowed  // the same, per -window
	users  int64
	// fanout, when above 0, is how many receivers each notification's marker has
	// (-publish multicast): the j-th receiver of marker m books it as m+j.
	fanout int64

	delivered atomic.Int64 // first receipts
	dupes     atomic.Int64 // the same marker again, under another id and seq
	misrouted atomic.Int64 // a notification published for another user
	unknown   atomic.Int64 // a marker the bench never handed out
}

func newReceipts(l *ledger, users int) *receipts {
	return &receipts{ledger: l, users: int64(users)}
}

// onNote is the fleet's hook for the publishing scenarios: marker m is for user
// m mod users.
func (rc *receipts) onNote(c *client, d *frameData, now int64) {
	p := d.Payload
	if p.T == 0 {
		return // not the bench's
	}
	if rc.fanout > 0 {
		m, ok := eventReceipt(p.M, int64(c.idx), rc.users, rc.fanout)
		if !ok {
			rc.misrouted.Add(1)
			return
		}
		p.M = m
	} else if p.M%rc.users != int64(c.idx) {
		rc.misrouted.Add(1)
		return
	}
	rc.record(p, now)
}

// record books a receipt of p at now.
func (rc *receipts) record(p benchPayload, now int64) {
	switch known, first := rc.ledger.receive(p.M, now); {
	case !known:
		rc.unknown.Add(1)
	case !first:
		rc.dupes.Add(1)
	default:
		rc.delivered.Add(1)
		d := time.Duration(now - p.T)
		rc.lat.record(d)
		rc.win.record(d)
	}
}

// drain waits until every acknowledged notification has been received, or timeout.
func (rc *receipts) drain(ctx context.Context, acked *atomic.Int64, timeout time.Duration) bool {
	return pollUntil(ctx, timeout, 10*time.Millisecond, func() bool {
		// The counters first: a scan of the ledger only when it can succeed.
		return rc.delivered.Load() >= acked.Load() && rc.ledger.missing() == 0
	})
}

// checks adds the receipts' checks.
func (rc *receipts) checks(r *Result, lost int64) {
	r.check("lost (acknowledged, never received)", lost)
	r.check("duplicate notifications (same marker twice)", rc.dupes.Load())
	r.check("misrouted (another user's notification)", rc.misrouted.Load())
	r.check("unknown markers", rc.unknown.Load())
}

// publishConditions adds the publishing flags to the conditions.
func (s *session) publishConditions(r *Result) {
	r.cond("users (one connection each)", s.o.n)
	r.cond("publish for", s.o.duration)
	if s.o.rate > 0 {
		r.cond("target rate", fmtRate(s.o.rate))
	} else {
		r.cond("target rate", "flat out")
	}
	switch s.o.publish {
	case publishSingle:
		r.cond("publish", "POST /notifications")
	case publishBatch:
		r.cond("publish", "POST /notifications/batch, items of "+itoa(s.o.batchSize))
	case publishMulticast:
		r.cond("publish", "POST /notifications/batch, one body to "+itoa(s.o.batchSize)+" receiverIds")
	default:
		r.cond("publish", "POST /notifications and /notifications/batch (items of "+itoa(s.o.batchSize)+") alternately")
	}
	r.cond("concurrent publishers", s.o.publishers)
	r.cond("drain window", s.o.drain)
}

// startPublishing is the set-up deliver and reconnect-storm share: the ledger of what is
// published, the receipts the sockets make in it, the connected users (stopped by the
// caller) and the publishers, ready to publish from now for -duration.
func (s *session) startPublishing(ctx context.Context, r *Result) (*ledger, *receipts, *fleet, *publishing, error) {
	l := newLedger(s.o.maxNotes)
	rc := newReceipts(l, s.o.n)
	if s.o.publish == publishMulticast {
		rc.fanout = int64(s.o.batchSize)
	}
	f, err := s.connect(ctx, r, rc.onNote)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	start := time.Now()
	pub := &publishing{
		rest: newREST(s.t.base, s.t.apiKey, s.o.publishers), ledger: l, users: s.userIDs(),
		rate: s.o.rate, start: start, end: start.Add(s.o.duration),
		mode: s.o.publish, batchSize: s.o.batchSize,
	}
	return l, rc, f, pub, nil
}

// deliver runs the deliver scenario: see the package doc.
func (s *session) deliver(ctx context.Context, r *Result) error {
	s.publishConditions(r)
	l, rc, f, pub, err := s.startPublishing(ctx, r)
	if err != nil {
		return err
	}
	defer f.stop()
	start := pub.start
	histBefore, _ := scrapeHistograms(ctx, s.t.base)
	srvCPU, benchCPU := startCPU(s.t.pid), startCPU(selfPID())
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := pub.stats.acked.Load()
		return deliverLine(s.o.scenario, el, n, rm.rate(n, el), rc.delivered.Load(), rc.lat.percentile(99))
	})
	wr := s.startWindows(start, pub.end, rc, &pub.stats)
	pub.run(ctx, s.o.publishers)
	pubEnd := time.Now()
	wr.end(pubEnd)
	cpu(r, "publishing", srvCPU, benchCPU)
	drained := rc.drain(ctx, &pub.stats.acked, s.o.drain)
	drainTook := time.Since(pubEnd)
	p.Stop()
	f.stop()
	wr.finish(r)
	histAfter := scrapeHistogramsAfter(ctx, r, s.t.base)

	tl := l.tally(pubEnd.UnixNano())
	pubDur := pubEnd.Sub(start)
	r.duration("publishing took", pubDur)
	r.count("published (201)", tl.Acked)
	r.metric("published/s", float64(tl.Acked)/pubDur.Seconds(), "/s")
	rateShortfall(r, s.o, float64(tl.Acked)/pubDur.Seconds())
	r.count("delivered", tl.Received)
	r.metric("delivered/s (while publishing)", float64(tl.ReceivedBy)/pubDur.Seconds(), "/s")
	if drained {
		r.duration("drain (end of publishing to last receipt)", drainTook)
	}
	latency(r, "latency (publish to socket)", &rc.lat)
	latency(r, "request latency (until 201)", &pub.stats.latency)
	commitFigures(r, histBefore, histAfter)
	publishFailures(r, &pub.stats)
	r.count("received although not acknowledged", tl.UnackedDelivered)
	rc.checks(r, tl.Lost)
	socketChecks(r, f)
	return nil
}
