package persistence

import (
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// BenchmarkNewPlanBatches plans the batches the persistence actor sends under load:
// 10 create ops of 100 notifications each, to 1,000 distinct receivers, with the prior
// state PostgreSQL loads for them (every user of the batch, at some seq; the two
// variants share one prior, so creates gets the readers' users too).
//
//   - creates: only the create ops, the common batch.
//   - mixed: after each create op, 10 mark-reads of stored notifications of other
//     users and one read-all, as when readers catch up while senders write.
func BenchmarkNewPlanBatches(b *testing.B) {
	const ops, items, readers = 10, 100, 10
	prior := Prior{
		Users:         map[string]UserState{},
		Notifications: map[string]herald.Notification{},
	}
	stored := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var creates, mixed []Op
	for i := range ops {
		op := Op{Kind: OpCreate, Creates: make([]herald.NewNotification, items)}
		for j := range items {
			user := "user-" + strconv.Itoa(i*items+j)
			n := herald.NewNotification{ReceiverID: user, SenderID: "svc", Type: "comment",
				Object: "post-" + strconv.Itoa(j), Payload: []byte(`{"message":"hello"}`)}
			if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
				b.Fatal(err)
			}
			op.Creates[j] = n
			prior.Users[user] = UserState{UserID: user, Seq: 40, Unread: 3}
		}
		creates = append(creates, op)
		mixed = append(mixed, op)
		for j := range readers {
			user := "reader-" + strconv.Itoa(i*readers+j)
			id := "0192f7c4-8d2e-7b3a-9a61-" + strconv.FormatInt(1e11+int64(i*readers+j), 10)[:12]
			prior.Users[user] = UserState{UserID: user, Seq: 40, Unread: 3}
			prior.Notifications[id] = herald.Notification{ID: id, ReceiverID: user, SenderID: "svc", Type: "comment",
				Object: "post", Payload: []byte(`{"message":"hello"}`), Channels: []herald.Channel{herald.ChannelRealtime},
				CreatedAt: stored, Seq: 38}
			mixed = append(mixed, Op{Kind: OpMarkRead, UserID: user, ID: id})
		}
		user := "reader-all-" + strconv.Itoa(i)
		prior.Users[user] = UserState{UserID: user, Seq: 40, Unread: 3}
		mixed = append(mixed, Op{Kind: OpReadAll, UserID: user})
	}
	now := Now()
	for _, bc := range []struct {
		name string
		ops  []Op
	}{{"creates", creates}, {"mixed", mixed}} {
		b.Run(bc.name, func(b *testing.B) {
			plan, results := NewPlan(now, bc.ops, prior)
			for i, r := range results {
				if r.Err != nil || len(r.Entries) == 0 {
					b.Fatalf("op %d: err %v, %d entries; want it done", i, r.Err, len(r.Entries))
				}
			}
			if len(plan.Created) != ops*items {
				b.Fatalf("%d notifications created, want %d", len(plan.Created), ops*items)
			}
			b.ReportAllocs()
			for b.Loop() {
				NewPlan(now, bc.ops, prior)
			}
		})
	}
}
