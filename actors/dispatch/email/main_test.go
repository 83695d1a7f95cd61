package email

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test ends its servers and connections: nothing may be left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
