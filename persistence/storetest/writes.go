package storetest

import (
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// writeTests are the behaviours of the ops beyond notifications, each sharing a batch
// with others as the persistence actor groups them.
var writeTests = []struct {
	name string
	fn   func(t *testing.T, open Opener)
}{
	{"SettingsInOneBatch", testSettingsInOneBatch},
	{"DeliveryOpsInOneBatch", testDeliveryOpsInOneBatch},
	{"PruneInOneBatch", testPruneInOneBatch},
}

// testSettingsInOneBatch: contacts and preferences set in a batch take effect in op
// order: a create after a preference in the same batch follows it, one before does not,
// and a user set twice keeps the last value.
func testSettingsInOneBatch(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	off := persistence.Preferences{Types: map[string]map[herald.Channel]bool{"muted": {herald.ChannelRealtime: false}}}
	res := apply(t, s, t0,
		create(note(t, "gus", "muted", 1)),
		persistence.Op{Kind: persistence.OpSetPreferences, UserID: "gus", Preferences: off},
		create(note(t, "gus", "muted", 2)),
		persistence.Op{Kind: persistence.OpSetContact, UserID: "gus", Contact: persistence.Contact{Email: "first@example.com"}},
		persistence.Op{Kind: persistence.OpSetContact, UserID: "gus", Contact: persistence.Contact{Email: "gus@example.com"}},
		persistence.Op{Kind: persistence.OpSetContact, UserID: "hal", Contact: persistence.Contact{Email: "hal@example.com"}},
		persistence.Op{Kind: persistence.OpSetPreferences, UserID: "hal", Preferences: off},
		persistence.Op{Kind: persistence.OpSetPreferences, UserID: "hal", Preferences: persistence.Preferences{}},
	)
	for i, r := range res {
		ok(t, r)
		if i != 0 && i != 2 && (len(r.Entries) != 0 || len(r.Notifications) != 0) {
			t.Fatalf("setting op %d returned %+v", i, r)
		}
	}
	if res[0].Suppressed != nil || res[0].Notifications[0].Seq != 1 {
		t.Fatalf("create before the preference: %+v", res[0])
	}
	if len(res[2].Suppressed) != 1 || !res[2].Suppressed[0] {
		t.Fatalf("create after the preference in the same batch: %+v, want suppressed", res[2])
	}
	if c, err := s.Contact(t.Context(), "gus"); err != nil || c.Email != "gus@example.com" {
		t.Fatalf("gus's contact: %+v %v, want the last one set", c, err)
	}
	if c, err := s.Contact(t.Context(), "hal"); err != nil || c.Email != "hal@example.com" {
		t.Fatalf("hal's contact: %+v %v", c, err)
	}
	if p, err := s.Preferences(t.Context(), "gus"); err != nil || p.Allows("muted", herald.ChannelRealtime) {
		t.Fatalf("gus's preferences: %+v %v", p, err)
	}
	if p, err := s.Preferences(t.Context(), "hal"); err != nil || len(p.Channels) != 0 || len(p.Types) != 0 {
		t.Fatalf("hal's preferences, set then cleared in one batch: %+v %v", p, err)
	}
	// Removing in a batch with a create of the same user: the create sees it removed.
	res = apply(t, s, t0,
		persistence.Op{Kind: persistence.OpSetPreferences, UserID: "gus", Preferences: persistence.Preferences{}},
		persistence.Op{Kind: persistence.OpSetContact, UserID: "gus"},
		create(note(t, "gus", "muted", 3)))
	if r := ok(t, res[2]); r.Suppressed != nil || r.Notifications[0].Seq != 2 {
		t.Fatalf("create after clearing the preferences in the same batch: %+v", r)
	}
	if c, err := s.Contact(t.Context(), "gus"); err != nil || c.Email != "" {
		t.Fatalf("removed contact: %+v %v", c, err)
	}
}

// testDeliveryOpsInOneBatch: outcomes and retries share a batch with creates and apply
// in op order: a delivery that dies and is retried in one batch ends pending with no
// attempts; an unknown or not-dead id fails its op alone with not_found.
func testDeliveryOpsInOneBatch(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	n := created(t, s, t0, withChannels(note(t, "ivy", "t", 1), herald.ChannelWebhook))[0]
	ds := claim(t, s, t0, time.Minute, 10)
	if len(ds) != 1 {
		t.Fatalf("claimed %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	t1 := t0.Add(time.Second)
	res := apply(t, s, t1,
		persistence.Op{Kind: persistence.OpRetryDelivery, ID: d.ID}, // pending: not dead yet
		persistence.Op{Kind: persistence.OpFinishDeliveries, Outcomes: []persistence.Outcome{{ID: d.ID, Dead: true, Error: "410 gone"}}},
		create(withChannels(note(t, "ivy", "t", 2), herald.ChannelWebhook)),
		persistence.Op{Kind: persistence.OpRetryDelivery, ID: d.ID},
		persistence.Op{Kind: persistence.OpRetryDelivery, ID: "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b"},
		persistence.Op{Kind: persistence.OpRetryDelivery, ID: "not-an-id"},
	)
	wantCode(t, "retry of a pending delivery", res[0].Err, herald.CodeNotFound)
	ok(t, res[1])
	if r := ok(t, res[2]); len(r.Notifications) != 1 || r.Notifications[0].Seq != 2 {
		t.Fatalf("create in the batch: %+v", r)
	}
	r := ok(t, res[3])
	if r.Delivery == nil || r.Delivery.ID != d.ID || r.Delivery.State != persistence.DeliveryPending || r.Delivery.Attempts != 0 ||
		!r.Delivery.DueAt.Equal(t1) || r.Delivery.LastError != "410 gone" || r.Delivery.Notification.ID != n.ID {
		t.Fatalf("retry after the outcome in the same batch: %+v", r.Delivery)
	}
	wantCode(t, "retry of an unknown delivery", res[4].Err, herald.CodeNotFound)
	wantCode(t, "retry of a malformed id", res[5].Err, herald.CodeNotFound)
	if got := claim(t, s, t1, time.Minute, 10); len(got) != 2 {
		t.Fatalf("claimed %d after the batch, want the retried one and the new one", len(got))
	}
	if dead := listDeliveries(t, s, persistence.DeliveryDead); len(dead) != 0 {
		t.Fatalf("dead letters after the retry: %+v", dead)
	}
}

// testPruneInOneBatch: a prune shares a batch with a mark-read: the old entries go, the
// new one stays, and the op reports what it deleted.
func testPruneInOneBatch(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	old := persistence.Now().Add(-3 * time.Hour)
	ns := created(t, s, old, note(t, "jo", "t", 1), note(t, "jo", "t", 2))
	apply(t, s, old, markRead("jo", ns[0].ID))
	now := persistence.Now()
	res := apply(t, s, now,
		persistence.Op{Kind: persistence.OpPrune, Cutoff: now.Add(-time.Hour)},
		markRead("jo", ns[1].ID))
	if r := ok(t, res[0]); r.Pruned != 1 || r.More {
		t.Fatalf("prune: %d pruned, more %v; want 1, false", r.Pruned, r.More)
	}
	ok(t, res[1])
	if r := ok(t, apply(t, s, now, persistence.Op{Kind: persistence.OpPrune, Cutoff: now.Add(-time.Hour)})[0]); r.Pruned != 0 || r.More {
		t.Fatalf("second prune: %d pruned, more %v; want 0, false", r.Pruned, r.More)
	}
	p := events(t, s, "jo", 3, 10)
	if p.Reset || len(p.Entries) != 1 || p.Entries[0].Event != herald.EventRead || p.Entries[0].Seq != 4 {
		t.Fatalf("the new read entry after the prune: %+v", p)
	}
}
