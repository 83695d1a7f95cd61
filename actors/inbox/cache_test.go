package inbox

import (
	"fmt"
	"testing"

	"github.com/heraldhq/herald"
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
	if !c.valid || len(c.items) != SnapshotSize || c.items[99].ID != "151" || c.items[0].ID != "52" {
		t.Fatalf("create on a full cache: valid %v len %d", c.valid, len(c.items))
	}
	c.apply(entry(152, herald.EventRead, 150, note(10))) // older than anything held
	if !c.valid || len(c.items) != SnapshotSize {
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
	f, err := c.snapshot()
	if err != nil || string(f) != `{"event":"unread-notifications","seq":4,"unread":0,"data":[]}` {
		t.Fatalf("snapshot %s %v", f, err)
	}
}
