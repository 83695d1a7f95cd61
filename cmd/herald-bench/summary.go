package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The columns of the combined table, one row per run.
var summaryHeader = []string{
	"scenario", "store", "N", "rate", "achieved", "p50 / p99", "server RSS per conn.",
	"server CPU", "bench CPU", "lost / dup.", "checks", "notes",
}

// summarize prints one Markdown table of the results in files (written by -out), one
// row per file in the order given. A file that does not exist (the run failed before
// it had a result) gets a row that says so.
func summarize(files []string, w io.Writer) error {
	var b strings.Builder
	b.WriteString("| " + strings.Join(summaryHeader, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(summaryHeader)) + "|\n")
	for _, path := range files {
		r, err := readResult(path)
		var row []string
		switch {
		case errors.Is(err, fs.ErrNotExist):
			row = noResultRow(path)
		case err != nil:
			return err
		default:
			row = summaryRow(r)
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\nCPU: cores used (CPU seconds per second) by the server and by the bench over the measured " +
		"phase: connecting (idle), publishing (deliver, events), broadcasting, reconnecting (reconnect-storm). " +
		"Latency: publish (or event) to socket; for broadcast, per user from the start of the round. " +
		"Lost: acknowledged but never received; dup.: a notification twice on one socket.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func readResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func noResultRow(path string) []string {
	row := make([]string, len(summaryHeader))
	for i := range row {
		row[i] = "—"
	}
	row[0] = strings.TrimSuffix(filepath.Base(path), ".json")
	row[10] = "**no result** (the run failed; see its output)"
	return row
}

// summaryRow is a result's row of the combined table.
func summaryRow(r *Result) []string {
	p := r.Params
	const none = "—"
	scenario, rate, achieved, lat, rss, srvCPU, benchCPU, notes := r.Scenario, none, none, none, none, none, none, ""
	cores := func(phase string) {
		srvCPU = r.fmtMetric("server CPU, "+phase, fmtCores)
		benchCPU = r.fmtMetric("bench CPU, "+phase, fmtCores)
	}
	latency := func(name string) {
		lat = r.fmtMetric(name+" p50", fmtSeconds) + " / " + r.fmtMetric(name+" p99", fmtSeconds)
	}
	switch r.Scenario {
	case scenarioIdle, scenarioIdleUnread:
		scenario += ", hold " + p.Duration
		if r.Scenario == scenarioIdleUnread {
			scenario += fmt.Sprintf(", %d unread of %d B", p.Unread, p.UnreadBytes)
		}
		achieved = r.fmtMetric("connect rate (snapshot frame included)", fmtPerSecond) + " connecting"
		rss = r.fmtMetric("server RSS per connection", func(v float64) string { return fmtBytes(v) })
		if _, ok := r.metricValue("server RssAnon per connection"); ok && r.Scenario == scenarioIdleUnread {
			rss += " (anon " + r.fmtMetric("server RssAnon per connection", func(v float64) string { return fmtBytes(v) }) + ")"
		}
		cores("connecting")
		notes = fmt.Sprintf("%s connected in %s; holding: server %s, bench %s cores",
			r.fmtMetric("connected", fmtCount), r.fmtMetric("connect time (start to last snapshot)", fmtSeconds),
			r.fmtMetric("server CPU, holding", fmtCores), r.fmtMetric("bench CPU, holding", fmtCores))
	case scenarioDeliver, scenarioStorm:
		scenario += ", " + publishLabel(p)
		rate = fmtTarget(p.Rate, "/s")
		achieved = r.fmtMetric("published/s", fmtPerSecond)
		latency("latency (publish to socket)")
		if r.Scenario == scenarioDeliver {
			cores("publishing")
			notes = r.fmtMetric("delivered", fmtCount) + " delivered"
		} else {
			cores("reconnecting")
			notes = fmt.Sprintf("all %s back in %s, converged in %s", fmtCount(float64(p.N)),
				r.fmtMetric("time until every client is back", fmtSeconds),
				r.fmtMetric("time to converge (all acknowledged notifications received)", fmtSeconds))
		}
	case scenarioBroadcast:
		scenario += fmt.Sprintf(", %d rounds", p.Rounds)
		if v, ok := r.metricValue("time until the last user has it (median of rounds)"); ok && v > 0 {
			achieved = fmtPerSecond(float64(p.N)/v) + " to the last user"
		}
		latency("receipt latency (per user)")
		cores("broadcasting")
		notes = fmt.Sprintf("last user after %s (median of rounds), %s (slowest)",
			r.fmtMetric("time until the last user has it (median of rounds)", fmtSeconds),
			r.fmtMetric("time until the last user has it (slowest round)", fmtSeconds))
	case scenarioEvents:
		scenario += fmt.Sprintf(", fan-out %d", p.Fanout)
		rate = fmtTarget(p.Rate, " events/s")
		achieved = r.fmtMetric("events/s accepted", func(v float64) string { return fmtCount(v) + " events/s" })
		latency("latency (event to socket)")
		cores("publishing")
		notes = r.fmtMetric("notifications/s stored", fmtCount) + " notifications/s stored, " +
			r.fmtMetric("delivered", fmtCount) + " delivered"
	}
	if p.Nodes > 0 {
		scenario += fmt.Sprintf(", %d node(s)", p.Nodes)
		if p.Sockets > 0 {
			scenario += fmt.Sprintf(", %d socket(s) per user", p.Sockets)
		}
		notes += nodesNotes(r)
	}
	if p.ServerProcs > 0 {
		scenario += fmt.Sprintf(", GOMAXPROCS %d per server", p.ServerProcs)
	}
	if r.Scenario != scenarioIdle && r.Scenario != scenarioIdleUnread && p.Duration != "" {
		notes += "; published for " + p.Duration
	}
	return []string{
		scenario, storeLabel(r.Store), fmtCount(float64(p.N)), rate, achieved, lat, rss,
		srvCPU, benchCPU, lostDup(r), checksCell(r), notes,
	}
}

// nodesNotes are the notes of a run on several nodes: the bus, a killed node, the
// machine's load.
func nodesNotes(r *Result) string {
	var b strings.Builder
	if v, ok := r.metricValue("bus messages published/s (all nodes)"); ok && r.Params.Nodes > 1 {
		fmt.Fprintf(&b, "; bus %s published, %s received, head checks %s",
			fmtPerSecond(v), r.fmtMetric("bus messages received/s (all nodes)", fmtPerSecond),
			r.fmtMetric("head checks/s (all nodes)", fmtPerSecond))
	}
	for _, m := range r.Metrics {
		if strings.HasPrefix(m.Name, "sockets on node ") && strings.HasSuffix(m.Name, " when it was killed") {
			fmt.Fprintf(&b, "; %s SIGKILLed: its %s sockets resumed elsewhere in %s",
				strings.TrimSuffix(strings.TrimPrefix(m.Name, "sockets on "), " when it was killed"), fmtCount(m.Value),
				r.fmtMetric("time until every socket of the killed node resumed elsewhere", fmtSeconds))
		}
	}
	for _, c := range r.Conditions {
		if c.Name == "load average (1, 5, 15 min) at the start" {
			fmt.Fprintf(&b, "; load average %s at the start", c.Value)
		}
	}
	return b.String()
}

// storeLabel shortens the store to its kind: "embedded /tmp/x/data" is "embedded".
func storeLabel(store string) string {
	switch {
	case store == "":
		return "—"
	case strings.HasPrefix(store, "embedded "):
		return "embedded"
	}
	return store
}

func publishLabel(p Params) string {
	switch p.Publish {
	case publishBatch:
		return fmt.Sprintf("batches of %d", p.BatchSize)
	case publishBoth:
		return fmt.Sprintf("single + batches of %d", p.BatchSize)
	case publishMulticast:
		return fmt.Sprintf("one body to %d users", p.BatchSize)
	}
	return "single"
}

func fmtTarget(rate float64, unit string) string {
	if rate == 0 {
		return "flat out"
	}
	return fmtCount(rate) + unit
}

// lostDup is "lost / duplicated" where the scenario publishes.
func lostDup(r *Result) string {
	lost, ok := r.checkCount("lost (acknowledged, never received)")
	if !ok {
		return "—"
	}
	dup, _ := r.checkCount("duplicate notifications (same marker twice)")
	sock, _ := r.checkCount("duplicates (same seq or id on one socket)")
	return fmt.Sprintf("%d / %d", lost, dup+sock)
}

// checksCell is "ok", or the checks that failed.
func checksCell(r *Result) string {
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, fmt.Sprintf("%s: %d", c.Name, c.Count))
		}
	}
	if len(failed) == 0 {
		return "ok"
	}
	return "**FAIL** " + strings.Join(failed, "; ")
}

func (r *Result) metricValue(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// fmtMetric formats metric name with f, "—" when the result lacks it.
func (r *Result) fmtMetric(name string, f func(float64) string) string {
	if v, ok := r.metricValue(name); ok {
		return f(v)
	}
	return "—"
}

func (r *Result) checkCount(name string) (int64, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Count, true
		}
	}
	return 0, false
}

func fmtSeconds(v float64) string   { return fmtDuration(time.Duration(v * float64(time.Second))) }
func fmtCores(v float64) string     { return strconv.FormatFloat(v, 'f', 2, 64) }
func fmtPerSecond(v float64) string { return fmtCount(v) + "/s" }

// fmtCount shows v rounded to a whole number, with thousands separators.
func fmtCount(v float64) string {
	n := int64(math.Round(v))
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}
