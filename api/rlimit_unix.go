//go:build unix

package api

import (
	"math"
	"syscall"
)

// derivedConnLimit is the connection cap the file limit allows: the soft RLIMIT_NOFILE
// as the process sees it, less a reserve of a tenth, at least 256 (and never below
// half the limit).
func derivedConnLimit() (limit, files int, ok bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fallbackConnLimit, 0, false
	}
	cur := rl.Cur
	if cur > math.MaxInt32 { // RLIM_INFINITY, or beyond any real table
		cur = math.MaxInt32
	}
	files = int(cur)
	reserve := max(256, files/10)
	return max(files-reserve, files/2), files, true
}
