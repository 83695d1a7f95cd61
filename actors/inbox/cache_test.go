package inbox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

func TestUnreadCache(t *testing.T) {
	note := func(i int) herald.Notification { return herald.Notification{ID: fmt.Sprint(i), Seq: int64(i)} }
	full := func() *unreadCache { // 150 unread, the newest 100 held (ids 150..51)
		var items []herald.Notification
		for i := 150; i > 50; i-- {
			items = append(items, note(i))
		}
		c := &unreadCache{}
		c.reset(persistence.UnreadPage{Items: items, Total: 150, Seq: 150})
		return c
	}
	entry := func(seq int64, ev herald.Event, unread int64, n herald.Notification) *herald.Entry {
		return &herald.Entry{Seq: seq, Event: ev, Unread: unread, Notification: &n, ReadAll: &herald.ReadAll{}}
	}

	c := full()
	c.apply(entry(151, herald.EventCreated, 151, note(151)))
	if !c.valid || len(c.items) != wire.SnapshotSize || c.items[99].ID != "151" || c.items[0].ID != "52" {
		t.Fatalf("create on a full cache: valid %v len %d", c.valid, len(c.items))
	}
	c.apply(entry(152, herald.EventRead, 150, note(10))) // older than anything held
	if !c.valid || len(c.items) != wire.SnapshotSize {
		t.Fatalf("read of an unheld one: valid %v len %d", c.valid, len(c.items))
	}
	c.apply(entry(153, herald.EventRead, 149, note(100))) // held: the 101st newest is unknown
	if c.valid {
		t.Fatal("cache still valid after losing an item it cannot replace")
	}

	c = full()
	c.apply(entry(152, herald.EventCreated, 151, note(152))) // a gap
	if c.valid {
		t.Fatal("cache valid after a gap")
	}

	c = &unreadCache{}
	c.reset(persistence.UnreadPage{Items: []herald.Notification{note(2), note(1)}, Total: 2, Seq: 2})
	c.apply(entry(2, herald.EventCreated, 9, note(99))) // already reflected
	c.apply(entry(3, herald.EventRead, 1, note(1)))
	c.apply(entry(4, herald.EventReadAll, 0, herald.Notification{}))
	if !c.valid || len(c.items) != 0 || c.unread != 0 || c.seq != 4 {
		t.Fatalf("small cache: %+v", c)
	}
	f := c.snapshot()
	if string(f) != `{"event":"unread-notifications","seq":4,"unread":0,"data":[]}` {
		t.Fatalf("snapshot %s", f)
	}
}

// TestUnreadCacheKeepsFrame: an idle inbox keeps the encoded snapshot while it and the
// list fit the budget together, so a refresh of the same state encodes nothing; over
// the budget it keeps neither the encoding nor a list bigger than the budget.
func TestUnreadCacheKeepsFrame(t *testing.T) {
	note := func(i int) herald.Notification { return herald.Notification{ID: fmt.Sprint(i), Seq: int64(i)} }
	c := &unreadCache{}
	c.reset(persistence.UnreadPage{Items: []herald.Notification{note(2), note(1)}, Total: 2, Seq: 2})
	f1 := c.snapshot()
	c.trim(4 << 10)
	f2 := c.snapshot()
	if &f1[0] != &f2[0] {
		t.Fatal("the snapshot was encoded again for the same state after an idle trim")
	}
	if c.size+cap(c.frame) > 4<<10 {
		t.Fatalf("idle cache holds %d bytes of list and %d of frame, over the 4 KiB budget", c.size, cap(c.frame))
	}
	c.apply(&herald.Entry{Seq: 3, Event: herald.EventCreated, Unread: 3, Notification: &herald.Notification{ID: "3", Seq: 3}})
	if c.frame != nil {
		t.Fatal("the encoding of an older state survived an entry")
	}
	f3 := c.snapshot()
	if !strings.Contains(string(f3), `"seq":3,"unread":3`) {
		t.Fatalf("snapshot after the entry: %s", f3)
	}

	// A budget the frame does not fit in with the list: the frame goes, the list stays.
	c.trim(c.size + cap(c.frame) - 1)
	if c.frame != nil || !c.valid {
		t.Fatalf("over the budget with the frame: frame kept %v, list valid %v", c.frame != nil, c.valid)
	}
	// A list over the budget on its own goes too.
	c.trim(c.size - 1)
	if c.valid || c.items != nil {
		t.Fatal("a list over the budget was kept")
	}
}

// TestUnreadCacheKeepsNoRoom: an inbox keeps the notifications of its snapshot, not the
// room the store's page had for more (a PostgreSQL read sizes its slice for 128): an
// idle inbox with an empty list holds no array at all.
func TestUnreadCacheKeepsNoRoom(t *testing.T) {
	for _, n := range []int{0, 3, 100} {
		items := make([]herald.Notification, n, 128)
		for i := range items {
			items[i] = herald.Notification{ID: fmt.Sprint(i), Seq: int64(n - i)}
		}
		c := &unreadCache{}
		c.reset(persistence.UnreadPage{Items: items, Total: int64(n), Seq: int64(n)})
		if !c.valid || len(c.items) != n || cap(c.items)-len(c.items) > n/4 {
			t.Errorf("%d unread on a page with room for 128: the cache holds len %d cap %d (valid %v)", n, len(c.items), cap(c.items), c.valid)
		}
	}
}
