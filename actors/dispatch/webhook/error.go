package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is the one error type Send returns. Permanent says the message must not be sent
// to this endpoint again as it is; otherwise a later attempt may succeed. Status is the
// HTTP status of the response (0 when there was none). RetryAfter is the endpoint's
// Retry-After, 0 when it sent none; a dispatcher should cap it. Err is the cause.
type Error struct {
	Permanent  bool
	Status     int
	Err        error
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("webhook: %s failure: %v", kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTimeout is wrapped by the Err of an *Error when the endpoint took longer than
// Options.Timeout: errors.Is(err, webhook.ErrTimeout).
var ErrTimeout = errors.New("timed out")

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

// IsPermanent reports whether sending the message again cannot help.
func (e *Error) IsPermanent() bool { return e.Permanent }

// RetryDelay is the endpoint's Retry-After, 0 when it sent none.
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }
