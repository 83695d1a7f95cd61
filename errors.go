package herald

import (
	"errors"
	"fmt"
	"strings"
)

// Code is the machine-readable error code of the wire contract.
type Code string

// The codes of the wire contract's error table. The API maps each to one HTTP status.
const (
	CodeBadRequest          Code = "bad_request"          // 400: malformed JSON, unknown channel
	CodeUnauthorized        Code = "unauthorized"         // 401: missing or invalid credential
	CodeForbidden           Code = "forbidden"            // 403: valid credential, wrong kind
	CodeNotFound            Code = "not_found"            // 404: no such notification for this caller
	CodeMethodNotAllowed    Code = "method_not_allowed"   // 405: known path, other method
	CodeIdempotencyConflict Code = "idempotency_conflict" // 409: key reused with another body
	CodeTooLarge            Code = "too_large"            // 413: body or payload over the limit
	CodeValidation          Code = "validation_failed"    // 422: a field is missing or wrong
	CodeRateLimited         Code = "rate_limited"         // 429: rate limit
	CodeUnavailable         Code = "unavailable"          // 503: storage unavailable, nothing was written
	CodeOutcomeUnknown      Code = "outcome_unknown"      // 503: sent to storage, no answer: it may be stored
	CodeInternal            Code = "internal"             // 500: a bug; details go to the log, not the caller

	// The codes only a WebSocket error frame carries (the frame is not the request, so
	// there is no status to send); an HTTP answer with one would be a 400.
	CodeBadFrame     Code = "bad_frame"     // 400: a client frame that is not a JSON object, or not text
	CodeUnknownEvent Code = "unknown_event" // 400: a client frame whose event the server does not know
)

// Error is the one error type Herald returns to callers. Field names the offending
// request field for validation errors. Err, when set, is the underlying cause; it is
// logged but never sent to a caller.
type Error struct {
	Code    Code
	Message string
	Field   string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns a validation error naming the field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: CodeValidation, Message: fmt.Sprintf(format, args...), Field: field}
}

// Unavailable wraps a storage failure: the caller is told to retry, the cause is logged.
func Unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "storage unavailable, nothing was written", Err: err}
}

// OutcomeUnknownMessage is the message of every outcome_unknown error: the caller
// learns that its change may be stored, and how to find out safely.
const OutcomeUnknownMessage = "storage did not answer after the change was sent: it may or may not be stored; " +
	"retry with the same idempotencyKey, which is then safe (a mark-read or read-all is safe to retry as it is)"

// OutcomeUnknown reports a change that was sent to storage without an answer coming
// back (a commit timed out, the connection broke mid-commit, the caller gave up while it
// was in flight): unlike unavailable, it may have been stored. The cause is logged.
func OutcomeUnknown(err error) *Error {
	return &Error{Code: CodeOutcomeUnknown, Message: OutcomeUnknownMessage, Err: err}
}

// ErrorCode returns the Code of err, CodeInternal for an error that is not an *Error,
// and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError returns err as an *Error, wrapping anything else as CodeInternal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// Truncate returns s cut to at most its first n bytes, at a rune boundary, followed by
// "…" when anything was cut: for quoting what a caller sent in a message, or for storing
// a bounded error text. A string of n bytes or fewer is returned as it is.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
