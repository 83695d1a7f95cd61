package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// outboxTests are the outbox behaviours every store must have.
var outboxTests = []struct {
	name string
	fn   func(t *testing.T, open Opener)
}{
	{"OutboxLifecycle", testOutboxLifecycle},
	{"OutboxEscalation", testOutboxEscalation},
	{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
	{"OutboxAtomicWithCreate", testOutboxAtomicWithCreate},
	{"Preferences", testPreferences},
	{"Contacts", testContacts},
}

func withChannels(n herald.NewNotification, cs ...herald.Channel) herald.NewNotification {
	n.Channels = cs
	return n
}

func claim(t *testing.T, s persistence.Store, now time.Time, lease time.Duration, limit int) []persistence.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func finish(t *testing.T, s persistence.Store, now time.Time, outcomes ...persistence.Outcome) {
	t.Helper()
	if err := FinishDeliveries(t, s, now, outcomes); err != nil {
		t.Fatalf("FinishDeliveries: %v", err)
	}
}

func listDeliveries(t *testing.T, s persistence.Store, state persistence.DeliveryState) []persistence.Delivery {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), state, "", 100)
	if err != nil {
		t.Fatalf("Deliveries(%s): %v", state, err)
	}
	return ds
}

func channelsOf(ds []persistence.Delivery) []herald.Channel {
	var cs []herald.Channel
	for _, d := range ds {
		cs = append(cs, d.Channel)
	}
	slices.Sort(cs)
	return cs
}

// testOutboxLifecycle: deliveries are written with their notification, claimed with a
// lease, come back when the lease runs out, retry, die, and are revived.
func testOutboxLifecycle(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	n := created(t, s, t0, withChannels(note(t, "alice", "t", 1), herald.ChannelRealtime, herald.ChannelEmail, herald.ChannelWebhook))[0]
	created(t, s, t0, note(t, "alice", "t", 2)) // realtime only: no delivery

	const lease = time.Minute
	ds := claim(t, s, t0, lease, 10)
	if got := channelsOf(ds); !slices.Equal(got, []herald.Channel{herald.ChannelEmail, herald.ChannelWebhook}) {
		t.Fatalf("claimed channels %v, want email and webhook", got)
	}
	for _, d := range ds {
		if d.NotificationID != n.ID || d.UserID != "alice" || d.State != persistence.DeliveryPending || d.Attempts != 0 ||
			d.UnreadOnly || d.Notification.ID != n.ID || string(d.Notification.Payload) != string(n.Payload) || d.ID == "" {
			t.Fatalf("claimed delivery %+v", d)
		}
		if _, ok := persistence.ParseID(d.ID); !ok {
			t.Fatalf("delivery id %q is not a canonical UUID", d.ID)
		}
	}
	if again := claim(t, s, t0.Add(time.Second), lease, 10); len(again) != 0 {
		t.Fatalf("claimed %d deliveries under lease", len(again))
	}
	// The sender died: after the lease both come back.
	ds = claim(t, s, t0.Add(lease), lease, 10)
	if len(ds) != 2 {
		t.Fatalf("after the lease: %d deliveries, want 2", len(ds))
	}
	email, hook := ds[0], ds[1]
	if email.Channel != herald.ChannelEmail {
		email, hook = hook, email
	}
	t1 := t0.Add(lease)
	retryAt := t1.Add(10 * time.Second)
	finish(t, s, t1,
		persistence.Outcome{ID: email.ID, Sent: true},
		persistence.Outcome{ID: hook.ID, Retry: retryAt, Error: "503 from the receiver"})
	if got := claim(t, s, retryAt.Add(-time.Microsecond), lease, 10); len(got) != 0 {
		t.Fatalf("claimed %d before the retry time", len(got))
	}
	got := claim(t, s, retryAt, lease, 10)
	if len(got) != 1 || got[0].ID != hook.ID || got[0].Attempts != 1 || got[0].LastError != "503 from the receiver" {
		t.Fatalf("retry claim: %+v", got)
	}
	finish(t, s, retryAt, persistence.Outcome{ID: hook.ID, Dead: true, Error: "gave up"})
	// Outcomes for deliveries that are no longer pending change nothing.
	finish(t, s, retryAt, persistence.Outcome{ID: email.ID, Retry: retryAt}, persistence.Outcome{ID: hook.ID, Sent: true})

	if sent := listDeliveries(t, s, persistence.DeliverySent); len(sent) != 1 || sent[0].ID != email.ID || sent[0].Attempts != 1 {
		t.Fatalf("sent: %+v", sent)
	}
	dead := listDeliveries(t, s, persistence.DeliveryDead)
	if len(dead) != 1 || dead[0].ID != hook.ID || dead[0].Attempts != 2 || dead[0].LastError != "gave up" || dead[0].Notification.ID != n.ID {
		t.Fatalf("dead letters: %+v", dead)
	}
	if got := claim(t, s, retryAt.Add(time.Hour), lease, 10); len(got) != 0 {
		t.Fatalf("claimed %d finished deliveries", len(got))
	}

	// Retry revives a dead letter, due now, with its attempts reset.
	t2 := retryAt.Add(time.Hour)
	d, err := RetryDelivery(t, s, t2, hook.ID)
	if err != nil || d.State != persistence.DeliveryPending || d.Attempts != 0 || !d.DueAt.Equal(t2) {
		t.Fatalf("RetryDelivery: %+v %v", d, err)
	}
	if got := claim(t, s, t2, lease, 10); len(got) != 1 || got[0].ID != hook.ID {
		t.Fatalf("claim after retry: %+v", got)
	}
	_, err = RetryDelivery(t, s, t2, hook.ID) // pending now
	wantCode(t, "RetryDelivery of a pending delivery", err, herald.CodeNotFound)
	_, err = RetryDelivery(t, s, t2, "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b")
	wantCode(t, "RetryDelivery of an unknown id", err, herald.CodeNotFound)
	_, err = RetryDelivery(t, s, t2, "not-an-id")
	wantCode(t, "RetryDelivery of a malformed id", err, herald.CodeNotFound)

	stats, err := s.OutboxStats(t.Context())
	if err != nil || len(stats) != 1 || stats[0].Channel != herald.ChannelWebhook || stats[0].Pending != 1 {
		t.Fatalf("OutboxStats: %+v %v", stats, err)
	}
}

// testOutboxEscalation: an escalation is due after its delay and only if the
// notification is still unread then.
func testOutboxEscalation(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	esc := func(n herald.NewNotification) herald.NewNotification {
		n.Escalate = &herald.Escalation{After: 30 * time.Minute, Channel: herald.ChannelEmail}
		return n
	}
	ns := created(t, s, t0, esc(note(t, "bob", "t", 1)), esc(note(t, "bob", "t", 2)))
	// An escalation to a channel the notification already has adds nothing.
	created(t, s, t0, esc(withChannels(note(t, "bob", "t", 3), herald.ChannelRealtime, herald.ChannelEmail)))
	if got := claim(t, s, t0, time.Minute, 10); len(got) != 1 {
		t.Fatalf("claimed %d deliveries at once, want the one plain email", len(got))
	} else {
		finish(t, s, t0, persistence.Outcome{ID: got[0].ID, Sent: true})
	}
	apply(t, s, t0.Add(time.Minute), markRead("bob", ns[0].ID))
	due := t0.Add(30 * time.Minute)
	if got := claim(t, s, due.Add(-time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed %d escalations early", len(got))
	}
	got := claim(t, s, due, time.Minute, 10)
	if len(got) != 1 || got[0].NotificationID != ns[1].ID || !got[0].UnreadOnly || got[0].Channel != herald.ChannelEmail || got[0].Notification.ReadAt != nil {
		t.Fatalf("escalations at their due time: %+v", got)
	}
	if c := listDeliveries(t, s, persistence.DeliveryCancelled); len(c) != 1 || c[0].NotificationID != ns[0].ID {
		t.Fatalf("cancelled: %+v", c)
	}
}

// testOutboxConcurrentClaims: concurrent claimers never get the same delivery.
func testOutboxConcurrentClaims(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	var items []herald.NewNotification
	for i := range 200 {
		items = append(items, withChannels(note(t, fmt.Sprint("u", i%17), "t", i), herald.ChannelWebhook))
	}
	created(t, s, t0, items...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := s.ClaimDeliveries(t.Context(), t0, time.Hour, 7)
				if err != nil {
					t.Errorf("ClaimDeliveries: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("claimed %d distinct deliveries, want 200", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("delivery %s claimed %d times within one lease", id, n)
		}
	}
}

// testOutboxAtomicWithCreate: a create op that fails writes no delivery.
func testOutboxAtomicWithCreate(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	keyed := func(n herald.NewNotification, key string) herald.NewNotification {
		n.IdempotencyKey = key
		return valid(t, n)
	}
	first := keyed(withChannels(note(t, "carol", "t", 1), herald.ChannelEmail), "k")
	created(t, s, t0, first)
	// A batch whose second item conflicts with the stored key: nothing of it is stored.
	res := apply(t, s, t0, create(withChannels(note(t, "carol", "t", 2), herald.ChannelWebhook), keyed(withChannels(note(t, "carol", "t", 3), herald.ChannelEmail), "k")))[0]
	wantCode(t, "conflicting batch", res.Err, herald.CodeIdempotencyConflict)
	// A replay adds no delivery either.
	created(t, s, t0, first)
	if got := claim(t, s, t0, time.Minute, 10); len(got) != 1 || got[0].Channel != herald.ChannelEmail {
		t.Fatalf("deliveries: %+v, want only the first notification's email", got)
	}
}

// testPreferences: opt-outs per channel and per type; realtime off means not stored.
func testPreferences(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	if p, err := s.Preferences(t.Context(), "dave"); err != nil || len(p.Channels) != 0 || len(p.Types) != 0 {
		t.Fatalf("preferences never set: %+v %v", p, err)
	}
	prefs := persistence.Preferences{
		Channels: map[herald.Channel]bool{herald.ChannelEmail: false},
		Types:    map[string]map[herald.Channel]bool{"muted": {herald.ChannelRealtime: false}, "t": {herald.ChannelWebhook: true}},
	}
	if err := SetPreferences(t, s, "dave", prefs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Preferences(t.Context(), "dave")
	if err != nil || !got.Allows("t", herald.ChannelWebhook) || got.Allows("x", herald.ChannelEmail) || got.Allows("muted", herald.ChannelRealtime) || !got.Allows("x", herald.ChannelRealtime) {
		t.Fatalf("preferences read back: %+v %v", got, err)
	}

	all := []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail, herald.ChannelWebhook}
	res := ok(t, apply(t, s, t0, create(withChannels(note(t, "dave", "muted", 1), all...), withChannels(note(t, "dave", "t", 2), all...)))[0])
	if len(res.Suppressed) != 2 || !res.Suppressed[0] || res.Suppressed[1] || res.Notifications[0].ID != "" || res.Notifications[1].Seq != 1 {
		t.Fatalf("create with preferences: suppressed %v notifications %+v", res.Suppressed, res.Notifications)
	}
	if page, err := s.Unread(t.Context(), "dave", 0, 10); err != nil || page.Total != 1 || page.Seq != 1 {
		t.Fatalf("dave's unread: %+v %v", page, err)
	}
	if ds := claim(t, s, t0, time.Minute, 10); len(ds) != 1 || ds[0].Channel != herald.ChannelWebhook {
		t.Fatalf("deliveries: %+v, want the webhook only (email is off)", ds)
	}
	// Others are untouched; back to defaults with the zero value.
	if r := ok(t, apply(t, s, t0, create(note(t, "erin", "muted", 1)))[0]); r.Suppressed != nil {
		t.Fatalf("another user's create suppressed: %v", r.Suppressed)
	}
	if err := SetPreferences(t, s, "dave", persistence.Preferences{}); err != nil {
		t.Fatal(err)
	}
	if r := ok(t, apply(t, s, t0, create(note(t, "dave", "muted", 3)))[0]); r.Suppressed != nil || r.Notifications[0].Seq != 2 {
		t.Fatalf("after clearing preferences: %+v", r)
	}
}

func testContacts(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	if c, err := s.Contact(t.Context(), "frank"); err != nil || c.Email != "" {
		t.Fatalf("contact never set: %+v %v", c, err)
	}
	if err := SetContact(t, s, "frank", persistence.Contact{Email: "frank@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := SetContact(t, s, "frank", persistence.Contact{Email: "f@example.com"}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Contact(t.Context(), "frank"); err != nil || c.Email != "f@example.com" {
		t.Fatalf("contact: %+v %v", c, err)
	}
	if err := SetContact(t, s, "frank", persistence.Contact{}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Contact(t.Context(), "frank"); err != nil || c.Email != "" {
		t.Fatalf("removed contact: %+v %v", c, err)
	}
}
