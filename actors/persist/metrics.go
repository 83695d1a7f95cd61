package persist

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/persistence"
)

// latencyBuckets are the bounds, in seconds, of the commit time and wait histograms:
// fine below a millisecond, where a commit on a fast disk lies, and from 10 to 100 ms,
// where a large batch's commit (1,000 notifications) lies.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .0075, .01, .015, .02, .025, .03, .04, .05, .075, .1, .25, .5, 1, 2.5}

// Metrics of the persistence actor. A nil *Metrics records nothing.
type Metrics struct {
	stored      prometheus.Counter
	batchSize   prometheus.Histogram
	commitTime  prometheus.Histogram
	commitWait  prometheus.Histogram
	storeErrors prometheus.Counter
}

// NewMetrics registers the actor's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_notifications_stored_total",
			Help: "Notifications stored (idempotent replays not counted).",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_store_batch_size",
			Help:    "Operations per committed store transaction.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_store_commit_seconds",
			Help:    "Time of one store transaction (Applier.Apply), failed ones included.",
			Buckets: latencyBuckets,
		}),
		commitWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_store_commit_wait_seconds",
			Help: "Time a write waited at the persistence actor before its transaction began: for the commit " +
				"in flight to end and its batch to leave.",
			Buckets: latencyBuckets,
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_store_errors_total",
			Help: "Store transactions that failed (every caller in the batch got 503).",
		}),
	}
	reg.MustRegister(m.stored, m.batchSize, m.commitTime, m.commitWait, m.storeErrors)
	return m
}

func (m *Metrics) batch(ops []persistence.Op, results []persistence.Result) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(len(ops)))
	stored := 0
	for i := range results {
		for _, replayed := range results[i].Replayed {
			if !replayed && results[i].Err == nil {
				stored++
			}
		}
	}
	m.stored.Add(float64(stored))
}

func (m *Metrics) commitTook(d time.Duration) {
	if m == nil {
		return
	}
	m.commitTime.Observe(d.Seconds())
}

func (m *Metrics) waited(d time.Duration) {
	if m == nil {
		return
	}
	m.commitWait.Observe(d.Seconds())
}

func (m *Metrics) storeError() {
	if m == nil {
		return
	}
	m.storeErrors.Inc()
}
