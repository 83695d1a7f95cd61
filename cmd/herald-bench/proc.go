package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: clock ticks, 100 a second on
// Linux whatever the kernel's own tick rate (it is part of the ABI).
const userHZ = 100

// readRSS returns the resident memory of process pid (VmRSS), in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// readAnon returns the resident anonymous memory of process pid (RssAnon), in bytes:
// VmRSS less the pages of mapped files (the embedded store's) and shared memory.
func readAnon(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "RssAnon")
}

// parseVmRSS reads the VmRSS line of a /proc/PID/status file.
func parseVmRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB reads the line "field: N kB" of a /proc/PID/status file, in bytes.
func parseStatusKB(status []byte, field string) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte(field+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line (a kernel thread, or a zombie?)", field)
}

// readCPU returns the CPU time (user + system) that process pid has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime, fields 14 and 15, of a /proc/PID/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are counted from
// its closing parenthesis.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat: no command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, errors.New("malformed stat: too few fields")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuMeter measures the cores a group of processes uses over a phase.
type cpuMeter struct {
	pids  []int
	cpu   time.Duration
	start time.Time
	ok    bool
}

// startCPU starts measuring pids; a pid ≤ 0 (unknown) makes the meter report nothing.
func startCPU(pids ...int) cpuMeter {
	cpu, ok := sumCPU(pids)
	return cpuMeter{pids: pids, cpu: cpu, start: time.Now(), ok: ok}
}

// cores returns the CPU seconds used per second of wall time since startCPU; ok is
// false when a process could not be read.
func (m cpuMeter) cores() (float64, bool) {
	if !m.ok {
		return 0, false
	}
	cpu, ok := sumCPU(m.pids)
	wall := time.Since(m.start)
	if !ok || wall <= 0 {
		return 0, false
	}
	return (cpu - m.cpu).Seconds() / wall.Seconds(), true
}

func sumCPU(pids []int) (time.Duration, bool) {
	var sum time.Duration
	for _, pid := range pids {
		if pid <= 0 {
			return 0, false
		}
		c, err := readCPU(pid)
		if err != nil {
			return 0, false
		}
		sum += c
	}
	return sum, len(pids) > 0
}
