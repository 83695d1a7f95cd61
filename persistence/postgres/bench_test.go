package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
)

const benchBatch = 1000

// BenchmarkApply stores batches of 1,000 notifications, one Apply at a time as the
// persistence actor does, on a PostgreSQL with fsync on, the receivers spread over 1,
// 100 or 10,000 users. It reports notifications stored per second.
func BenchmarkApply(b *testing.B) {
	srv := pgtest.OwnWith(b, pgtest.Options{Fsync: true})
	for _, users := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			url := srv.NewDatabase(b)
			s, err := OpenAndMigrate(context.Background(), url, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batches := benchBatches(b, users)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			n := 0
			for ; b.Loop(); n++ {
				res, err := s.Apply(ctx, persistence.Now(), batches[n%len(batches)])
				if err != nil {
					b.Fatal(err)
				}
				if res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
			b.ReportMetric(float64(n*benchBatch)/time.Since(start).Seconds(), "notifications/s")
		})
	}
}

// BenchmarkCreatePath compares the two ways a batch writes new notifications, an INSERT
// in the batch's pipeline and a COPY before it, by batch size; defaultCopyMin comes from
// it.
func BenchmarkCreatePath(b *testing.B) {
	srv := pgtest.OwnWith(b, pgtest.Options{Fsync: true})
	batches := benchBatches(b, 100)
	for _, size := range []int{10, 50, 100, 1000} {
		for _, path := range []string{"insert", "copy"} {
			b.Run(fmt.Sprintf("size=%d/%s", size, path), func(b *testing.B) {
				url := srv.NewDatabase(b)
				s, err := OpenAndMigrate(context.Background(), url, Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				s.copyMin = size + 1
				if path == "copy" {
					s.copyMin = 1
				}
				ctx := context.Background()
				start := time.Now()
				n := 0
				for ; b.Loop(); n++ {
					ops := []persistence.Op{{Kind: persistence.OpCreate, Creates: batches[n%len(batches)][0].Creates[:size]}}
					if _, err := s.Apply(ctx, persistence.Now(), ops); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*size)/time.Since(start).Seconds(), "notifications/s")
			})
		}
	}
}

// benchBatches returns batches of one create op of benchBatch notifications, their
// receivers taken in turn from users distinct ids: enough batches that every user
// appears in several.
func benchBatches(tb testing.TB, users int) [][]persistence.Op {
	batches := make([][]persistence.Op, max(1, users/benchBatch)*2)
	for i := range batches {
		items := make([]herald.NewNotification, benchBatch)
		for j := range items {
			items[j] = herald.NewNotification{
				ReceiverID: fmt.Sprintf("user-%d", (i*benchBatch+j)%users),
				SenderID:   "user-9",
				Type:       "project.role.application.created",
				Payload:    json.RawMessage(fmt.Sprintf(`{"message":"Ada applied for Backend in Atlas","project":"atlas","n":%d}`, j)),
			}
			if err := items[j].Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
				tb.Fatal(err)
			}
		}
		batches[i] = []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}
	}
	return batches
}

// BenchmarkUnread reads the snapshot a connect reads (the unread page of 100 with the
// user's state), many at once (8 goroutines per GOMAXPROCS) as connects come, for an
// inbox with nothing unread and one with 20 unread.
func BenchmarkUnread(b *testing.B) {
	s := openURL(b, pgtest.Shared(b).NewDatabase(b), 0)
	ctx := context.Background()
	var twenty []herald.NewNotification
	for i := range 20 {
		twenty = append(twenty, valid(b, herald.NewNotification{ReceiverID: "twenty", Type: "x", Object: fmt.Sprint(i)}))
	}
	read := valid(b, herald.NewNotification{ReceiverID: "read", Type: "x", Object: "x"})
	if _, err := s.Apply(ctx, persistence.Now(), []persistence.Op{create(twenty...), create(read),
		{Kind: persistence.OpReadAll, UserID: "read"}}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		user   string
		unread int
	}{{"read", 0}, {"twenty", 20}} {
		b.Run(fmt.Sprintf("unread=%d", tc.unread), func(b *testing.B) {
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p, err := s.Unread(ctx, tc.user, 0, 100)
					if err != nil || len(p.Items) != tc.unread {
						b.Fatalf("Unread(%s) = %d items, %v", tc.user, len(p.Items), err)
					}
				}
			})
		})
	}
}
