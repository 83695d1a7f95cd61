package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// broadcastChunk is the most receiverIds one batch request takes (the contract's limit).
const broadcastChunk = 1000

// broadcast runs the broadcast scenario: see the package doc.
func (s *session) broadcast(ctx context.Context, r *Result) error {
	r.cond("users (one connection each)", s.o.n)
	r.cond("rounds", s.o.rounds)
	r.cond("publish", "POST /notifications/batch with receiverIds, chunks of 1000 sent concurrently")
	r.cond("drain window", s.o.drain)
	l := newLedger(int64(s.o.n) * int64(s.o.rounds))
	rc := newReceipts(l, s.o.n)
	// A round's marker is its first ledger index; each user's receipt is its own entry.
	onNote := func(c *client, d *frameData, now int64) {
		if p := d.Payload; p.T != 0 {
			p.M += int64(c.idx)
			rc.record(p, now)
		}
	}
	f, err := s.connect(ctx, r, onNote)
	if err != nil {
		return err
	}
	defer f.stop()

	users := s.userIDs()
	api := newREST(s.t.base, s.t.apiKey, s.o.publishers)
	var stats publishStats
	var toLast, toAcked []time.Duration
	var lost int64
	histBefore, _ := scrapeHistograms(ctx, s.t.base)
	srvCPU, benchCPU := startCPU(s.t.pid), startCPU(selfPID())
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := stats.acked.Load()
		return deliverLine(s.o.scenario, el, n, rm.rate(n, el), rc.delivered.Load(), rc.lat.percentile(99))
	})
	for range s.o.rounds {
		base, _ := l.reserve(s.o.n) // the ledger holds rounds·n
		t0 := time.Now()
		s.sendBroadcast(ctx, api, &stats, l, users, base, t0)
		acked := time.Since(t0)
		rc.drain(ctx, &stats.acked, s.o.drain)
		var last int64
		for m := base; m < base+int64(s.o.n); m++ {
			e := l.entry(m)
			switch recv := e.received.Load(); {
			case e.acked.Load() != 0 && recv == 0:
				lost++
			case recv != 0:
				last = max(last, recv)
			}
		}
		toAcked = append(toAcked, acked)
		if last != 0 {
			toLast = append(toLast, time.Duration(last-t0.UnixNano()))
		}
		if ctx.Err() != nil {
			break
		}
	}
	p.Stop()
	cpu(r, "broadcasting", srvCPU, benchCPU)
	histAfter := scrapeHistogramsAfter(ctx, r, s.t.base)
	f.stop()

	slices.Sort(toLast)
	slices.Sort(toAcked)
	if len(toLast) > 0 {
		r.duration("time until the last user has it (median of rounds)", toLast[len(toLast)/2])
		r.duration("time until the last user has it (slowest round)", toLast[len(toLast)-1])
	}
	r.duration("time until every chunk is acknowledged (median of rounds)", toAcked[len(toAcked)/2])
	// With one chunk a round, the commit time against the time to the acknowledgement
	// and to the last user splits a round: before the store, in it, and the fan-out.
	commitFigures(r, histBefore, histAfter)
	r.count("acknowledged notifications", stats.acked.Load())
	r.count("delivered", rc.delivered.Load())
	latency(r, "receipt latency (per user)", &rc.lat)
	publishFailures(r, &stats)
	rc.checks(r, lost)
	socketChecks(r, f)
	return nil
}

// sendBroadcast sends one notification with marker base to every user, as concurrent
// batch requests of up to broadcastChunk receiverIds, at most -publishers at once.
func (s *session) sendBroadcast(ctx context.Context, api *rest, stats *publishStats, l *ledger, users []string, base int64, t0 time.Time) {
	sem := make(chan struct{}, s.o.publishers)
	var wg sync.WaitGroup
	for i := 0; i < len(users); i += broadcastChunk {
		j := min(i+broadcastChunk, len(users))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body := broadcastBody(users[i:j], t0.UnixNano(), base)
			l.sent(base+int64(i), j-i, t0.UnixNano())
			stats.requests.Add(1)
			status, _, err := api.post(ctx, "/notifications/batch", body)
			if status == http.StatusCreated {
				l.ack(base+int64(i), j-i, time.Now().UnixNano())
				stats.acked.Add(int64(j - i))
				return
			}
			stats.fail(status, err)
		})
	}
	wg.Wait()
}
