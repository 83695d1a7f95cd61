package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The server's histograms of its write path that the publishing scenarios report (from
// /metrics, read before and after publishing).
const (
	histCommitWait = "herald_store_commit_wait_seconds"
	histCommitTime = "herald_store_commit_seconds"
	histBatchSize  = "herald_store_batch_size"
)

// promHist is one Prometheus histogram as /metrics shows it: cumulative counts by
// upper bound (the last is +Inf), its sum and count.
type promHist struct {
	bounds []float64
	counts []float64
	sum    float64
	count  float64
}

// parseHistograms reads the histograms named in want from the Prometheus text format
// (summed over their other labels).
func parseHistograms(r io.Reader, want ...string) (map[string]*promHist, error) {
	type bucket struct{ le, n float64 }
	buckets := map[string][]bucket{}
	out := map[string]*promHist{}
	err := eachSample(r, func(name, labels string, v float64) error {
		base, kind := name, ""
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(name, suffix) {
				base, kind = strings.TrimSuffix(name, suffix), suffix
			}
		}
		if kind == "" || !slices.Contains(want, base) {
			return nil
		}
		h := out[base]
		if h == nil {
			h = &promHist{}
			out[base] = h
		}
		switch kind {
		case "_sum":
			h.sum += v
		case "_count":
			h.count += v
		case "_bucket":
			le, ok := labelValue(labels, "le")
			if !ok {
				return fmt.Errorf("metrics: bucket of %s without le", base)
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return fmt.Errorf("metrics: le of %s: %w", base, err)
			}
			buckets[base] = append(buckets[base], bucket{bound, v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name, bs := range buckets {
		sort.SliceStable(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
		h := out[name]
		for _, b := range bs {
			if n := len(h.bounds); n > 0 && h.bounds[n-1] == b.le {
				h.counts[n-1] += b.n // the same bound under other labels
				continue
			}
			h.bounds = append(h.bounds, b.le)
			h.counts = append(h.counts, b.n)
		}
	}
	return out, nil
}

// labelValue finds name="value" in a label list.
func labelValue(labels, name string) (string, bool) {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// since is what h recorded after before (a reading of the same histogram, or nil).
func (h *promHist) since(before *promHist) *promHist {
	d := &promHist{bounds: h.bounds, counts: append([]float64(nil), h.counts...), sum: h.sum, count: h.count}
	if before == nil || len(before.counts) != len(h.counts) {
		return d
	}
	for i := range d.counts {
		d.counts[i] -= before.counts[i]
	}
	d.sum -= before.sum
	d.count -= before.count
	return d
}

// quantile estimates the q-quantile (0..1) as Prometheus's histogram_quantile does:
// linearly within the bucket it falls in; in the +Inf bucket, the highest finite bound.
func (h *promHist) quantile(q float64) float64 {
	if h == nil || len(h.counts) == 0 || h.counts[len(h.counts)-1] <= 0 {
		return math.NaN()
	}
	total := h.counts[len(h.counts)-1]
	rank := q * total
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		if math.IsInf(h.bounds[i], 1) {
			if i == 0 {
				return math.NaN()
			}
			return h.bounds[i-1]
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = h.bounds[i-1], h.counts[i-1]
		}
		if c == below {
			return h.bounds[i]
		}
		return lo + (h.bounds[i]-lo)*(rank-below)/(c-below)
	}
	return h.bounds[len(h.bounds)-1]
}

// metricProcs is the server's runtime.GOMAXPROCS, as Go's collector shows it.
const metricProcs = "herald_go_sched_gomaxprocs_threads"

// serverProcs reads each server's GOMAXPROCS from its /metrics: "2", or "1, 1, 1" for
// nodes, "?" for a server that does not say.
func (s *session) serverProcs(ctx context.Context) string {
	targets := []*target{s.t}
	if s.nodes != nil {
		targets = s.nodes.nodes
	}
	var procs []string
	for _, t := range targets {
		p := "?"
		_ = getMetrics(ctx, &http.Client{Timeout: metricsTimeout}, t.base, func(r io.Reader) error {
			return eachSample(r, func(name, _ string, v float64) error {
				if name == metricProcs {
					p = strconv.FormatFloat(v, 'f', -1, 64)
				}
				return nil
			})
		})
		procs = append(procs, p)
	}
	return strings.Join(procs, ", ")
}

// scrapeHistograms reads the write path's histograms from the server's /metrics.
func scrapeHistograms(ctx context.Context, base string) (map[string]*promHist, error) {
	var hs map[string]*promHist
	err := getMetrics(ctx, &http.Client{Timeout: metricsTimeout}, base, func(r io.Reader) (err error) {
		hs, err = parseHistograms(r, histCommitWait, histCommitTime, histBatchSize)
		return err
	})
	return hs, err
}

// scrapeHistogramsAfter is scrapeHistograms at the end of a measured phase: a failure
// leaves the figures out and says so in r's notes.
func scrapeHistogramsAfter(ctx context.Context, r *Result, base string) map[string]*promHist {
	hs, err := scrapeHistograms(ctx, base)
	if err != nil {
		r.note("the server's commit histograms could not be read: %v", err)
	}
	return hs
}

// commitFigures reports what the server's histograms recorded between before and
// after: commits, operations per commit, and the p50/p99 of a write's wait for its
// transaction and of the transaction itself (estimated within the histograms' buckets).
func commitFigures(r *Result, before, after map[string]*promHist) {
	commitFiguresOf(r, "server", before, after)
}

// commitFiguresOf is commitFigures with who (the server, or "node 2" of several) in
// every label.
func commitFiguresOf(r *Result, who string, before, after map[string]*promHist) {
	if after == nil {
		return
	}
	if b := after[histBatchSize]; b != nil {
		d := b.since(before[histBatchSize])
		r.count("store commits ("+who+")", int64(d.count))
		if d.count > 0 {
			r.metric("operations per commit, mean ("+who+")", math.Round(10*d.sum/d.count)/10, "")
		}
	}
	for _, f := range []struct{ name, label string }{
		{histCommitWait, "commit wait (" + who + ": a write's wait for its transaction)"},
		{histCommitTime, "commit time (" + who + ": one transaction)"},
	} {
		h := after[f.name]
		if h == nil {
			continue
		}
		d := h.since(before[f.name])
		if d.count <= 0 {
			continue
		}
		r.duration(f.label+" p50", secondsDuration(d.quantile(.5)))
		r.duration(f.label+" p99", secondsDuration(d.quantile(.99)))
		r.duration(f.label+" mean", secondsDuration(d.sum/d.count))
	}
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
