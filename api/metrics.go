package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts requests by route pattern and status and times them.
type httpMetrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	bodiesRefused prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		bodiesRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_http_body_budget_refused_total",
			Help: "Requests with large bodies (batch, events) answered 503 because HERALD_BODY_BYTES_IN_FLIGHT was reached.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.bodiesRefused)
	return m
}

func (m *httpMetrics) bodyRefused() { m.bodiesRefused.Inc() }

func (m *httpMetrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	if d > 0 {
		m.latency.WithLabelValues(route).Observe(d.Seconds())
	}
}

func (m *httpMetrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.observe(route, sw.code, time.Since(start))
	})
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the WebSocket upgrade).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
