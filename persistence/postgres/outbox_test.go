package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

// TestClaimTwoNodes: claimers on two nodes sharing one database never get the same
// delivery within a lease, and every delivery is claimed.
func TestClaimTwoNodes(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Store{openURL(t, url, 0), openURL(t, url, 0)}
	now := persistence.Now()
	var items []herald.NewNotification
	for i := range 300 {
		items = append(items, valid(t, herald.NewNotification{ReceiverID: fmt.Sprint("u", i%13), Type: "x",
			Channels: []herald.Channel{herald.ChannelEmail, herald.ChannelWebhook}}))
	}
	if _, err := nodes[0].Apply(t.Context(), now, []persistence.Op{create(items...)}); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for w := range 8 {
		s := nodes[w%2]
		wg.Go(func() {
			for {
				ds, err := s.ClaimDeliveries(t.Context(), now, time.Hour, 5+w)
				if err != nil {
					t.Errorf("ClaimDeliveries: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				if !slices.IsSortedFunc(ds, func(a, b persistence.Delivery) int { return strings.Compare(a.ID, b.ID) }) {
					t.Errorf("claim not in (due, id) order") // all are due at once
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 600 {
		t.Fatalf("claimed %d distinct deliveries, want 600", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("delivery %s claimed %d times", id, n)
		}
	}
}

// TestClaimPastCancelled: escalations cancelled by a claim do not use up its limit.
func TestClaimPastCancelled(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	var escs []herald.NewNotification
	for range 5 {
		n := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x"})
		n.Escalate = &herald.Escalation{After: time.Minute, Channel: herald.ChannelEmail}
		escs = append(escs, n)
	}
	mustApplyAt(t, s, t0, create(escs...))
	mustApplyAt(t, s, t0, persistence.Op{Kind: persistence.OpReadAll, UserID: "alice"})
	var plain []herald.NewNotification
	for range 3 {
		plain = append(plain, valid(t, herald.NewNotification{ReceiverID: "bob", Type: "x", Channels: []herald.Channel{herald.ChannelWebhook}}))
	}
	mustApplyAt(t, s, t0.Add(2*time.Minute), create(plain...))

	// The five escalations are due first; a claim of 3 cancels them and goes on.
	ds, err := s.ClaimDeliveries(t.Context(), t0.Add(3*time.Minute), time.Minute, 3)
	if err != nil || len(ds) != 3 {
		t.Fatalf("claim: %d deliveries, %v; want 3", len(ds), err)
	}
	for _, d := range ds {
		if d.UserID != "bob" || d.Channel != herald.ChannelWebhook || !d.DueAt.Equal(t0.Add(4*time.Minute)) {
			t.Fatalf("claimed %+v", d)
		}
	}
	c, err := s.Deliveries(t.Context(), persistence.DeliveryCancelled, "", 100)
	if err != nil || len(c) != 5 {
		t.Fatalf("cancelled: %d, %v", len(c), err)
	}
	// Paging by id.
	page, err := s.Deliveries(t.Context(), persistence.DeliveryCancelled, c[1].ID, 2)
	if err != nil || len(page) != 2 || page[0].ID != c[2].ID || page[1].ID != c[3].ID {
		t.Fatalf("page after %s: %+v %v", c[1].ID, page, err)
	}
	if _, err := s.Deliveries(t.Context(), persistence.DeliveryCancelled, "nope", 2); herald.ErrorCode(err) != herald.CodeValidation {
		t.Fatalf("malformed cursor: %v", err)
	}
	if _, err := s.Deliveries(t.Context(), "lost", "", 2); herald.ErrorCode(err) != herald.CodeValidation {
		t.Fatalf("unknown state: %v", err)
	}
}

func mustApplyAt(t *testing.T, s *Store, now time.Time, ops ...persistence.Op) []persistence.Result {
	t.Helper()
	res, err := s.Apply(t.Context(), now, ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("op: %v", r.Err)
		}
	}
	return res
}

// TestFinishOutcomes: odd outcomes (repeated or malformed ids, unstorable error text, no
// retry time) are recorded without failing the others.
func TestFinishOutcomes(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	mustApplyAt(t, s, t0, create(valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x",
		Channels: []herald.Channel{herald.ChannelEmail, herald.ChannelWebhook}})))
	ds, err := s.ClaimDeliveries(t.Context(), t0, time.Minute, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim: %+v %v", ds, err)
	}
	t1 := t0.Add(time.Second)
	err = storetest.FinishDeliveries(t, s, t1, []persistence.Outcome{
		{ID: "nope", Sent: true},
		{ID: ds[0].ID, Sent: true},
		{ID: ds[0].ID, Retry: t1, Error: "bad \xff byte and a \x00 NUL"}, // the last outcome of an id counts
		{ID: ds[1].ID, Error: "no retry time: due now"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimDeliveries(t.Context(), t1, time.Minute, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim after retries: %+v %v", got, err)
	}
	for _, d := range got {
		want := "no retry time: due now"
		if d.ID == ds[0].ID {
			want = "bad \uFFFD byte and a  NUL"
		}
		if d.Attempts != 1 || d.LastError != want || !d.UpdatedAt.Equal(t1) {
			t.Errorf("after one attempt: %+v", d)
		}
	}
	if err := storetest.FinishDeliveries(t, s, t1, []persistence.Outcome{{ID: ds[0].ID, Sent: true}, {ID: ds[1].ID, Dead: true, Error: "gone"}}); err != nil {
		t.Fatal(err)
	}
	sent, err := s.Deliveries(t.Context(), persistence.DeliverySent, "", 10)
	if err != nil || len(sent) != 1 || sent[0].Attempts != 2 || sent[0].LastError != "bad \uFFFD byte and a  NUL" {
		t.Fatalf("sent: %+v %v", sent, err)
	}
	if st, err := s.OutboxStats(t.Context()); err != nil || len(st) != 0 {
		t.Fatalf("stats with nothing pending: %+v %v", st, err)
	}
	d, err := storetest.RetryDelivery(t, s, t1, ds[1].ID)
	if err != nil || d.LastError != "gone" || d.Notification.ID != ds[1].NotificationID {
		t.Fatalf("retry: %+v %v", d, err)
	}
	st, err := s.OutboxStats(t.Context())
	if err != nil || len(st) != 1 || st[0].Pending != 1 || !st[0].OldestDue.Equal(t1) {
		t.Fatalf("stats: %+v %v", st, err)
	}
}

// TestFinishNoDeadlock: finishers of overlapping sets, in opposite orders (a delivery
// whose lease ran out while its first attempt was going), wait for each other rather
// than deadlock.
func TestFinishNoDeadlock(t *testing.T) {
	s := open(t, 0)
	t0 := persistence.Now()
	var items []herald.NewNotification
	for range 50 {
		items = append(items, valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x", Channels: []herald.Channel{herald.ChannelWebhook}}))
	}
	mustApplyAt(t, s, t0, create(items...))
	ds, err := s.ClaimDeliveries(t.Context(), t0, time.Minute, 100)
	if err != nil || len(ds) != 50 {
		t.Fatalf("claim: %d %v", len(ds), err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for r := range 20 {
				var outs []persistence.Outcome
				for i := range ds {
					d := ds[i]
					if w%2 == 1 {
						d = ds[len(ds)-1-i]
					}
					outs = append(outs, persistence.Outcome{ID: d.ID, Retry: t0.Add(time.Duration(r) * time.Second)})
				}
				if err := storetest.FinishDeliveries(t, s, t0, outs); err != nil {
					t.Errorf("FinishDeliveries: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := s.Deliveries(t.Context(), persistence.DeliveryPending, "", 100)
	if err != nil || len(got) != 50 || got[0].Attempts != 160 {
		t.Fatalf("pending: %d, attempts %d, %v", len(got), got[0].Attempts, err)
	}
}

// TestOutboxUnstorableText: text PostgreSQL cannot hold is a validation error on writes
// and names nothing on reads.
func TestOutboxUnstorableText(t *testing.T) {
	s := open(t, 0)
	if err := storetest.SetContact(t, s, "a\x00", persistence.Contact{Email: "a@example.com"}); herald.ErrorCode(err) != herald.CodeValidation {
		t.Errorf("SetContact of a NUL user: %v", err)
	}
	if err := storetest.SetContact(t, s, "a", persistence.Contact{Email: "a\xff@example.com"}); herald.ErrorCode(err) != herald.CodeValidation {
		t.Errorf("SetContact of a bad e-mail: %v", err)
	}
	bad := persistence.Preferences{Types: map[string]map[herald.Channel]bool{"t\x00": {herald.ChannelEmail: false}}}
	if err := storetest.SetPreferences(t, s, "a", bad); herald.ErrorCode(err) != herald.CodeValidation {
		t.Errorf("SetPreferences with a NUL type: %v", err)
	}
	if c, err := s.Contact(t.Context(), "a\x00"); err != nil || c.Email != "" {
		t.Errorf("Contact of a NUL user: %+v %v", c, err)
	}
	if p, err := s.Preferences(t.Context(), "a\x00"); err != nil || p.Types != nil {
		t.Errorf("Preferences of a NUL user: %+v %v", p, err)
	}
}

// TestDeliveryFromBeforeByService: a delivery row written before migration 0004 reads
// ByService false once the column is added, so its payload's "email" is not honoured.
func TestDeliveryFromBeforeByService(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migration) bool { return m.version == "0004_delivery_by_service" })
	if i < 0 {
		t.Fatal("no migration 0004_delivery_by_service")
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE herald_schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:i] {
		if err := apply(ctx, conn, m); err != nil {
			t.Fatalf("migration %s: %v", m.version, err)
		}
	}
	now := persistence.Now()
	const note, del = "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b", "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6c"
	if _, err := conn.Exec(ctx, `INSERT INTO notifications (id, receiver_id, seq, unread_after, created_at, sender_id, type, object, payload, channels)
VALUES ($1, 'dora', 1, 1, $2, 'system', 't', 't', '{"email":"someone@example.com"}', '{email}')`, note, now); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO deliveries (id, notification_id, user_id, channel, state, attempts, due_at, unread_only, created_at, updated_at)
VALUES ($1, $2, 'dora', 'email', 'pending', 0, $3, false, $3, $3)`, del, note, now); err != nil {
		t.Fatal(err)
	}
	s := openURL(t, url, 0) // migrates the rest
	ds, err := s.Deliveries(ctx, persistence.DeliveryPending, "", 10)
	if err != nil || len(ds) != 1 || ds[0].ID != del || ds[0].ByService {
		t.Fatalf("listed %+v (%v), want the old row with ByService false", ds, err)
	}
	ds, err = s.ClaimDeliveries(ctx, now, time.Minute, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != del || ds[0].ByService {
		t.Fatalf("claimed %+v (%v), want the old row with ByService false", ds, err)
	}
}
