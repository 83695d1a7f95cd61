package main

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Window is one -window of publishing: what was acknowledged in it, the latencies of
// what completed in it, and the server's CPU over it and memory at its end. Times are
// seconds.
type Window struct {
	// From and To are the window's bounds, in seconds since publishing started.
	From float64 `json:"from"`
	To   float64 `json:"to"`
	// Acked counts the notifications acknowledged in the window (201; events: stored,
	// as the 202s count them), AckedPerSecond the same per second of the window.
	Acked          int64   `json:"acked"`
	AckedPerSecond float64 `json:"ackedPerSecond"`
	// RequestP50 and RequestP99 are the latency of the requests answered in the window,
	// until their 201 (202).
	RequestP50 float64 `json:"requestP50"`
	RequestP99 float64 `json:"requestP99"`
	// Received counts the first receipts on sockets in the window; LatencyP50, P99 and
	// Max are their publish→socket latency. The last window's receipts include those
	// of the drain after publishing, so that the rows' Acked and Received add up to
	// the run's.
	Received   int64   `json:"received"`
	LatencyP50 float64 `json:"latencyP50"`
	LatencyP99 float64 `json:"latencyP99"`
	LatencyMax float64 `json:"latencyMax"`
	// ServerCPU is the cores the server used over the window, ServerAnon its resident
	// anonymous memory (RssAnon, bytes) at the window's end; absent when the server's
	// process could not be read.
	ServerCPU  *float64 `json:"serverCPU,omitempty"`
	ServerAnon *int64   `json:"serverRssAnon,omitempty"`
}

// Drift compares the last window with the first: each figure is last / first, 0 when
// the first is 0 or unknown.
type Drift struct {
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	ServerCPU float64 `json:"serverCPU,omitempty"`
}

// windowed is a histogram per window: record goes to the current one, which the
// window's close swaps for a fresh one. With no window open (nil) it records nothing,
// so a run without -window pays one atomic load per record.
type windowed struct{ cur atomic.Pointer[histogram] }

func (w *windowed) record(d time.Duration) {
	if h := w.cur.Load(); h != nil {
		h.record(d)
	}
}

// windowSet closes windows of a publishing run and keeps their rows. rotate is called
// by one goroutine at a time (the ticker, then the caller once the ticker has stopped).
// A receiver that loaded the histogram just before a swap may record into the window
// just closed after it was read: a receipt or two of thousands, at the boundary.
type windowSet struct {
	every    time.Duration
	start    time.Time
	lat, req *windowed     // publish→socket, request→201
	acked    *atomic.Int64 // notifications acknowledged so far
	received *atomic.Int64 // first receipts so far
	cpu      func() (time.Duration, bool)
	anon     func() (int64, bool)
	line     func(Window) // called with each row closed; nil: nothing

	from       time.Time
	ackedAt    int64
	receivedAt int64
	cpuAt      time.Duration
	cpuOK      bool
	last       *Window // end: the last window, its latencies still to be read
	rows       []Window
}

// newWindowSet opens the first window at start: fresh histograms in lat and req, and
// the counters as they stand.
func newWindowSet(every time.Duration, start time.Time, lat, req *windowed, acked, received *atomic.Int64,
	cpu func() (time.Duration, bool), anon func() (int64, bool)) *windowSet {
	w := &windowSet{every: every, start: start, lat: lat, req: req, acked: acked, received: received, cpu: cpu, anon: anon}
	lat.cur.Store(new(histogram))
	req.cur.Store(new(histogram))
	w.from, w.ackedAt, w.receivedAt = start, acked.Load(), received.Load()
	w.cpuAt, w.cpuOK = cpu()
	return w
}

// serverReaders returns the readers of a server's CPU time and RssAnon; pid ≤ 0
// (unknown) reads nothing.
func serverReaders(pid int) (func() (time.Duration, bool), func() (int64, bool)) {
	cpu := func() (time.Duration, bool) {
		if pid <= 0 {
			return 0, false
		}
		c, err := readCPU(pid)
		return c, err == nil
	}
	anon := func() (int64, bool) {
		if pid <= 0 {
			return 0, false
		}
		n, err := readAnon(pid)
		return n, err == nil
	}
	return cpu, anon
}

// counters closes the counters of the window ending at now and opens the next.
func (w *windowSet) counters(now time.Time) Window {
	row := Window{From: w.from.Sub(w.start).Seconds(), To: now.Sub(w.start).Seconds()}
	acked := w.acked.Load()
	row.Acked = acked - w.ackedAt
	if d := now.Sub(w.from).Seconds(); d > 0 {
		row.AckedPerSecond = float64(row.Acked) / d
	}
	c, ok := w.cpu()
	if ok && w.cpuOK && now.After(w.from) {
		cores := (c - w.cpuAt).Seconds() / now.Sub(w.from).Seconds()
		row.ServerCPU = &cores
	}
	if n, ok := w.anon(); ok {
		row.ServerAnon = &n
	}
	w.from, w.ackedAt, w.cpuAt, w.cpuOK = now, acked, c, ok
	return row
}

// latencies fills row with the receipts since the previous call and the percentiles
// of its window's histograms. Received is counted apart from the histogram, so that
// a receipt recorded across a swap is still counted once.
func (w *windowSet) latencies(row *Window, lat, req *histogram) {
	n := w.received.Load()
	row.Received, w.receivedAt = n-w.receivedAt, n
	if req != nil {
		row.RequestP50, row.RequestP99 = req.percentile(50).Seconds(), req.percentile(99).Seconds()
	}
	if lat != nil {
		row.LatencyP50, row.LatencyP99 = lat.percentile(50).Seconds(), lat.percentile(99).Seconds()
		row.LatencyMax = lat.maximum().Seconds()
	}
}

// rotate closes the window ending at now and opens the next.
func (w *windowSet) rotate(now time.Time) {
	lat, req := w.lat.cur.Swap(new(histogram)), w.req.cur.Swap(new(histogram))
	row := w.counters(now)
	w.latencies(&row, lat, req)
	w.add(row)
}

// end closes the last window's counters at now, the end of publishing; its histograms
// stay in place for the receipts of the drain, until finish.
func (w *windowSet) end(now time.Time) {
	row := w.counters(now)
	w.last = &row
}

// finish reads the last window's latencies, once the receivers have stopped, and
// returns every row. Nothing is recorded into a window after it.
func (w *windowSet) finish() []Window {
	lat, req := w.lat.cur.Swap(nil), w.req.cur.Swap(nil)
	if w.last != nil {
		w.latencies(w.last, lat, req)
		w.add(*w.last)
		w.last = nil
	}
	return w.rows
}

func (w *windowSet) add(row Window) {
	w.rows = append(w.rows, row)
	if w.line != nil {
		w.line(row)
	}
}

// tick closes a window every w.every from w.start, until stop is closed or the next
// close would fall at or after end (the caller closes the last window then); done is
// closed when it returns.
func (w *windowSet) tick(end time.Time, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for k := 1; ; k++ {
		at := w.start.Add(time.Duration(k) * w.every)
		if !at.Before(end) {
			return
		}
		t.Reset(time.Until(at))
		select {
		case <-stop:
			return
		case <-t.C:
			w.rotate(time.Now())
		}
	}
}

// windowRun is a windowSet ticking while publishing goes on.
type windowRun struct {
	set        *windowSet
	stop, done chan struct{}
}

// startWindows opens the first window at start and closes one every -window until
// end; nil when -window is off.
func (s *session) startWindows(start, end time.Time, rc *receipts, st *publishStats) *windowRun {
	if s.o.window <= 0 {
		return nil
	}
	cpu, anon := serverReaders(s.t.pid)
	set := newWindowSet(s.o.window, start, &rc.win, &st.window, &st.acked, &rc.delivered, cpu, anon)
	if s.progress != nil {
		n := 0
		set.line = func(row Window) {
			n++
			fmt.Fprintln(s.progress, windowLine(s.o.scenario, n, row))
		}
	}
	wr := &windowRun{set: set, stop: make(chan struct{}), done: make(chan struct{})}
	go set.tick(end, wr.stop, wr.done)
	return wr
}

// end stops the ticker and closes the last window's counters at now (the end of
// publishing).
func (wr *windowRun) end(now time.Time) {
	if wr == nil {
		return
	}
	close(wr.stop)
	<-wr.done
	wr.set.end(now)
}

// finish completes the last window, once the receivers have stopped, and puts the rows
// and the drift into r.
func (wr *windowRun) finish(r *Result) {
	if wr == nil {
		return
	}
	r.Windows = wr.set.finish()
	r.Drift = drift(r.Windows)
}

// drift compares the last window with the first; nil with fewer than two.
func drift(rows []Window) *Drift {
	if len(rows) < 2 {
		return nil
	}
	first, last := rows[0], rows[len(rows)-1]
	d := &Drift{P50: ratio(last.LatencyP50, first.LatencyP50), P99: ratio(last.LatencyP99, first.LatencyP99)}
	if first.ServerCPU != nil && last.ServerCPU != nil {
		d.ServerCPU = ratio(*last.ServerCPU, *first.ServerCPU)
	}
	return d
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// windowLine is the progress line of a window closed.
func windowLine(name string, n int, w Window) string {
	return fmt.Sprintf("%s window %d (%s): acknowledged %s, request p50 %s p99 %s, received %d p50 %s p99 %s max %s, server %s %s",
		name, n, windowSpan(w), fmtRate(w.AckedPerSecond), fmtSeconds(w.RequestP50), fmtSeconds(w.RequestP99),
		w.Received, fmtSeconds(w.LatencyP50), fmtSeconds(w.LatencyP99), fmtSeconds(w.LatencyMax),
		fmtWindowCores(w.ServerCPU), fmtAnon(w.ServerAnon))
}

// windowSpan shows a window's bounds since the start of publishing, "1m0s–2m0s": at
// whole seconds, or milliseconds for a window under 10s.
func windowSpan(w Window) string {
	unit := time.Second
	if w.To-w.From < 10 {
		unit = time.Millisecond
	}
	at := func(s float64) string { return time.Duration(s * float64(time.Second)).Round(unit).String() }
	return at(w.From) + "–" + at(w.To)
}

func fmtWindowCores(c *float64) string {
	if c == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f cores", *c)
}

func fmtAnon(n *int64) string {
	if n == nil {
		return "—"
	}
	return fmtBytes(float64(*n))
}

// fmtRatio shows a drift ratio, "—" when unknown.
func fmtRatio(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("×%.2f", v)
}

// writeWindows appends the per-window table and the drift line to b.
func writeWindows(b *strings.Builder, rows []Window, d *Drift) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n### per window\n\n")
	b.WriteString("| window | acknowledged/s | request p50 | request p99 | received | to socket p50 | to socket p99 | to socket max | server CPU | server RssAnon |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n",
			windowSpan(w), fmtRate(w.AckedPerSecond), fmtSeconds(w.RequestP50), fmtSeconds(w.RequestP99),
			w.Received, fmtSeconds(w.LatencyP50), fmtSeconds(w.LatencyP99), fmtSeconds(w.LatencyMax),
			fmtWindowCores(w.ServerCPU), fmtAnon(w.ServerAnon))
	}
	if d != nil {
		fmt.Fprintf(b, "\ndrift (last window / first window): to socket p50 %s, p99 %s, server CPU %s\n",
			fmtRatio(d.P50), fmtRatio(d.P99), fmtRatio(d.ServerCPU))
	}
}
