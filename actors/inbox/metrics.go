package inbox

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts inbox actors and the router's head checks. A nil *Metrics records
// nothing.
type Metrics struct {
	actors     prometheus.Gauge
	checks     prometheus.Counter
	checkFails prometheus.Counter
	checked    prometheus.Counter
	repaired   prometheus.Counter
}

// NewMetrics registers the inbox metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		actors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_inbox_actors",
			Help: "Inbox actors alive: users with at least one socket, or within the grace after their last.",
		}),
		checks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_head_checks_total",
			Help: "Store reads of the heads of many users (CheckHeads): after a bus fault, a new subscription, an uncertain commit, and on the sweep.",
		}),
		checkFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_head_check_failures_total",
			Help: "Head checks whose store read failed; they are retried.",
		}),
		checked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_head_checked_users_total",
			Help: "Users whose inbox head was compared with the store's.",
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_head_check_repaired_entries_total",
			Help: "Entries a head check found an inbox had not received (and its sockets then read from the store).",
		}),
	}
	reg.MustRegister(m.actors, m.checks, m.checkFails, m.checked, m.repaired)
	return m
}

func (m *Metrics) inboxes(delta float64) {
	if m != nil {
		m.actors.Add(delta)
	}
}

func (m *Metrics) headCheck(users int, err error) {
	if m == nil {
		return
	}
	m.checks.Inc()
	if err != nil {
		m.checkFails.Inc()
		return
	}
	m.checked.Add(float64(users))
}

func (m *Metrics) headRepaired(entries int64) {
	if m != nil {
		m.repaired.Add(float64(entries))
	}
}
