package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

func openTemp(t *testing.T, retention time.Duration) persistence.Store {
	s, err := Open(t.TempDir(), Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openTemp)
}

func newNote(t testing.TB, receiver string, i int) herald.NewNotification {
	n := herald.NewNotification{ReceiverID: receiver, Type: "test", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := persistence.Now()
	key := newNote(t, "alice", 2)
	key.IdempotencyKey = "k"
	res, err := s.Apply(t.Context(), now, []persistence.Op{
		{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, "alice", 1), key}},
	})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	first, keyed := res[0].Notifications[0], res[0].Notifications[1]
	if _, err := s.Apply(t.Context(), now, []persistence.Op{{Kind: persistence.OpMarkRead, UserID: "alice", ID: first.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(t.Context(), "alice", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReadAt == nil || !got.ReadAt.Equal(now) || got.Seq != 1 {
		t.Errorf("after reopen: %+v, want seq 1 read at %s", got, now)
	}
	p, err := s.Events(t.Context(), "alice", 0, 10)
	if err != nil || len(p.Entries) != 3 || p.Seq != 3 {
		t.Fatalf("after reopen: Events = %+v, %v; want 3 entries", p, err)
	}
	if c, _ := s.UnreadCount(t.Context(), "alice"); c != 1 {
		t.Errorf("after reopen: UnreadCount = %d, want 1", c)
	}
	// The idempotency key survived too.
	res, err = s.Apply(t.Context(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: []herald.NewNotification{key}}})
	if err != nil || !res[0].Replayed[0] || res[0].Notifications[0].ID != keyed.ID {
		t.Errorf("after reopen: replay = %+v, %v", res, err)
	}
	// The seq goes on.
	res, err = s.Apply(t.Context(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, "alice", 3)}}})
	if err != nil || res[0].Notifications[0].Seq != 4 {
		t.Errorf("after reopen: next create = %+v, %v; want seq 4", res, err)
	}
}

func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := Open(dir, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a dir in use succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v, want ErrInUse", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %s", d)
	}
	t.Logf("second Open: %v", err)
	// Once the first closes, the dir opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

// BenchmarkApply stores batches of 1,000 single-notification create ops, as the
// persistence actor sends them, spread round-robin over receivers users.
func BenchmarkApply(b *testing.B) {
	for _, receivers := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("receivers=%d", receivers), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 1000
			// Enough distinct batches to reach every receiver, built before timing.
			batches := make([][]persistence.Op, max(1, receivers/batch))
			next := 0
			for i := range batches {
				batches[i] = make([]persistence.Op, batch)
				for j := range batches[i] {
					n := newNote(b, fmt.Sprintf("user-%06d", next%receivers), next)
					batches[i][j] = persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}}
					next++
				}
			}
			stored := 0
			for i := 0; b.Loop(); i++ {
				if _, err := s.Apply(b.Context(), persistence.Now(), batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				stored += batch
			}
			b.ReportMetric(float64(stored)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}
