//go:build !unix

package api

// derivedConnLimit: without a file limit to read, the cap defaults to
// fallbackConnLimit and any explicit value is taken as it is.
func derivedConnLimit() (limit, files int, ok bool) { return fallbackConnLimit, 0, false }
