package cluster

import "github.com/prometheus/client_golang/prometheus"

// metrics counts the bridge's traffic and the bus's faults.
type metrics struct {
	pubMsgs, pubBytes   prometheus.Counter
	recvMsgs, recvBytes prometheus.Counter
	badMsgs             prometheus.Counter
	slow                prometheus.Counter
	faults              *prometheus.CounterVec
	subscriptions       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, b *Bridge) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		pubMsgs:   counter("herald_cluster_published_messages_total", "Bus messages published: one per user per committed batch."),
		pubBytes:  counter("herald_cluster_published_bytes_total", "Bytes of the bus messages published."),
		recvMsgs:  counter("herald_cluster_received_messages_total", "Bus messages received from other nodes."),
		recvBytes: counter("herald_cluster_received_bytes_total", "Bytes of the bus messages received."),
		badMsgs:   counter("herald_cluster_bad_messages_total", "Bus messages dropped because they could not be decoded."),
		slow:      counter("herald_cluster_slow_consumer_total", "Times the bus dropped messages for this node because it did not take them fast enough (each one starts a head check)."),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_cluster_faults_total",
			Help: "Bus faults, by kind (disconnect, reconnect, slow_consumer, route_lost, route_added, error); each one starts a head check of every connected user.",
		}, []string{"kind"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_cluster_subscriptions",
			Help: "Users this node holds an inbox for, and so subscribes to on the bus.",
		}),
	}
	routes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_cluster_routes",
		Help: "Other nodes the embedded NATS server has a route to (0 with an external NATS).",
	}, func() float64 { return float64(b.peers.Load()) })
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_cluster_connected",
		Help: "1 while the node's connection to the bus is up.",
	}, func() float64 {
		if b.nc.IsConnected() {
			return 1
		}
		return 0
	})
	reg.MustRegister(m.pubMsgs, m.pubBytes, m.recvMsgs, m.recvBytes, m.badMsgs, m.slow, m.faults, m.subscriptions, routes, connected)
	return m
}
