package ws

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics records connections and frames. A nil *Metrics records nothing.
type Metrics struct {
	conns        prometheus.Gauge
	framesSent   prometheus.Counter
	framesRecv   prometheus.Counter
	slowCloses   prometheus.Counter
	frameCloses  prometheus.Counter
	storeToWrite prometheus.Histogram
}

// NewMetrics registers the WebSocket metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_ws_connections",
			Help: "Open WebSocket connections.",
		}),
		framesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_frames_sent_total",
			Help: "Frames written to WebSocket connections.",
		}),
		framesRecv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_frames_received_total",
			Help: "Client frames read from WebSocket connections.",
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_slow_consumer_closes_total",
			Help: "Connections dropped as too slow: closed with 4008 (outbound queue full), or without a close frame when a write timed out.",
		}),
		frameCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_frame_rate_closes_total",
			Help: "Connections closed with 1008: the client sent frames faster than the frame rate allows.",
		}),
		storeToWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_ws_delivery_latency_seconds",
			Help:    "From the commit of a log entry to its frame written on a socket, for live deliveries.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	reg.MustRegister(m.conns, m.framesSent, m.framesRecv, m.slowCloses, m.frameCloses, m.storeToWrite)
	return m
}

func (m *Metrics) connected(delta float64) {
	if m != nil {
		m.conns.Add(delta)
	}
}

func (m *Metrics) sent(stored time.Time) {
	if m == nil {
		return
	}
	m.framesSent.Inc()
	if !stored.IsZero() {
		m.storeToWrite.Observe(time.Since(stored).Seconds())
	}
}

func (m *Metrics) clientFrame() {
	if m != nil {
		m.framesRecv.Inc()
	}
}

func (m *Metrics) slowConsumer() {
	if m != nil {
		m.slowCloses.Inc()
	}
}

func (m *Metrics) tooManyFrames() {
	if m != nil {
		m.frameCloses.Inc()
	}
}
