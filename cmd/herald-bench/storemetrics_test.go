package main

import (
	"math"
	"strings"
	"testing"
)

const sampleMetrics = `# HELP herald_store_commit_seconds Time of one store transaction.
# TYPE herald_store_commit_seconds histogram
herald_store_commit_seconds_bucket{le="0.001"} 10
herald_store_commit_seconds_bucket{le="0.0025"} 90
herald_store_commit_seconds_bucket{le="0.005"} 99
herald_store_commit_seconds_bucket{le="+Inf"} 100
herald_store_commit_seconds_sum 0.2
herald_store_commit_seconds_count 100
herald_store_batch_size_bucket{le="1"} 3
herald_store_batch_size_bucket{le="+Inf"} 4
herald_store_batch_size_sum 40
herald_store_batch_size_count 4
herald_other_total 7
`

func TestParseHistogramsAndQuantile(t *testing.T) {
	hs, err := parseHistograms(strings.NewReader(sampleMetrics), histCommitTime, histBatchSize)
	if err != nil {
		t.Fatal(err)
	}
	h := hs[histCommitTime]
	if h == nil || len(h.bounds) != 4 || h.count != 100 || h.sum != 0.2 || !math.IsInf(h.bounds[3], 1) {
		t.Fatalf("commit histogram parsed as %+v", h)
	}
	// 50 of 100 lie in (1 ms, 2.5 ms], 40 of the 80 there: 1 + 1.5*40/80 = 1.75 ms.
	if q := h.quantile(.5); math.Abs(q-0.00175) > 1e-9 {
		t.Fatalf("p50 %v, want 1.75 ms", q)
	}
	// p99 is the 99th: the end of the (2.5, 5] bucket.
	if q := h.quantile(.99); math.Abs(q-0.005) > 1e-9 {
		t.Fatalf("p99 %v, want 5 ms", q)
	}
	// Beyond the last finite bound, the bound itself.
	if q := h.quantile(1); q != 0.005 {
		t.Fatalf("p100 %v, want the last finite bound", q)
	}
	if _, ok := hs["herald_other"]; ok {
		t.Fatal("an unwanted metric was parsed")
	}
}

func TestCommitFiguresAreTheDifference(t *testing.T) {
	before, _ := parseHistograms(strings.NewReader(sampleMetrics), histCommitTime, histBatchSize)
	after, _ := parseHistograms(strings.NewReader(strings.NewReplacer(
		`le="0.001"} 10`, `le="0.001"} 110`,
		`le="0.0025"} 90`, `le="0.0025"} 190`,
		`le="0.005"} 99`, `le="0.005"} 199`,
		`le="+Inf"} 100`, `le="+Inf"} 200`,
		"herald_store_commit_seconds_sum 0.2", "herald_store_commit_seconds_sum 0.25",
		"herald_store_commit_seconds_count 100", "herald_store_commit_seconds_count 200",
		"herald_store_batch_size_sum 40", "herald_store_batch_size_sum 340",
		"herald_store_batch_size_count 4", "herald_store_batch_size_count 14",
	).Replace(sampleMetrics)), histCommitTime, histBatchSize)
	var r Result
	commitFigures(&r, before, after)
	got := map[string]float64{}
	for _, m := range r.Metrics {
		got[m.Name] = m.Value
	}
	// The 100 new commits all took at most 1 ms: p50 0.5 ms, mean 0.5 ms.
	if got["store commits (server)"] != 10 || got["operations per commit, mean (server)"] != 30 {
		t.Fatalf("commits and batch size: %v", got)
	}
	if v := got["commit time (server: one transaction) p50"]; math.Abs(v-0.0005) > 1e-8 {
		t.Fatalf("p50 of the run's commits %v s, want 0.5 ms (the older ones excluded): %v", v, got)
	}
	if v := got["commit time (server: one transaction) mean"]; math.Abs(v-(0.05/100)) > 1e-8 {
		t.Fatalf("mean %v s, want 0.5 ms", v)
	}
}
