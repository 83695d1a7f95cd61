package main

import (
	"context"
	"sync"
	"time"
)

// storm runs the reconnect-storm scenario: see the package doc.
func (s *session) storm(ctx context.Context, r *Result) error {
	s.publishConditions(r)
	r.cond("every client drops and reconnects at", s.o.stormAt)
	l, rc, f, pub, err := s.startPublishing(ctx, r)
	if err != nil {
		return err
	}
	defer f.stop()
	start := pub.start
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := pub.stats.acked.Load()
		return deliverLine(s.o.scenario, el, n, rm.rate(n, el), rc.delivered.Load(), rc.lat.percentile(99)) +
			" reconnected " + itoa(int(f.resumed.Load()))
	})
	var wg sync.WaitGroup
	wg.Go(func() { pub.run(ctx, s.o.publishers) })

	// The storm.
	stormTimer := time.NewTimer(time.Until(start.Add(s.o.stormAt)))
	select {
	case <-stormTimer.C:
	case <-ctx.Done():
		stormTimer.Stop()
	}
	resumed0 := f.resumed.Load()
	srvCPU, benchCPU := startCPU(s.t.pid), startCPU(selfPID())
	drop := time.Now()
	f.dropAll()
	allBack := pollUntil(ctx, s.o.connectTimeout, 5*time.Millisecond, func() bool {
		return f.resumed.Load()-resumed0 >= int64(s.o.n)
	})
	back := time.Unix(0, f.lastResume.Load())
	cpu(r, "reconnecting", srvCPU, benchCPU)

	wg.Wait()
	pubEnd := time.Now()
	rc.drain(ctx, &pub.stats.acked, s.o.drain)
	p.Stop()
	f.stop()

	// Converged: every notification acknowledged before the last client was back has
	// been received.
	var converged int64
	var missing int64
	l.each(func(_ int64, e *ledgerEntry) {
		if acked := e.acked.Load(); acked != 0 && acked <= back.UnixNano() {
			if recv := e.received.Load(); recv == 0 {
				missing++
			} else {
				converged = max(converged, recv)
			}
		}
	})
	converged = max(converged, back.UnixNano())
	tl := l.tally(pubEnd.UnixNano())

	r.count("reconnected with since", f.resumed.Load()-resumed0)
	r.duration("time until every client is back", back.Sub(drop))
	if missing == 0 {
		r.duration("time to converge (all acknowledged notifications received)", time.Duration(converged-drop.UnixNano()))
	}
	r.count("published (201)", tl.Acked)
	r.metric("published/s", float64(tl.Acked)/pubEnd.Sub(start).Seconds(), "/s")
	rateShortfall(r, s.o, float64(tl.Acked)/pubEnd.Sub(start).Seconds())
	r.count("delivered", tl.Received)
	latency(r, "latency (publish to socket)", &rc.lat)
	latency(r, "request latency (until 201)", &pub.stats.latency)
	publishFailures(r, &pub.stats)
	notBack := int64(0)
	if !allBack {
		notBack = max(int64(s.o.n)-(f.resumed.Load()-resumed0), 1)
	}
	r.check("clients not back", notBack)
	rc.checks(r, tl.Lost)
	socketChecks(r, f)
	return nil
}
