package embedded

import (
	"testing"

	"github.com/google/uuid"

	"github.com/heraldhq/herald/persistence"
)

// TestPingIgnoresRollbacks: a batch that changes nothing (rolled back, no commit) and
// an op the store refuses are not failed commits; Ping stays nil. (A commit that does
// fail is TestReadyzWhileWritesFail's, in cmd/herald, on the real binary.)
func TestPingIgnoresRollbacks(t *testing.T) {
	s := openStore(t, t.TempDir())
	res, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{markReadOp("alice", uuid.NewString()), readAllOp("nobody")})
	if err != nil || res[0].Err == nil {
		t.Fatalf("Apply: %v, %+v; want the mark-read refused", err, res)
	}
	if _, got := s.commits.failing(); got != nil {
		t.Fatalf("a rolled-back batch was recorded as a failed commit: %v", got)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after a rolled-back batch: %v", err)
	}
}
