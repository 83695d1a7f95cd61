package embedded

import (
	"fmt"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// BenchmarkCommitAtLogSize is the deliver load of herald-bench on the store: 2,000
// receivers, notifications round-robin over them, committed a few at a time as the
// persistence actor does at 2,000/s. It measures one commit after the store holds log
// entries already (2,000, about a second of that load; 600,000, about five minutes),
// and reports the pages one commit writes and the file's size.
func BenchmarkCommitAtLogSize(b *testing.B) {
	const receivers, perCommit = 2000, 8
	for _, logSize := range []int{2_000, 600_000} {
		b.Run(fmt.Sprintf("log=%d", logSize), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next := 0
			note := func() persistence.Op {
				n := herald.NewNotification{ReceiverID: fmt.Sprintf("bench-user-%05d", next%receivers), Type: "bench.deliver",
					Payload: []byte(fmt.Sprintf(`{"t":1764630000000000000,"m":%d}`, next))}
				if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
					b.Fatal(err)
				}
				next++
				return persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}}
			}
			// Fill in batches as large as the actor's, round-robin as the load has it.
			for next < logSize {
				ops := make([]persistence.Op, 0, 1000)
				for len(ops) < cap(ops) && next < logSize {
					ops = append(ops, note())
				}
				if _, err := s.Apply(b.Context(), persistence.Now(), ops); err != nil {
					b.Fatal(err)
				}
			}
			batches := make([][]persistence.Op, 1000)
			for i := range batches {
				for range perCommit {
					batches[i] = append(batches[i], note())
				}
			}
			before := s.db.Stats()
			b.ResetTimer()
			n := 0
			for ; b.Loop(); n++ {
				if n == len(batches) {
					b.StopTimer()
					for i := range batches {
						batches[i] = batches[i][:0]
						for range perCommit {
							batches[i] = append(batches[i], note())
						}
					}
					n = 0
					b.StartTimer()
				}
				if _, err := s.Apply(b.Context(), persistence.Now(), batches[n]); err != nil {
					b.Fatal(err)
				}
			}
			st := s.db.Stats()
			d := st.Sub(&before)
			b.ReportMetric(float64(d.TxStats.GetWrite())/float64(b.N), "pages/commit")
			b.ReportMetric(float64(st.FreePageN+st.PendingPageN), "free-pages")
			b.ReportMetric(float64(st.FreelistInuse), "freelist-bytes")
		})
	}
}
