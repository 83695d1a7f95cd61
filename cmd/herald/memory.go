package main

import (
	"bytes"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// anonMemory exports the process's resident anonymous memory, RssAnon in
// /proc/self/status, read on each scrape: the figure to alarm on. The process
// collector's resident memory (VmRSS) also counts the pages of mapped files, and the
// embedded store maps its whole file: as the store is read, VmRSS grows with it (by
// hundreds of MiB) while what the process itself holds does not, and the kernel takes
// those pages back under pressure. Where the file cannot be read (not Linux), the
// metric is absent.
type anonMemory struct {
	path string // /proc/self/status
	desc *prometheus.Desc
}

func newAnonMemory(path string) anonMemory {
	return anonMemory{path: path, desc: prometheus.NewDesc("process_anon_memory_bytes",
		"Resident anonymous memory of the process in bytes (RssAnon of /proc/self/status): "+
			"resident memory less the pages of mapped files, such as the embedded store's.", nil, nil)}
}

func (c anonMemory) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c anonMemory) Collect(ch chan<- prometheus.Metric) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return
	}
	if n, ok := parseRssAnon(b); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
	}
}

// parseRssAnon reads the "RssAnon: N kB" line of a /proc/PID/status file, in bytes.
func parseRssAnon(status []byte) (int64, bool) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("RssAnon:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err == nil && kb >= 0
	}
	return 0, false
}
