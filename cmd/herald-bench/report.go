package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Result is what a scenario measured, as printed in Markdown and written as JSON.
type Result struct {
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	// Store is the store of the server, as it names it ("embedded DIR", "postgres") or
	// as the bench does ("postgres (throwaway, fsync on)"); "" when unknown.
	Store string `json:"store,omitempty"`
	// Params are the flags that shape the load, for tools comparing runs (-summarize).
	Params     Params   `json:"params"`
	Conditions []Field  `json:"conditions"`
	Metrics    []Metric `json:"metrics"`
	// Checks are counts that must be zero.
	Checks []Check `json:"checks"`
	// Notes are things worth knowing that are not figures (why connections closed, the
	// first error).
	Notes []string `json:"notes,omitempty"`
	// Windows are the figures of each -window of publishing (deliver and events on one
	// server), Drift the last of them against the first; absent without -window.
	Windows []Window `json:"windows,omitempty"`
	Drift   *Drift   `json:"drift,omitempty"`
}

// Params are the flags that shape a run's load; those of no use to its scenario are
// left out.
type Params struct {
	N          int     `json:"n"`
	Duration   string  `json:"duration,omitempty"` // hold (idle) or publish for
	Rate       float64 `json:"rate"`               // per second; 0: flat out (publishing scenarios)
	Publish    string  `json:"publish,omitempty"`
	BatchSize  int     `json:"batchSize,omitempty"`
	Publishers int     `json:"publishers,omitempty"`
	Rounds     int     `json:"rounds,omitempty"`
	Fanout     int     `json:"fanout,omitempty"`
	// Unread and UnreadBytes are the unread notifications seeded per user and the
	// payload size of each (idle-unread).
	Unread      int `json:"unread,omitempty"`
	UnreadBytes int `json:"unreadBytes,omitempty"`
	Nodes       int `json:"nodes,omitempty"`       // -nodes: herald nodes the bench started
	Sockets     int `json:"sockets,omitempty"`     // -nodes, deliver: sockets per user
	ServerProcs int `json:"serverProcs,omitempty"` // -server-procs: each server's GOMAXPROCS
}

// params returns the flags of o that shape its scenario's load.
func (o *options) params() Params {
	p := Params{N: o.n, Nodes: o.nodes, ServerProcs: o.serverProcs}
	if o.nodes > 0 && o.scenario == scenarioDeliver {
		p.Sockets = o.sockets
	}
	switch o.scenario {
	case scenarioIdle:
		p.Duration = o.duration.String()
	case scenarioIdleUnread:
		p.Duration, p.Unread, p.UnreadBytes = o.duration.String(), o.unread, o.unreadBytes
	case scenarioBroadcast:
		p.Rounds, p.Publishers = o.rounds, o.publishers
	case scenarioEvents:
		p.Duration, p.Rate, p.Publishers, p.Fanout = o.duration.String(), o.rate, o.publishers, o.fanout
	default: // deliver, reconnect-storm
		p.Duration, p.Rate, p.Publishers, p.Publish = o.duration.String(), o.rate, o.publishers, o.publish
		if o.publish != publishSingle {
			p.BatchSize = o.batchSize
		}
	}
	return p
}

// Field is one condition of the run.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Metric is one figure. Unit is "s" (seconds), "B" (bytes), "/s", "cores" or "" (a count).
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Check is a count that must be zero.
type Check struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
	OK    bool   `json:"ok"`
}

func (r *Result) cond(name string, value any) {
	r.Conditions = append(r.Conditions, Field{name, fmt.Sprint(value)})
}

func (r *Result) metric(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{name, value, unit})
}

func (r *Result) duration(name string, d time.Duration) { r.metric(name, d.Seconds(), "s") }

func (r *Result) count(name string, n int64) { r.metric(name, float64(n), "") }

func (r *Result) check(name string, n int64) {
	r.Checks = append(r.Checks, Check{name, n, n == 0})
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// passed reports whether every check is zero.
func (r *Result) passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// formatValue shows a metric in its unit.
func (m Metric) formatValue() string {
	switch m.Unit {
	case "s":
		return fmtDuration(time.Duration(m.Value * float64(time.Second)))
	case "B":
		return fmtBytes(m.Value)
	case "/s":
		return fmtRate(m.Value)
	case "cores":
		return strconv.FormatFloat(m.Value, 'f', 2, 64) + " cores"
	default:
		return strconv.FormatFloat(m.Value, 'f', -1, 64)
	}
}

// writeMarkdown prints r as a Markdown section: conditions, then one table of figures
// and checks.
func (r *Result) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## herald-bench %s\n\n", r.Scenario)
	for _, c := range r.Conditions {
		fmt.Fprintf(&b, "- %s: %s\n", c.Name, c.Value)
	}
	b.WriteString("\n| measure | value |\n|---|---|\n")
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, "| %s | %s |\n", m.Name, m.formatValue())
	}
	for _, c := range r.Checks {
		verdict := "ok"
		if !c.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "| %s | %d (%s) |\n", c.Name, c.Count, verdict)
	}
	writeWindows(&b, r.Windows, r.Drift)
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "Note: %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJSON writes r, indented, to path.
func (r *Result) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
