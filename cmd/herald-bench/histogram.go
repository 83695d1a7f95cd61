package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram's buckets are log-linear: values below 2·subCount ns each have their
// own bucket, and every power of two above is split into subCount buckets, so a
// reported value is never more than 1/subCount (0.8%) above the true one.
const (
	subBits     = 7
	subCount    = 1 << subBits
	histBuckets = (64 - subBits) * subCount
)

// histogram counts durations. Recording neither locks nor allocates, so receivers on
// many goroutines share one; reading it while they record gives a consistent enough
// view for a progress line and an exact one once they have stopped.
type histogram struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	sum    atomic.Int64
	max    atomic.Int64
}

// bucketOf returns the bucket of v ≥ 0.
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1 // v>>shift is in [subCount, 2·subCount)
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketHigh returns the largest value in bucket i.
func bucketHigh(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	top := int64(i%subCount + subCount)
	return (top+1)<<shift - 1
}

// record counts d; negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// count returns how many durations were recorded.
func (h *histogram) count() int64 { return h.n.Load() }

// maximum returns the largest duration recorded, exactly.
func (h *histogram) maximum() time.Duration { return time.Duration(h.max.Load()) }

// mean returns the average duration, 0 when there is none.
func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// percentile returns the p-th percentile (0 < p ≤ 100) by the nearest-rank method: the
// smallest recorded value with at least p% of the values at or below it, as the high
// end of its bucket and never above the maximum. 0 when nothing was recorded.
func (h *histogram) percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(bucketHigh(i), h.max.Load()))
		}
	}
	return h.maximum()
}
