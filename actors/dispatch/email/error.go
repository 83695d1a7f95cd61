package email

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"time"
)

// Error is the one error type Send returns. Permanent says the message must not be sent
// again as it is; otherwise a later attempt may succeed. Code is the SMTP reply code when
// the server refused (0 when it never answered, or the message was refused before
// connecting). Err is the cause, and names the step that failed.
type Error struct {
	Permanent bool
	Code      int
	Err       error
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("email: %s failure: %v", kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTimeout is wrapped by the Err of an *Error when the conversation took longer than
// Options.Timeout: errors.Is(err, email.ErrTimeout).
var ErrTimeout = errors.New("timed out")

// permanent returns an *Error for a message that can never be sent as it is.
func permanent(format string, args ...any) *Error {
	return &Error{Permanent: true, Err: fmt.Errorf(format, args...)}
}

// classify turns the error of one conversation into an *Error. parent is the caller's
// context, ctx the one bounded by the timeout.
func classify(parent, ctx context.Context, timeout time.Duration, err error) *Error {
	var tp *textproto.Error
	switch {
	case errors.As(err, &tp):
		return &Error{Permanent: tp.Code >= 500 && tp.Code <= 599, Code: tp.Code, Err: err}
	case parent.Err() != nil:
		// The caller gave up (cancelled, or its own deadline passed): keep its reason
		// for errors.Is, and the step that was interrupted for the log.
		return &Error{Err: fmt.Errorf("%w: %v", context.Cause(parent), err)}
	case ctx.Err() != nil || isTimeout(err):
		return &Error{Err: fmt.Errorf("%w after %v: %w", ErrTimeout, timeout, err)}
	default:
		return &Error{Err: err}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsPermanent reports whether sending the message again cannot help.
func (e *Error) IsPermanent() bool { return e.Permanent }

// RetryDelay is always 0: SMTP gives no retry time.
func (e *Error) RetryDelay() time.Duration { return 0 }
