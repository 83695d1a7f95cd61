package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted values.
func exactPercentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	values := []int64{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<20 + 1, 123456789, math.MaxInt64}
	for i := range int64(5000) {
		values = append(values, i)
	}
	for _, v := range values {
		b := bucketOf(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside 0..%d", v, b, histBuckets-1)
		}
		if hi := bucketHigh(b); v > hi {
			t.Fatalf("bucketOf(%d) = %d, whose high end %d is below it", v, b, hi)
		}
		if b > 0 && bucketHigh(b-1) >= v {
			t.Fatalf("bucketOf(%d) = %d, but bucket %d already reaches %d", v, b, b-1, bucketHigh(b-1))
		}
	}
}

func TestPercentilesMatchSortedValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	distributions := map[string]func() int64{
		"uniform 0..10ms":   func() int64 { return rng.Int64N(int64(10 * time.Millisecond)) },
		"exponential ~1ms":  func() int64 { return int64(rng.ExpFloat64() * float64(time.Millisecond)) },
		"lognormal, tailed": func() int64 { return int64(math.Exp(rng.NormFloat64()*2+12)) + 1 },
		"small integers":    func() int64 { return rng.Int64N(300) },
	}
	for name, draw := range distributions {
		t.Run(name, func(t *testing.T) {
			var h histogram
			values := make([]int64, 0, 20000)
			for range cap(values) {
				v := draw()
				values = append(values, v)
				h.record(time.Duration(v))
			}
			slices.Sort(values)
			for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
				want := exactPercentile(values, p)
				got := int64(h.percentile(p))
				// Never below the true value, and at most one bucket's width above.
				if got < want || float64(got-want) > float64(want)/subCount+1 {
					t.Errorf("p%g = %d, want %d (within 1/%d)", p, got, want, subCount)
				}
			}
			if got, want := int64(h.maximum()), values[len(values)-1]; got != want {
				t.Errorf("max = %d, want %d", got, want)
			}
			if h.count() != int64(len(values)) {
				t.Errorf("count = %d, want %d", h.count(), len(values))
			}
		})
	}
}

func TestPercentileSmallSamples(t *testing.T) {
	var h histogram
	if h.percentile(99) != 0 || h.mean() != 0 || h.maximum() != 0 {
		t.Fatal("an empty histogram must report zeros")
	}
	for _, v := range []time.Duration{10, 20, 30, 40} {
		h.record(v)
	}
	// Nearest rank over 4 values: p50 is the 2nd, p51 the 3rd, p100 the 4th.
	for p, want := range map[float64]time.Duration{25: 10, 50: 20, 51: 30, 99: 40, 100: 40} {
		if got := h.percentile(p); got != want {
			t.Errorf("p%g = %v, want %v", p, got, want)
		}
	}
	if h.mean() != 25 {
		t.Errorf("mean = %v, want 25ns", h.mean())
	}
	h.record(-5 * time.Second) // clock skew: counts as zero
	if got := h.percentile(1); got != 0 {
		t.Errorf("p1 after a negative sample = %v, want 0", got)
	}
}

func TestHistogramConcurrentRecording(t *testing.T) {
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(time.Duration(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if h.count() != 8000 || h.maximum() != 7999 {
		t.Fatalf("count %d max %v, want 8000 and 7999ns", h.count(), h.maximum())
	}
	if p := h.percentile(50); p < 3999 || p > 4031 {
		t.Fatalf("p50 = %v, want about 4µs", p)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	for i := range b.N {
		h.record(time.Duration(i))
	}
}
