package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// idleNode is the node idle connection u of n opens on: the users are split into
// nodes contiguous ranges.
func idleNode(u, n, nodes int) int { return u * nodes / n }

// clusterIdle is the idle scenario on several nodes (-nodes): the -n connections split
// evenly over the nodes, each node's share held by this process or, above -per-process,
// by child processes of its own. The memory figure is the growth of all the nodes'
// resident memory together, divided by -n.
func (s *session) clusterIdle(ctx context.Context, r *Result) error {
	o, ns := s.o, s.nodes
	nodes := len(ns.nodes)
	s.clusterConditions(r)
	r.cond("connections (one user each)", o.n)
	r.cond("source addresses", fmt.Sprintf("127.0.0.1..127.0.0.%d", o.sourceIPs))
	r.cond("handshakes in flight per process", o.concurrency)
	r.cond("hold", o.duration)

	rss0, haveRSS := ns.rss()
	start := time.Now()
	var shards []shard
	pids := []int{selfPID()}
	defer closeShards(&shards)
	if o.n <= o.perProcess {
		urls := make([]string, nodes)
		for i, t := range ns.nodes {
			urls[i] = t.wsURL()
		}
		cfg := s.fleetConfig(0, o.n, nil)
		cfg.nodeURLs, cfg.nodeOf = urls, func(u int) int { return idleNode(u, o.n, nodes) }
		f, err := newFleet(cfg)
		if err != nil {
			return err
		}
		f.start(ctx)
		shards = append(shards, localShard{f})
	} else {
		for i, t := range ns.nodes {
			lo, hi := (i*o.n+nodes-1)/nodes, ((i+1)*o.n+nodes-1)/nodes // idleNode's ranges
			procs := (hi - lo + o.perProcess - 1) / o.perProcess
			on := *s
			on.t = t
			for j := range procs {
				off := lo + j*(hi-lo)/procs
				c, err := on.startChild(off, lo+(j+1)*(hi-lo)/procs-off, s.stderr)
				if err != nil {
					return fmt.Errorf("child process: %w", err)
				}
				shards = append(shards, c)
				pids = append(pids, c.pid())
			}
		}
	}
	r.cond("bench processes holding them", max(len(shards), 1))
	connected := s.awaitConnected(ctx, r, shards, start, ns.pids(), pids)

	rssSettled, _ := ns.settledRSS(ctx, rssSettleTimeout)
	s.holdIdle(ctx, r, shards, ns.pids(), pids)
	rssHeld, _ := ns.rss()
	final := closeShards(&shards)

	if haveRSS {
		r.metric("server RSS before connecting (all nodes)", float64(rss0), "B")
		r.metric("server RSS, all connected and settled (all nodes)", float64(rssSettled), "B")
		r.metric("server RSS at the end of the hold (all nodes)", float64(rssHeld), "B")
		r.metric("server RSS per connection", float64(rssSettled-rss0)/float64(o.n), "B")
	}
	idleChecks(r, o.n, connected, final)
	return nil
}

// rss returns the nodes' resident memory together.
func (ns *nodeSet) rss() (int64, bool) {
	var sum int64
	for _, t := range ns.nodes {
		n, ok := t.rss()
		if !ok {
			return 0, false
		}
		sum += n
	}
	return sum, true
}

// settledRSS waits for each node's memory to settle (see target.settledRSS), all at
// once, and returns the sum.
func (ns *nodeSet) settledRSS(ctx context.Context, timeout time.Duration) (int64, bool) {
	got := make([]int64, len(ns.nodes))
	var wg sync.WaitGroup
	for i, t := range ns.nodes {
		wg.Go(func() { got[i], _ = t.settledRSS(ctx, timeout) })
	}
	wg.Wait()
	var sum int64
	for _, n := range got {
		if n <= 0 {
			return 0, false
		}
		sum += n
	}
	return sum, true
}
