package inbox

import (
	"slices"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

// unreadCache is a user's unread total and newest unread notifications at log position
// seq, kept up to date from the entries that follow. It is valid only while it is
// exactly what the store would answer: an entry it cannot account for (a gap, a read of
// one it does not hold while more exist than it holds) invalidates it, and the inbox
// reads it again when someone needs it.
type unreadCache struct {
	valid  bool
	seq    int64
	unread int64
	items  []herald.Notification // oldest first, so that a create appends
	size   int                   // about how many bytes items hold
	frame  []byte                // encoded snapshot of this state; nil until asked for
}

// noteSize is about what n costs in memory.
func noteSize(n *herald.Notification) int {
	return 200 + len(n.ID) + len(n.Object) + len(n.ReceiverID) + len(n.SenderID) + len(n.Type) + len(n.Payload)
}

func (c *unreadCache) reset(p persistence.UnreadPage) {
	c.valid = true
	c.seq, c.unread, c.frame = p.Seq, p.Total, nil
	items := p.Items // newest first
	if len(items) > wire.SnapshotSize {
		items = items[:wire.SnapshotSize]
	}
	slices.Reverse(items)
	if cap(items)-len(items) > len(items)/4 {
		// The store's page has room for more than it holds (a read sizes its slice
		// for the page it may get): the inbox keeps what it holds, not the room, which
		// for an empty list is all of it (128 notifications, 21 KiB).
		items = slices.Clip(slices.Clone(items))
		if len(items) == 0 {
			items = nil
		}
	}
	c.items, c.size = items, 0
	for i := range items {
		c.size += noteSize(&items[i])
	}
	// The page is taken as the store gave it; only what follows is checked.
}

// apply moves the cache past e.
func (c *unreadCache) apply(e *herald.Entry) {
	if !c.valid || e.Seq <= c.seq {
		return
	}
	if e.Seq != c.seq+1 {
		c.invalidate()
		return
	}
	c.seq, c.unread, c.frame = e.Seq, e.Unread, nil
	switch e.Event {
	case herald.EventCreated:
		if len(c.items) == wire.SnapshotSize {
			c.size -= noteSize(&c.items[0])
			c.items[0] = herald.Notification{}
			c.items = c.items[1:] // append moves what is left when it grows
		}
		c.items = append(c.items, *e.Notification)
		c.size += noteSize(e.Notification)
	case herald.EventRead:
		for i := range c.items {
			if c.items[i].ID == e.Notification.ID {
				c.size -= noteSize(&c.items[i])
				c.items = append(c.items[:i], c.items[i+1:]...)
				break
			}
		}
	case herald.EventReadAll:
		clear(c.items)
		c.items, c.size = c.items[:0], 0
	}
	c.check()
}

// check invalidates the cache when it holds fewer items than the snapshot must show.
func (c *unreadCache) check() {
	if int64(len(c.items)) != min(c.unread, wire.SnapshotSize) {
		c.invalidate()
	}
}

func (c *unreadCache) invalidate() {
	c.valid, c.items, c.size, c.frame = false, nil, 0, nil
}

// trim lets go of what an idle inbox need not hold beyond budget bytes: the encoded
// snapshot unless it fits within budget with the list (then the next snapshot of the
// same state is served without encoding again), and the list itself when it alone is
// bigger (the next snapshot reads it again).
func (c *unreadCache) trim(budget int) {
	if c.frame != nil && c.size+cap(c.frame) > budget {
		c.frame = nil
	}
	if c.valid && c.size > budget {
		c.invalidate()
	}
}

// snapshot returns the encoded unread-notifications frame, encoding it once per state.
func (c *unreadCache) snapshot() []byte {
	if c.frame == nil {
		newest := slices.Clone(c.items)
		slices.Reverse(newest)
		c.frame = wire.EncodeSnapshot(newest, c.seq, c.unread)
	}
	return c.frame
}
