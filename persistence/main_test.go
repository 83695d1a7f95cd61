package persistence

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes the stores it opens: nothing may be left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
