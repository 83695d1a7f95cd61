package inbox

import (
	"slices"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// SnapshotSize is how many unread notifications the snapshot holds at most.
const SnapshotSize = 100

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
	frame  []byte                // encoded snapshot; nil until asked for
}

func (c *unreadCache) reset(p persistence.UnreadPage) {
	c.valid = true
	c.seq, c.unread, c.frame = p.Seq, p.Total, nil
	items := p.Items // newest first
	if len(items) > SnapshotSize {
		items = items[:SnapshotSize]
	}
	slices.Reverse(items)
	c.items = items
	c.check()
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
		if len(c.items) == SnapshotSize {
			c.items[0] = herald.Notification{}
			c.items = c.items[1:] // append moves what is left when it grows
		}
		c.items = append(c.items, *e.Notification)
	case herald.EventRead:
		for i := range c.items {
			if c.items[i].ID == e.Notification.ID {
				c.items = append(c.items[:i], c.items[i+1:]...)
				break
			}
		}
	case herald.EventReadAll:
		c.items = c.items[:0]
	}
	c.check()
}

// check invalidates the cache when it holds fewer items than the snapshot must show.
func (c *unreadCache) check() {
	if int64(len(c.items)) != min(c.unread, SnapshotSize) {
		c.invalidate()
	}
}

func (c *unreadCache) invalidate() {
	c.valid, c.items, c.frame = false, nil, nil
}

// snapshot returns the encoded unread-notifications frame, encoding it once per state.
func (c *unreadCache) snapshot() ([]byte, error) {
	if c.frame == nil {
		newest := slices.Clone(c.items)
		slices.Reverse(newest)
		f, err := EncodeSnapshot(newest, c.seq, c.unread)
		if err != nil {
			return nil, err
		}
		c.frame = f
	}
	return c.frame, nil
}
