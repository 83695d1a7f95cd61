package main

import (
	"context"
	"fmt"
	"time"
)

// rssSettleTimeout bounds the wait for the server's memory to stop moving.
const rssSettleTimeout = 15 * time.Second

// steadyHold is the shortest hold whose end-of-hold memory is an idle node's: Go's
// runtime forces a collection when none has run for 2 minutes, and returns the freed
// memory to the system in the seconds after.
const steadyHold = 150 * time.Second

// idle runs the idle scenario: see the package doc.
func (s *session) idle(ctx context.Context, r *Result) error {
	o := s.o
	procs := (o.n + o.perProcess - 1) / o.perProcess
	r.cond("connections (one user each)", o.n)
	r.cond("bench processes holding them", procs)
	r.cond("source addresses", fmt.Sprintf("127.0.0.1..127.0.0.%d", o.sourceIPs))
	r.cond("handshakes in flight per process", o.concurrency)
	r.cond("hold", o.duration)
	if o.scenario == scenarioIdleUnread {
		r.cond("unread notifications per user", o.unread)
		r.cond("payload of each", fmt.Sprintf("%d B", o.unreadBytes))
		if err := s.seedUnread(ctx, r); err != nil {
			return err
		}
		if s.t.cmd != nil {
			// The memory seeding used is not what connections cost.
			if err := s.t.restart(ctx); err != nil {
				return fmt.Errorf("restarting the server after seeding: %w", err)
			}
			r.cond("server after seeding", "restarted on the same data: "+s.t.desc)
		} else {
			r.note("the server was not restarted after seeding (the bench did not start it): its RSS before " +
				"connecting includes what seeding left behind, so the per-connection figures may be low")
		}
	}

	rss0, haveRSS := s.t.rss()
	anon0, haveAnon := s.t.anon()
	start := time.Now()
	shards, pids, err := s.startShards(ctx, procs)
	if err != nil {
		return err
	}
	defer closeShards(&shards)
	connected := s.awaitConnected(ctx, r, shards, start, []int{s.t.pid}, pids)

	// Let the server's memory settle, then hold.
	rssSettled, _ := s.t.settledRSS(ctx, rssSettleTimeout)
	anonSettled, _ := s.t.anon()
	s.holdIdle(ctx, r, shards, []int{s.t.pid}, pids)
	rssHeld, _ := s.t.rss()
	anonHeld, _ := s.t.anon()
	final := closeShards(&shards)

	if haveRSS {
		r.metric("server RSS before connecting", float64(rss0), "B")
		r.metric("server RSS, all connected and settled", float64(rssSettled), "B")
		r.metric("server RSS at the end of the hold", float64(rssHeld), "B")
		r.metric("server RSS per connection", float64(rssSettled-rss0)/float64(o.n), "B")
		r.metric("server RSS per connection, end of the hold", float64(rssHeld-rss0)/float64(o.n), "B")
	}
	if haveAnon {
		// VmRSS counts the pages of mapped files too: the embedded store's, as it is read.
		r.metric("server RssAnon before connecting", float64(anon0), "B")
		r.metric("server RssAnon, all connected and settled", float64(anonSettled), "B")
		r.metric("server RssAnon per connection", float64(anonSettled-anon0)/float64(o.n), "B")
		r.metric("server RssAnon at the end of the hold", float64(anonHeld), "B")
		r.metric("server RssAnon per connection, end of the hold", float64(anonHeld-anon0)/float64(o.n), "B")
	}
	if o.duration < steadyHold {
		r.note("the hold (%s) is shorter than %s: the runtime collects garbage at least every 2 minutes, and until it "+
			"has done so after the connections, the settled figures include the connect phase's garbage not yet "+
			"returned to the system; the end-of-hold figures are the idle node's only after a hold of %s or more",
			o.duration, steadyHold, steadyHold)
	}
	idleChecks(r, o.n, connected, final)
	return nil
}

// closeShards closes the shards, adds up their final status and forgets them, so that a
// second call (a deferred one) does nothing.
func closeShards(shards *[]shard) shardStatus {
	var st shardStatus
	for _, sh := range *shards {
		st.add(sh.close())
	}
	*shards = nil
	return st
}

// sumShards adds up what the shards report.
func sumShards(shards []shard) shardStatus {
	var st shardStatus
	for _, sh := range shards {
		st.add(sh.status())
	}
	return st
}

// awaitConnected waits, with a progress line, until every shard has connected its
// share or -connect-timeout has passed, and reports the connect figures and the CPU
// the server processes (srvPIDs) and the bench's (benchPIDs) used meanwhile.
func (s *session) awaitConnected(ctx context.Context, r *Result, shards []shard, start time.Time, srvPIDs, benchPIDs []int) shardStatus {
	o := s.o
	srvCPU, benchCPU := startCPU(srvPIDs...), startCPU(benchPIDs...)
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		st := sumShards(shards)
		return connectLine(o.scenario, el, st.Connected, int64(o.n), rm.rate(st.Connected, el), st.Failed)
	})
	deadline := time.NewTimer(o.connectTimeout)
	for _, sh := range shards {
		select {
		case <-sh.ready():
		case <-deadline.C:
		case <-ctx.Done():
		}
	}
	deadline.Stop()
	p.Stop()
	cpu(r, "connecting", srvCPU, benchCPU)
	connected := sumShards(shards)
	took := time.Duration(connected.LastFirst - start.UnixNano())
	r.count("connected", connected.Connected)
	r.count("failed handshakes (retried)", connected.DialErrors)
	if connected.Connected > 0 && took > 0 {
		r.duration("connect time (start to last snapshot)", took)
		r.metric("connect rate (snapshot frame included)", float64(connected.Connected)/took.Seconds(), "/s")
	}
	return connected
}

// holdIdle holds the connections for -duration, with a progress line, and reports the
// CPU used meanwhile.
func (s *session) holdIdle(ctx context.Context, r *Result, shards []shard, srvPIDs, benchPIDs []int) {
	o := s.o
	srvCPU, benchCPU := startCPU(srvPIDs...), startCPU(benchPIDs...)
	holdStart := time.Now()
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		st := sumShards(shards)
		return fmt.Sprintf("%s %s: holding %d/%d, unexpected closes %d", o.scenario, fmtElapsed(el), st.Connected, o.n, st.Drops)
	})
	hold := time.NewTimer(o.duration)
	select {
	case <-hold.C:
	case <-ctx.Done():
		hold.Stop()
	}
	p.Stop()
	r.duration("held for", time.Since(holdStart))
	cpu(r, "holding", srvCPU, benchCPU)
}

// idleChecks reports what must be zero after an idle run of n connections.
func idleChecks(r *Result, n int, connected, final shardStatus) {
	r.check("connections that never connected", int64(n)-connected.Connected)
	r.check("unexpected closes (reconnected)", final.Drops)
	r.check("clients that could not reconnect", final.GaveUp)
	r.check("bad frames", final.BadFrames)
	r.check("error frames", final.ErrorFrames)
	if final.Err != "" {
		r.note("first error: %s", final.Err)
	}
}

// startShards starts the shares of the idle connections: in this process when one
// holds them all, else in procs children. It returns the bench's pids, for CPU figures.
func (s *session) startShards(ctx context.Context, procs int) ([]shard, []int, error) {
	pids := []int{selfPID()}
	if procs == 1 {
		f, err := newFleet(s.fleetConfig(0, s.o.n, nil))
		if err != nil {
			return nil, nil, err
		}
		f.start(ctx)
		return []shard{localShard{f}}, pids, nil
	}
	var shards []shard
	for i := range procs {
		offset := i * s.o.n / procs
		n := (i+1)*s.o.n/procs - offset
		c, err := s.startChild(offset, n, s.stderr)
		if err != nil {
			for _, sh := range shards {
				sh.close()
			}
			return nil, nil, fmt.Errorf("child process: %w", err)
		}
		shards = append(shards, c)
		pids = append(pids, c.pid())
	}
	return shards, pids, nil
}
