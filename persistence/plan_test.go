package persistence

import (
	"slices"
	"strconv"
	"testing"
	"testing/cryptotest"
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

// Mark-read and read-all find the notifications created earlier in the same batch, and
// change their rows, while the created entries and results keep showing them unread.
func TestReadCreatedInSameBatch(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	nn := func(receiver, key string) herald.NewNotification {
		n := herald.NewNotification{ReceiverID: receiver, Type: "t", IdempotencyKey: key}
		if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	creates := []Op{
		{Kind: OpCreate, Creates: []herald.NewNotification{nn("alice", "k1")}},
		{Kind: OpCreate, Creates: []herald.NewNotification{nn("alice", "")}},
		{Kind: OpCreate, Creates: []herald.NewNotification{nn("bob", "")}},
	}
	// Ids are random: learn them by planning the same creates from the same randomness
	// (both batches draw it in one read of the same size: ids for at least 64).
	cryptotest.SetGlobalRandom(t, 1)
	first, _ := NewPlan(now, creates, Prior{})
	if len(first.Created) != 3 {
		t.Fatalf("%d notifications created, want 3", len(first.Created))
	}
	id1, id2, bobs := first.Created[0].ID, first.Created[1].ID, first.Created[2].ID
	ops := append(creates[:3:3],
		Op{Kind: OpMarkRead, UserID: "alice", ID: id1},                                          // 3: read
		Op{Kind: OpMarkRead, UserID: "alice", ID: bobs},                                         // 4: not alice's
		Op{Kind: OpCreate, Creates: []herald.NewNotification{nn("alice", "k1")}},                // 5: replay, read
		Op{Kind: OpReadAll, UserID: "alice"},                                                    // 6: reads id2
		Op{Kind: OpMarkRead, UserID: "alice", ID: id2},                                          // 7: read already
		Op{Kind: OpMarkRead, UserID: "bob", ID: bobs},                                           // 8: read
		Op{Kind: OpCreate, Creates: []herald.NewNotification{nn("alice", ""), nn("alice", "")}}, // 9: unread
	)
	cryptotest.SetGlobalRandom(t, 1)
	plan, res := NewPlan(now, ops, Prior{Users: map[string]UserState{"alice": {UserID: "alice", Seq: 7, Unread: 1}}})
	for i, r := range res {
		if r.Err != nil && i != 4 {
			t.Fatalf("op %d: %v", i, r.Err)
		}
	}
	if len(plan.Created) != 5 || plan.Created[0].ID != id1 || plan.Created[1].ID != id2 || plan.Created[2].ID != bobs {
		t.Fatalf("created %d notifications, not the ones learnt", len(plan.Created))
	}
	isRead := func(what string, got *time.Time, want bool) {
		t.Helper()
		switch {
		case want && (got == nil || !got.Equal(now)):
			t.Errorf("%s: readAt %v, want %s", what, got, now)
		case !want && got != nil:
			t.Errorf("%s: readAt %s, want nil", what, got)
		}
	}
	// Rows: the three first read, the two last not.
	for i, want := range []bool{true, true, true, false, false} {
		isRead("row "+strconv.Itoa(i), plan.Created[i].ReadAt, want)
	}
	if len(plan.Read) != 0 {
		t.Errorf("plan.Read = %v, want none: the rows are written read", plan.Read)
	}
	// Creations: results and entries as created.
	for _, i := range []int{0, 1, 2} {
		isRead("result of create "+strconv.Itoa(i), res[i].Notifications[0].ReadAt, false)
		isRead("entry of create "+strconv.Itoa(i), res[i].Entries[0].Notification.ReadAt, false)
	}
	// The mark-reads, the replay and the read-all.
	if r := res[3]; r.Notifications[0].ID != id1 || len(r.Entries) != 1 || r.Entries[0].Seq != 10 || r.Entries[0].Unread != 2 ||
		r.Entries[0].Event != herald.EventRead || r.Entries[0].Notification.ID != id1 {
		t.Errorf("mark-read of %s: %+v", id1, r)
	} else {
		isRead("mark-read result", r.Notifications[0].ReadAt, true)
		isRead("mark-read entry", r.Entries[0].Notification.ReadAt, true)
	}
	if err, ok := res[4].Err.(*herald.Error); !ok || err.Code != herald.CodeNotFound {
		t.Errorf("mark-read of bob's notification by alice: %v, want not found", res[4].Err)
	}
	if r := res[5]; !r.Replayed[0] || r.Notifications[0].ID != id1 || len(r.Entries) != 0 {
		t.Errorf("replay of k1: %+v", r)
	} else {
		isRead("replay after mark-read", r.Notifications[0].ReadAt, true)
	}
	if r := res[6]; r.ReadAll == nil || r.ReadAll.Updated != 2 || len(r.Entries) != 1 || r.Entries[0].Seq != 11 || r.Entries[0].Unread != 0 {
		t.Errorf("read-all: %+v", r)
	}
	if r := res[7]; len(r.Entries) != 0 || len(r.Notifications) != 1 || r.Notifications[0].ID != id2 {
		t.Errorf("mark-read after read-all: %+v", r)
	} else {
		isRead("mark-read after read-all", r.Notifications[0].ReadAt, true)
	}
	if r := res[8]; len(r.Entries) != 1 || r.Entries[0].Seq != 2 || r.Entries[0].Unread != 0 {
		t.Errorf("bob's mark-read: %+v", r)
	}
	for i, n := range res[9].Notifications {
		isRead("create after read-all "+strconv.Itoa(i), n.ReadAt, false)
	}
	// The log, the entries in order and the users.
	if len(plan.Log) != 3 || plan.Log[0].Event != herald.EventRead || plan.Log[1].Event != herald.EventReadAll || plan.Log[2].UserID != "bob" {
		t.Errorf("log: %+v", plan.Log)
	}
	var seqs []int64
	for _, e := range plan.Entries {
		if e.UserID == "alice" {
			seqs = append(seqs, e.Seq)
		}
	}
	if !slices.Equal(seqs, []int64{8, 9, 10, 11, 12, 13}) {
		t.Errorf("alice's entries have seqs %v, want 8 to 13", seqs)
	}
	want := []UserState{{UserID: "alice", Seq: 13, Unread: 2}, {UserID: "bob", Seq: 2, Unread: 0}}
	if !slices.Equal(plan.Users, want) {
		t.Errorf("users = %+v, want %+v", plan.Users, want)
	}
	if ra := plan.ReadAll; len(ra) != 1 || ra[0].UserID != "alice" || !ra[0].ReadAt.Equal(now) || ra[0].BeforeSeq != 11 {
		t.Errorf("read-all rows = %+v", plan.ReadAll)
	}
}

// Existing notifications looked at by several ops of a batch: each op sees what the
// earlier ones did, even a mark-read that failed; a second read-all replaces the first.
func TestReadExistingInSameBatch(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	old := func(id string, seq int64) herald.Notification {
		return herald.Notification{ID: id, ReceiverID: "alice", Type: "t", Object: "t", CreatedAt: now.Add(-time.Hour), Seq: seq}
	}
	e1, e2 := old("0192f7c4-8d2e-7b3a-9a61-000000000001", 5), old("0192f7c4-8d2e-7b3a-9a61-000000000002", 6)
	n := herald.NewNotification{ReceiverID: "alice", Type: "t"}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	ops := []Op{
		{Kind: OpMarkRead, UserID: "bob", ID: e1.ID},   // 0: not bob's
		{Kind: OpMarkRead, UserID: "alice", ID: e2.ID}, // 1: read
		{Kind: OpMarkRead, UserID: "alice", ID: e2.ID}, // 2: read already
		{Kind: OpReadAll, UserID: "alice"},             // 3: reads e1
		{Kind: OpMarkRead, UserID: "alice", ID: e1.ID}, // 4: read already
		{Kind: OpCreate, Creates: []herald.NewNotification{n}},
		{Kind: OpReadAll, UserID: "alice"}, // 6: reads the new one
	}
	plan, res := NewPlan(now, ops, Prior{
		Users:         map[string]UserState{"alice": {UserID: "alice", Seq: 7, Unread: 2}},
		Notifications: map[string]herald.Notification{e1.ID: e1, e2.ID: e2},
	})
	if err, ok := res[0].Err.(*herald.Error); !ok || err.Code != herald.CodeNotFound {
		t.Errorf("mark-read of alice's notification by bob: %v, want not found", res[0].Err)
	}
	for i, want := range map[int]struct {
		id      string
		entries int
	}{1: {e2.ID, 1}, 2: {e2.ID, 0}, 4: {e1.ID, 0}} {
		r := res[i]
		if r.Err != nil || len(r.Notifications) != 1 || r.Notifications[0].ID != want.id || len(r.Entries) != want.entries {
			t.Errorf("op %d: %+v, want %s with %d entries", i, r, want.id, want.entries)
		} else if at := r.Notifications[0].ReadAt; at == nil || !at.Equal(now) {
			t.Errorf("op %d: readAt %v, want %s", i, at, now)
		}
	}
	for i, want := range map[int]int64{3: 1, 6: 1} {
		if r := res[i]; r.ReadAll == nil || r.ReadAll.Updated != want || len(r.Entries) != 1 {
			t.Errorf("read-all %d: %+v, want %d updated", i, r, want)
		}
	}
	if len(plan.Read) != 1 || plan.Read[0].ID != e2.ID {
		t.Errorf("read rows = %+v, want e2's", plan.Read)
	}
	if ra := plan.ReadAll; len(ra) != 1 || ra[0].UserID != "alice" || ra[0].BeforeSeq != 11 {
		t.Errorf("read-all rows = %+v, want the last one", ra)
	}
	if len(plan.Created) != 1 || plan.Created[0].ReadAt == nil || res[5].Entries[0].Notification.ReadAt != nil {
		t.Errorf("the created row is not read, or its entry is")
	}
	want := []UserState{{UserID: "alice", Seq: 11, Unread: 0}}
	if !slices.Equal(plan.Users, want) {
		t.Errorf("users = %+v, want %+v", plan.Users, want)
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
