package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// clusterResumeTimeout bounds the wait, after a node is killed, for its clients to
// resume on other nodes.
const clusterResumeTimeout = time.Minute

// clusterDeliver is the deliver scenario on several nodes (-nodes): each user's
// notifications are published on one node and received by -sockets sockets on others
// (see socketNode), and with -kill-at one node is killed (SIGKILL) while publishing goes
// on. See the package doc.
func (s *session) clusterDeliver(ctx context.Context, r *Result) error {
	o, ns := s.o, s.nodes
	nodes := len(ns.nodes)
	s.clusterConditions(r)

	// The sockets: one fleet per copy, each user's copy on its own node.
	l := newLedger(o.maxNotes)
	books := make([]*copyBook, o.sockets)
	fleets := make([]*fleet, o.sockets)
	urls := make([]string, nodes)
	for i, t := range ns.nodes {
		urls[i] = t.wsURL()
	}
	for c := range o.sockets {
		books[c] = newCopyBook(l, o.n, nodes)
		cfg := s.fleetConfig(0, o.n, books[c].onNote)
		cfg.nodeURLs = urls
		cfg.nodeOf = func(u int) int { return socketNode(u, c, nodes) }
		f, err := newFleet(cfg)
		if err != nil {
			return err
		}
		fleets[c] = f
	}
	stopAll := func() {
		for _, f := range fleets {
			f.stop()
		}
	}
	defer stopAll()
	if err := s.connectFleets(ctx, r, fleets); err != nil {
		return err
	}

	// The publishers: user u's on node publisherNode(u), or the next one once the bench
	// has killed it.
	rests := make([]*rest, nodes)
	for i, t := range ns.nodes {
		rests[i] = newREST(t.base, t.apiKey, o.publishers)
	}
	down := make([]atomic.Bool, nodes)
	victim := -1
	if o.killAt > 0 {
		victim = nodes - 1
	}
	start := time.Now()
	if victim >= 0 {
		for _, b := range books {
			b.windowFrom.Store(start.Add(o.killAt).UnixNano())
		}
	}
	pub := &publishing{
		rest: rests[0], ledger: l, users: s.userIDs(),
		rate: o.rate, start: start, end: start.Add(o.duration), mode: publishSingle,
		route: func(first int64) *rest {
			p := publisherNode(int(first%int64(o.n)), nodes)
			for down[p].Load() {
				p = (p + 1) % nodes
			}
			return rests[p]
		},
	}

	before, err := ns.scrape(ctx)
	if err != nil {
		return err
	}
	// Each node commits on its own: its commits' sizes and times, node by node.
	histBefore := make([]map[string]*promHist, nodes)
	for i, t := range ns.nodes {
		histBefore[i], _ = scrapeHistograms(ctx, t.base)
	}
	scrapedAt := time.Now()
	srvCPU, benchCPU := startCPU(ns.pids()...), startCPU(selfPID())
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := pub.stats.acked.Load()
		var got int64
		for _, b := range books {
			got += b.delivered.Load()
		}
		line := deliverLine(o.scenario, el, n, rm.rate(n, el), got, worstP99(books))
		if victim >= 0 {
			line += fmt.Sprintf(" resumed %d", resumedOf(fleets))
		}
		return line
	})

	// The kill, while publishing.
	var kill killReport
	killDone := make(chan struct{})
	if victim >= 0 {
		go func() {
			defer close(killDone)
			kill = s.killNode(ctx, victim, start.Add(o.killAt), fleets, down)
		}()
	} else {
		close(killDone)
	}

	pub.run(ctx, o.publishers)
	pubEnd := time.Now()
	if victim < 0 {
		cpu(r, "publishing", srvCPU, benchCPU)
	}
	drained := drainCopies(ctx, books, &pub.stats.acked, o.drain)
	drainTook := time.Since(pubEnd)
	<-killDone
	histAfter := make([]map[string]*promHist, nodes)
	for i, t := range ns.nodes {
		if !down[i].Load() {
			histAfter[i] = scrapeHistogramsAfter(ctx, r, t.base)
		}
	}
	after, err := ns.scrape(ctx)
	scrapeWindow := time.Since(scrapedAt)
	p.Stop()
	stopAll()
	if err != nil {
		return err
	}

	pubDur := pubEnd.Sub(start)
	acked := pub.stats.acked.Load()
	r.duration("publishing took", pubDur)
	r.count("published (201)", acked)
	r.metric("published/s", float64(acked)/pubDur.Seconds(), "/s")
	rateShortfall(r, o, float64(acked)/pubDur.Seconds())
	var lost, dupes, misrouted, unknown, unacked, received int64
	lostOn := make([]int64, nodes)
	for c, b := range books {
		tl := b.tally(pubEnd.UnixNano(), c, nodes)
		received += tl.Received
		lost += tl.Lost
		unacked += tl.UnackedDelivered
		for i, n := range tl.LostOn {
			lostOn[i] += n
		}
		dupes += b.dupes.Load()
		misrouted += b.misrouted.Load()
		unknown += b.unknown.Load()
	}
	r.count("delivered", received)
	r.metric("delivered/s (all sockets, while publishing)", float64(sumDelivered(books, pubEnd.UnixNano(), nodes))/pubDur.Seconds(), "/s")
	if drained {
		r.duration("drain (end of publishing to last receipt)", drainTook)
	}
	for i := range nodes {
		var h histogram
		for _, b := range books {
			h.merge(&b.lat[i])
		}
		name := fmt.Sprintf("node %d", i+1)
		if i == victim {
			name += " (killed)"
		}
		r.count(name+": received", h.count())
		for _, q := range []float64{50, 99} {
			r.duration(fmt.Sprintf("%s: latency (publish to socket) p%g", name, q), h.percentile(q))
		}
		r.duration(name+": latency (publish to socket) max", h.maximum())
		r.count(name+": lost", lostOn[i])
		commitFiguresOf(r, fmt.Sprintf("node %d", i+1), histBefore[i], histAfter[i])
	}
	if victim >= 0 {
		// The surviving nodes while the victim's clients move over: what was published
		// in the killWindow from the kill.
		var survivors histogram
		for i := range nodes {
			if i == victim {
				continue
			}
			var h histogram
			for _, b := range books {
				h.merge(&b.during[i])
			}
			survivors.merge(&h)
			name := fmt.Sprintf("node %d, its own sockets, published in the %s from the kill", i+1, killWindow)
			r.count(name+": received", h.count())
			r.duration(name+": latency (publish to socket) p99", h.percentile(99))
		}
		latency(r, fmt.Sprintf("surviving nodes, their own sockets, published in the %s from the kill: latency (publish to socket)", killWindow), &survivors)
	}
	var all histogram
	for _, b := range books {
		for i := range b.lat {
			all.merge(&b.lat[i])
		}
	}
	latency(r, "latency (publish to socket)", &all)
	latency(r, "request latency (until 201)", &pub.stats.latency)
	busFigures(r, before, after, scrapeWindow)
	if victim >= 0 {
		kill.report(r, victim)
	}
	publishFailures(r, &pub.stats)
	r.count("received although not acknowledged", unacked)
	r.check("lost (acknowledged, never received)", lost)
	r.check("duplicate notifications (same marker twice)", dupes)
	r.check("misrouted (another user's notification)", misrouted)
	r.check("unknown markers", unknown)
	socketChecksOf(r, fleets)
	return nil
}

// clusterConditions adds the layout of the nodes and the publishing flags.
func (s *session) clusterConditions(r *Result) {
	o, ns := s.o, s.nodes
	r.cond("nodes", len(ns.nodes))
	for i, t := range ns.nodes {
		r.cond(fmt.Sprintf("node %d", i+1), t.desc)
	}
	if ns.pg != nil {
		r.cond("PostgreSQL pool per node (HERALD_DB_MAX_CONNS)", ns.pool)
	}
	if o.scenario == scenarioIdle {
		return
	}
	if len(ns.nodes) > 1 {
		r.cond("layout", fmt.Sprintf("user u publishes on node u mod %d + 1; its %d socket(s) on the next node(s), never the publisher's", len(ns.nodes), o.sockets))
	} else {
		r.cond("layout", fmt.Sprintf("%d socket(s) per user on the one node", o.sockets))
	}
	r.cond("users", o.n)
	r.cond("sockets per user", o.sockets)
	r.cond("publish for", o.duration)
	if o.rate > 0 {
		r.cond("target rate", fmtRate(o.rate))
	} else {
		r.cond("target rate", "flat out")
	}
	r.cond("publish", "POST /notifications")
	r.cond("concurrent publishers", o.publishers)
	r.cond("drain window", o.drain)
	if o.killAt > 0 {
		r.cond("kill", fmt.Sprintf("node %d, SIGKILL, %s after publishing starts; its clients resume on the next node, its publishers move there too", len(ns.nodes), o.killAt))
	}
}

// connectFleets connects every fleet and waits until every socket has its first frame.
func (s *session) connectFleets(ctx context.Context, r *Result, fleets []*fleet) error {
	total := int64(0)
	for _, f := range fleets {
		total += int64(f.cfg.n)
	}
	sum := func() (c, failed int64) {
		for _, f := range fleets {
			c += f.connected.Load()
			failed += f.failed.Load()
		}
		return c, failed
	}
	start := time.Now()
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		c, failed := sum()
		return connectLine(s.o.scenario, el, c, total, rm.rate(c, el), failed)
	})
	for _, f := range fleets {
		f.start(ctx)
	}
	deadline := time.Now().Add(s.o.connectTimeout)
	for _, f := range fleets {
		f.waitReady(ctx, time.Until(deadline))
	}
	p.Stop()
	c, failed := sum()
	if c != total {
		var first error
		for _, f := range fleets {
			if first = f.firstError(); first != nil {
				break
			}
		}
		return fmt.Errorf("%d of %d sockets connected within %s (failed %d); first error: %v",
			c, total, s.o.connectTimeout, failed, first)
	}
	var last int64
	for _, f := range fleets {
		last = max(last, f.lastFirst.Load())
	}
	took := time.Duration(last - start.UnixNano())
	r.duration("connect time (all sockets)", took)
	r.metric("connect rate", float64(total)/took.Seconds(), "/s")
	return nil
}

// killReport is what killing a node found.
type killReport struct {
	at      time.Time
	victims int64 // sockets on the node when it was killed
	resumed int64 // of them, back on another node with since
	took    time.Duration
	err     error
}

// killNode kills node victim at when, and waits until every one of its sockets has
// resumed on another node.
func (s *session) killNode(ctx context.Context, victim int, when time.Time, fleets []*fleet, down []atomic.Bool) killReport {
	var kr killReport
	nodes := len(s.nodes.nodes)
	for c, f := range fleets {
		for u := range f.cfg.n {
			if socketNode(f.cfg.offset+u, c, nodes) == victim {
				kr.victims++
			}
		}
	}
	t := time.NewTimer(time.Until(when))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		kr.err = ctx.Err()
		return kr
	}
	base := resumedOf(fleets)
	kr.at = time.Now()
	down[victim].Store(true)
	if kr.err = s.nodes.kill(victim); kr.err != nil {
		return kr
	}
	pollUntil(ctx, clusterResumeTimeout, 10*time.Millisecond, func() bool {
		return resumedOf(fleets)-base >= kr.victims
	})
	kr.resumed = resumedOf(fleets) - base
	var last int64
	for _, f := range fleets {
		last = max(last, f.lastResume.Load())
	}
	kr.took = time.Duration(last - kr.at.UnixNano())
	return kr
}

func (kr *killReport) report(r *Result, victim int) {
	r.count(fmt.Sprintf("sockets on node %d when it was killed", victim+1), kr.victims)
	r.count("of them resumed on another node with since", kr.resumed)
	if kr.err != nil {
		r.note("killing node %d: %v", victim+1, kr.err)
	}
	if kr.resumed >= kr.victims && kr.err == nil {
		r.duration("time until every socket of the killed node resumed elsewhere", kr.took)
	}
	r.check("sockets of the killed node that did not resume", max(kr.victims-kr.resumed, 0))
}

func resumedOf(fleets []*fleet) (n int64) {
	for _, f := range fleets {
		n += f.resumed.Load()
	}
	return n
}

func worstP99(books []*copyBook) time.Duration {
	var w time.Duration
	for _, b := range books {
		for i := range b.lat {
			w = max(w, b.lat[i].percentile(99))
		}
	}
	return w
}

func sumDelivered(books []*copyBook, cutoff int64, nodes int) (n int64) {
	for c, b := range books {
		n += b.tally(cutoff, c, nodes).ReceivedBy
	}
	return n
}

// busFigures adds the bus and head-check rates of the nodes over window, from their
// metrics before and after (a node killed meanwhile counts with what it had before:
// nothing).
func busFigures(r *Result, before, after []map[string]float64, window time.Duration) {
	delta := func(name string) (d float64) {
		for i := range after {
			if after[i] != nil && before[i] != nil {
				d += after[i][name] - before[i][name]
			}
		}
		return d
	}
	sec := window.Seconds()
	r.metric("bus messages published/s (all nodes)", delta(metricBusPub)/sec, "/s")
	r.metric("bus messages received/s (all nodes)", delta(metricBusRecv)/sec, "/s")
	r.metric("head checks/s (all nodes)", delta(metricChecks)/sec, "/s")
	r.count("entries repaired by head checks", int64(delta(metricRepaired)))
	r.count("slow-consumer events", int64(delta(metricSlow)))
	r.count("bus faults", int64(delta(metricBusFaults)))
	r.duration("metrics window", window)
}

// socketChecksOf adds what every fleet's streams and connections found.
func socketChecksOf(r *Result, fleets []*fleet) {
	var c streamCounts
	var frames, drops, dialErrs, bad, errFrames, gaveUp int64
	for _, f := range fleets {
		c.add(f.counts())
		frames += f.frames.Load()
		drops += f.drops.Load()
		dialErrs += f.dialErrors.Load()
		bad += f.badFrames.Load()
		errFrames += f.errorFrames.Load()
		gaveUp += f.gaveUp.Load()
	}
	r.count("log entries received", c.Entries)
	r.count("server frames received", frames)
	r.count("unexpected closes (reconnected)", drops)
	r.count("failed handshakes (retried)", dialErrs)
	r.check("duplicates (same seq or id on one socket)", c.Duplicates)
	r.check("seq gaps (entries skipped)", c.Skipped)
	r.check("seq going backwards", c.Reordered)
	r.check("bad frames", bad)
	r.check("error frames", errFrames)
	r.check("clients that could not reconnect", gaveUp)
	for _, f := range fleets {
		noteCloses(r, f)
	}
}
