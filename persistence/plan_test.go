package persistence

import (
	"testing"
	"time"

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
			Idempotent:    map[IdemKey]Idempotent{{nn.SenderID, "k"}: {Notification: stored, Fingerprint: nn.Fingerprint()}},
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
