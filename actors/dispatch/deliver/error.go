// Package deliver holds the error of a failed delivery attempt, the one type every
// channel sender returns (package email, package webhook, or an embedder's own
// dispatch.Sender), so that the dispatcher tells apart a failure that no retry can cure,
// which it keeps as a dead letter, from one that a later attempt may, and waits at least
// as long as the receiver asked.
//
//	var e *deliver.Error
//	switch {
//	case err == nil:                          // delivered
//	case errors.As(err, &e) && e.Permanent:   // never retry: a dead letter
//	default:                                  // retry, not before e.RetryAfter when it is set
//	}
//
// An error that is not a *Error, or wraps none, is retryable.
//
// It starts nothing and holds nothing to close.
package deliver

import (
	"errors"
	"fmt"
	"time"
)

// Error is a failed delivery attempt.
type Error struct {
	// Channel names the sender that failed ("email", "webhook"): the message then starts
	// with it and with whether the failure is permanent. Empty for a failure found
	// before any sender ran (no sender for the channel, no address): the message is
	// Err's alone.
	Channel string
	// Permanent says the delivery must not be attempted again as it is; otherwise a
	// later attempt may succeed.
	Permanent bool
	// Code is the receiver's answer: the SMTP reply code, the HTTP status. 0 when it
	// never answered, or the attempt failed before reaching it.
	Code int
	// RetryAfter is the receiver's own retry time (a webhook's Retry-After), 0 when it
	// gave none. A dispatcher caps it.
	RetryAfter time.Duration
	// Err is the cause, and names the step that failed.
	Err error
}

func (e *Error) Error() string {
	if e.Channel == "" {
		return e.Err.Error()
	}
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("%s: %s failure: %v", e.Channel, kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTimeout is wrapped by the Err of an *Error when the receiver took longer than the
// sender's timeout: errors.Is(err, deliver.ErrTimeout).
var ErrTimeout = errors.New("timed out")
