package deliver

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorMessage(t *testing.T) {
	cause := fmt.Errorf("POST https://example.com/hook: %w after 10s", ErrTimeout)
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{&Error{Channel: "webhook", Err: cause}, "webhook: retryable failure: POST https://example.com/hook: timed out after 10s"},
		{&Error{Channel: "email", Permanent: true, Code: 550, Err: errors.New("RCPT: 550 no such user")}, "email: permanent failure: RCPT: 550 no such user"},
		{&Error{Permanent: true, Err: errors.New("the email channel is not configured")}, "the email channel is not configured"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	var e *Error
	err := fmt.Errorf("attempt 3: %w", &Error{Channel: "webhook", Err: cause})
	if !errors.As(err, &e) || e.Permanent || !errors.Is(err, ErrTimeout) {
		t.Fatalf("a wrapped *Error: As %v, Is(ErrTimeout) %v", errors.As(err, &e), errors.Is(err, ErrTimeout))
	}
}
