package email

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"time"

	"github.com/heraldhq/herald/actors/dispatch/deliver"
)

// channel names this sender in its errors (deliver.Error.Channel).
const channel = "email"

// permanent returns the error of a message that can never be sent as it is.
func permanent(format string, args ...any) *deliver.Error {
	return &deliver.Error{Channel: channel, Permanent: true, Err: fmt.Errorf(format, args...)}
}

// retryable returns the error of an attempt that a later one may repeat with success.
func retryable(err error) *deliver.Error {
	return &deliver.Error{Channel: channel, Err: err}
}

// classify turns the error of one conversation into a *deliver.Error. parent is the
// caller's context, ctx the one bounded by the timeout.
func classify(parent, ctx context.Context, timeout time.Duration, err error) *deliver.Error {
	var tp *textproto.Error
	switch {
	case errors.As(err, &tp):
		return &deliver.Error{Channel: channel, Permanent: tp.Code >= 500 && tp.Code <= 599, Code: tp.Code, Err: err}
	case parent.Err() != nil:
		// The caller gave up (cancelled, or its own deadline passed): keep its reason
		// for errors.Is, and the step that was interrupted for the log.
		return retryable(fmt.Errorf("%w: %v", context.Cause(parent), err))
	case ctx.Err() != nil || isTimeout(err):
		return retryable(fmt.Errorf("%w after %v: %w", deliver.ErrTimeout, timeout, err))
	default:
		return retryable(err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
