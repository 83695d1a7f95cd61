package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/actors/dispatch/deliver"
)

// channel names this sender in its errors (deliver.Error.Channel).
const channel = "webhook"

// permanent returns the error of a delivery this endpoint must not be sent again as it is.
func permanent(err error) *deliver.Error {
	return &deliver.Error{Channel: channel, Permanent: true, Err: err}
}

// retryable returns the error of an attempt that a later one may repeat with success.
func retryable(err error) *deliver.Error {
	return &deliver.Error{Channel: channel, Err: err}
}

// retryableStatus reports whether a non-2xx status may succeed later.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 300 && code <= 499:
		return false
	default: // 5xx, and codes outside the classes HTTP defines
		return true
	}
}

// maxRetryAfter keeps a Retry-After in seconds from overflowing a Duration.
const maxRetryAfter = 1<<63 - 1

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date, which is
// taken relative to now (a date in the past means 0).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
