package persistence

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhq/herald"
)

// A replayed idempotency key returns the notification as the earlier ops of the same
// batch left it, not as it was loaded or created.
func TestReplayShowsReadInSameBatch(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	now := created.Add(time.Hour)
	nn := herald.NewNotification{ReceiverID: "u", Type: "t", IdempotencyKey: "k"}
	if err := nn.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	stored := herald.Notification{ID: "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b", ReceiverID: "u", SenderID: nn.SenderID,
		Type: "t", Object: "t", Payload: nn.Payload, Channels: nn.Channels, CreatedAt: created, Seq: 1}
	prior := func() Prior {
		return Prior{
			Users:         map[string]UserState{"u": {UserID: "u", Seq: 1, Unread: 1}},
			Notifications: map[string]herald.Notification{stored.ID: stored},
			Idempotent:    map[IdemKey]Idempotent{{nn.SenderID, nn.IdempotencyScope()}: {Notification: stored, Fingerprint: nn.Fingerprint()}},
		}
	}
	replay := Op{Kind: OpCreate, Creates: []herald.NewNotification{nn}}

	cases := []struct {
		name  string
		ops   []Op
		prior Prior
		want  *time.Time // readAt of the replay, the last op
	}{
		{"stored, unread", []Op{replay}, prior(), nil},
		{"stored, read-all first", []Op{{Kind: OpReadAll, UserID: "u"}, replay}, prior(), &now},
		{"stored, mark-read first", []Op{{Kind: OpMarkRead, UserID: "u", ID: stored.ID}, replay}, prior(), &now},
		{"stored, read-all after", []Op{replay, {Kind: OpReadAll, UserID: "u"}}, prior(), nil},
		{"created in this batch, read-all between", []Op{replay, {Kind: OpReadAll, UserID: "u"}, replay}, Prior{}, &now},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, res := NewPlan(now, c.ops, c.prior)
			last := len(c.ops) - 1
			if c.ops[last].Kind != OpCreate {
				last--
			}
			r := res[last]
			if r.Err != nil || !r.Replayed[0] {
				t.Fatalf("op %d: err %v, replayed %v; want a replay", last, r.Err, r.Replayed)
			}
			got := r.Notifications[0].ReadAt
			switch {
			case c.want == nil && got != nil:
				t.Errorf("readAt = %s, want nil", got)
			case c.want != nil && (got == nil || !got.Equal(*c.want)):
				t.Errorf("readAt = %v, want %s", got, c.want)
			}
		})
	}
}

// BenchmarkNewPlan plans a batch of 1,000 single creates over 100 receivers, the shape
// the persistence actor sends under load.
func BenchmarkNewPlan(b *testing.B) {
	ops := make([]Op, 1000)
	for i := range ops {
		n := herald.NewNotification{ReceiverID: "user-" + string(rune('a'+i%26)) + string(rune('a'+i/26%4)), Type: "t"}
		if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
			b.Fatal(err)
		}
		ops[i] = Op{Kind: OpCreate, Creates: []herald.NewNotification{n}}
	}
	now := Now()
	b.ReportAllocs()
	for b.Loop() {
		NewPlan(now, ops, Prior{})
	}
}

// Ids are canonical UUIDv7s carrying the batch time, unique within and across batches.
func TestIDs(t *testing.T) {
	n := herald.NewNotification{ReceiverID: "u", Type: "t"}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	ops := make([]Op, 300) // more than one read of randomness
	for i := range ops {
		ops[i] = Op{Kind: OpCreate, Creates: []herald.NewNotification{n}}
	}
	seen := map[string]bool{}
	now := Now()
	for range 3 {
		plan, _ := NewPlan(now, ops, Prior{})
		for _, c := range plan.Created {
			u, err := uuid.Parse(c.ID)
			if _, ok := ParseID(c.ID); err != nil || !ok || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
				t.Fatalf("id %s: not a canonical UUIDv7", c.ID)
			}
			sec, nsec := u.Time().UnixTime()
			if ms := sec*1000 + nsec/1e6; ms != now.UnixMilli() {
				t.Fatalf("id %s carries %d ms, want %d", c.ID, ms, now.UnixMilli())
			}
			if seen[c.ID] {
				t.Fatalf("id %s given twice", c.ID)
			}
			seen[c.ID] = true
		}
	}
}
