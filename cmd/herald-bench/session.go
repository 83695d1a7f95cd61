package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"
)

// fleetConfig returns the configuration of a fleet of n users from offset.
func (s *session) fleetConfig(offset, n int, onNote func(*client, *frameData, int64)) fleetConfig {
	return fleetConfig{
		wsURL:       s.t.wsURL(),
		secret:      s.t.secret,
		run:         s.run,
		offset:      offset,
		n:           n,
		sourceIPs:   s.o.sourceIPs,
		concurrency: s.o.concurrency,
		tokenTTL:    s.o.bound() + time.Hour,
		onNote:      onNote,
	}
}

// connect opens one connection for each of the -n users and waits until every one has
// had its first frame. It fails if any could not connect: the publishing scenarios
// measure delivery, not connecting.
func (s *session) connect(ctx context.Context, r *Result, onNote func(*client, *frameData, int64)) (*fleet, error) {
	f, err := newFleet(s.fleetConfig(0, s.o.n, onNote))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var rm rateMeter
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		c := f.connected.Load()
		return connectLine(s.o.scenario, el, c, int64(s.o.n), rm.rate(c, el), f.failed.Load())
	})
	f.start(ctx)
	all := f.waitReady(ctx, s.o.connectTimeout)
	p.Stop()
	if !all {
		f.stop()
		return nil, fmt.Errorf("%d of %d users connected within %s (failed %d); first error: %v",
			f.connected.Load(), s.o.n, s.o.connectTimeout, f.failed.Load(), f.firstError())
	}
	took := time.Duration(f.lastFirst.Load() - start.UnixNano())
	r.duration("connect time (all users)", took)
	r.metric("connect rate", float64(s.o.n)/took.Seconds(), "/s")
	return f, nil
}

// userIDs returns the ids of the run's first n users.
func (s *session) userIDs() []string {
	ids := make([]string, s.o.n)
	for i := range ids {
		ids[i] = userID(s.run, i)
	}
	return ids
}

// socketChecks adds what the fleet's streams and connections found. Call it after
// f.stop.
func socketChecks(r *Result, f *fleet) {
	c := f.counts()
	r.count("log entries received", c.Entries)
	r.count("server frames received", f.frames.Load())
	r.count("unexpected closes (reconnected)", f.drops.Load())
	r.count("failed handshakes (retried)", f.dialErrors.Load())
	r.check("duplicates (same seq or id on one socket)", c.Duplicates)
	r.check("seq gaps (entries skipped)", c.Skipped)
	r.check("seq going backwards", c.Reordered)
	r.check("bad frames", f.badFrames.Load())
	r.check("error frames", f.errorFrames.Load())
	r.check("clients that could not reconnect", f.gaveUp.Load())
	noteCloses(r, f)
}

// noteCloses notes why connections ended unexpectedly.
func noteCloses(r *Result, f *fleet) {
	reasons := f.closeReasons()
	if len(reasons) == 0 {
		return
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.note("connections ended unexpectedly: %s × %d", k, reasons[k])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.firstClose != nil {
		r.note("first unexpected close: %v", f.firstClose)
	}
}

// latency adds the percentiles of h under name.
func latency(r *Result, name string, h *histogram) {
	r.count(name+" samples", h.count())
	for _, p := range []float64{50, 90, 99} {
		r.duration(fmt.Sprintf("%s p%g", name, p), h.percentile(p))
	}
	r.duration(name+" max", h.maximum())
	r.duration(name+" mean", h.mean())
}

// cpu adds the cores each process used over a phase, where they could be read.
func cpu(r *Result, phase string, server, bench cpuMeter) {
	if c, ok := server.cores(); ok {
		r.metric("server CPU, "+phase, c, "cores")
	}
	if c, ok := bench.cores(); ok {
		r.metric("bench CPU, "+phase, c, "cores")
	}
}

// rateShortfall notes a target rate the publishers did not reach, and why it may be.
func rateShortfall(r *Result, o *options, achieved float64) {
	if o.rate > 0 && achieved < 0.95*o.rate {
		r.note("the target rate was not reached (%s of %s): %d publishers each wait for their answer, so either "+
			"the server is saturated (see its CPU) or more -publishers, or -publish batch, would get there",
			fmtRate(achieved), fmtRate(o.rate), o.publishers)
	}
}

// publishFailures notes the requests that were not acknowledged.
func publishFailures(r *Result, st *publishStats) {
	failures, firstErr := st.failures()
	var n int64
	codes := make([]int, 0, len(failures))
	for code, c := range failures {
		n += c
		codes = append(codes, code)
	}
	r.count("requests not acknowledged", n)
	sort.Ints(codes)
	for _, code := range codes {
		what := fmt.Sprintf("status %d", code)
		if code == 0 {
			what = "no answer"
		}
		r.note("requests not acknowledged: %s × %d", what, failures[code])
	}
	if firstErr != nil {
		r.note("first request error: %v", firstErr)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

func selfPID() int { return os.Getpid() }
