package inbox

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts inbox actors. A nil *Metrics records nothing.
type Metrics struct {
	actors prometheus.Gauge
}

// NewMetrics registers the inbox metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{actors: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_inbox_actors",
		Help: "Inbox actors alive: users with at least one socket, or within the grace after their last.",
	})}
	reg.MustRegister(m.actors)
	return m
}

func (m *Metrics) inboxes(delta float64) {
	if m != nil {
		m.actors.Add(delta)
	}
}
