package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// progress prints a line on w every interval until stopped.
type progress struct {
	stop, done chan struct{}
}

// startProgress calls line with the time since the start, every interval, and prints
// what it returns. A nil w prints nothing.
func startProgress(w io.Writer, interval time.Duration, line func(elapsed time.Duration) string) *progress {
	p := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(p.done)
		if w == nil {
			<-p.stop
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	}()
	return p
}

// Stop stops the printing and waits until no line is being printed.
func (p *progress) Stop() {
	close(p.stop)
	<-p.done
}

// rateMeter turns a growing count into a per-second rate between calls.
type rateMeter struct {
	last int64
	at   time.Duration
}

// rate returns the count's growth per second since the previous call.
func (r *rateMeter) rate(count int64, elapsed time.Duration) float64 {
	d := elapsed - r.at
	if d <= 0 {
		return 0
	}
	v := float64(count-r.last) / d.Seconds()
	r.last, r.at = count, elapsed
	return v
}

// deliverLine is the progress line of the publishing scenarios.
func deliverLine(name string, elapsed time.Duration, published int64, pubRate float64, delivered int64, p99 time.Duration) string {
	return fmt.Sprintf("%s %s: published %d (%s) delivered %d p99 %s",
		name, fmtElapsed(elapsed), published, fmtRate(pubRate), delivered, fmtDuration(p99))
}

// eventsLine is the progress line of the events scenario.
func eventsLine(name string, elapsed time.Duration, events int64, eventRate float64, stored, delivered int64, p99 time.Duration) string {
	return fmt.Sprintf("%s %s: events %d (%s) stored %d delivered %d p99 %s",
		name, fmtElapsed(elapsed), events, fmtRate(eventRate), stored, delivered, fmtDuration(p99))
}

// connectLine is the progress line while connections open.
func connectLine(name string, elapsed time.Duration, connected, n int64, rate float64, failed int64) string {
	return fmt.Sprintf("%s %s: connected %d/%d (%s) failed %d",
		name, fmtElapsed(elapsed), connected, n, fmtRate(rate), failed)
}

// fmtElapsed shows whole seconds, as a progress line counts them.
func fmtElapsed(d time.Duration) string {
	return strconv.FormatInt(int64(d.Round(time.Second)/time.Second), 10) + "s"
}

// fmtRate shows a per-second rate with no decimals.
func fmtRate(v float64) string {
	return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
}

// fmtDuration shows d with three significant digits at most, in ns, µs, ms or s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return fmtSig(float64(d)/1e3) + "µs"
	case d < time.Second:
		return fmtSig(float64(d)/1e6) + "ms"
	default:
		return fmtSig(d.Seconds()) + "s"
	}
}

// fmtSig shows v ≥ 1 with up to three significant digits and no trailing zeros.
func fmtSig(v float64) string {
	prec := 2
	switch {
	case v >= 99.95:
		prec = 0
	case v >= 9.995:
		prec = 1
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fmtBytes shows n in B, KiB, MiB or GiB.
func fmtBytes(n float64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	units := [...]string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return sign + strconv.FormatFloat(n, 'f', 0, 64) + " B"
	}
	return sign + fmtSig(n) + " " + units[i]
}
