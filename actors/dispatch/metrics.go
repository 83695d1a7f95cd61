package dispatch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// Metrics counts attempts per channel and watches the queue. A nil *Metrics records
// nothing.
type Metrics struct {
	attempts *prometheus.CounterVec
	failures *prometheus.CounterVec
	pending  *prometheus.GaugeVec
	age      *prometheus.GaugeVec
}

var channels = []herald.Channel{herald.ChannelEmail, herald.ChannelWebhook}

// NewMetrics registers the delivery metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Delivery attempts by channel and result: sent, retried (failed, will retry), dead (failed for good).",
		}, []string{"channel", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_failures_total",
			Help: "Failed delivery attempts by channel (each is then retried or dead-lettered).",
		}, []string{"channel"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_outbox_pending",
			Help: "Deliveries waiting in the outbox, by channel (escalations not yet due included).",
		}, []string{"channel"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_outbox_oldest_due_seconds",
			Help: "How long the oldest due delivery of each channel has been waiting (0 when none is due).",
		}, []string{"channel"}),
	}
	for _, c := range channels {
		for _, r := range []string{"sent", "retried", "dead"} {
			m.attempts.WithLabelValues(string(c), r)
		}
		m.failures.WithLabelValues(string(c))
		m.pending.WithLabelValues(string(c))
		m.age.WithLabelValues(string(c))
	}
	reg.MustRegister(m.attempts, m.failures, m.pending, m.age)
	return m
}

func (m *Metrics) attempt(c herald.Channel, result string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(string(c), result).Inc()
	if result != "sent" {
		m.failures.WithLabelValues(string(c)).Inc()
	}
}

func (m *Metrics) queue(stats []persistence.ChannelStats, now time.Time) {
	if m == nil {
		return
	}
	for _, c := range channels {
		m.failures.WithLabelValues(string(c))
		m.pending.WithLabelValues(string(c)).Set(0)
		m.age.WithLabelValues(string(c)).Set(0)
	}
	for _, s := range stats {
		m.pending.WithLabelValues(string(s.Channel)).Set(float64(s.Pending))
		if !s.OldestDue.IsZero() && now.After(s.OldestDue) {
			m.age.WithLabelValues(string(s.Channel)).Set(now.Sub(s.OldestDue).Seconds())
		}
	}
}
