package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// stamp is t as stored: UTC, in whole microseconds.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// deliveryKey returns the 16 bytes of a delivery id, or false when id is not a UUID in
// canonical form (and so names no delivery).
func deliveryKey(id string) ([]byte, bool) { return noteKey(id) }

// update runs fn in a write transaction, durable when it returns nil. fn returns
// errNothingChanged to roll back, so that a call that changes nothing writes nothing
// and does not fsync; update then returns nil.
func (s *Store) update(ctx context.Context, fn func(*buckets) error) error {
	if err := ctx.Err(); err != nil {
		return herald.Unavailable(err)
	}
	err := s.commit(func(tx *bolt.Tx) error { return fn(open(tx)) })
	if errors.Is(err, errNothingChanged) {
		return nil
	}
	return storeErr(err)
}

// delivery returns the delivery with key id, or false when there is none.
func (b *buckets) delivery(id []byte) (storedDelivery, bool, error) {
	v := b.deliveries.Get(id)
	if v == nil {
		return storedDelivery{}, false, nil
	}
	d, err := decodeDelivery(id, v)
	return d, err == nil, err
}

// mustDelivery returns the delivery an index points at; its absence is corruption.
func (b *buckets) mustDelivery(id []byte) (storedDelivery, error) {
	d, ok, err := b.delivery(id)
	if err == nil && !ok {
		err = fmt.Errorf("%w: index points at a missing delivery", errCorrupt)
	}
	return d, err
}

// withNote fills in d's notification as it is now.
func (b *buckets) withNote(d *storedDelivery) error {
	n, err := b.mustNote(d.noteID)
	if err != nil {
		return err
	}
	d.Notification = n.Notification
	return nil
}

// noteRead reports whether the notification with key id has been read, without
// decoding its record.
func (b *buckets) noteRead(id []byte) (bool, error) {
	v := b.notes.Get(id)
	if len(v) < noteHeader || v[0] != noteVersion {
		return false, fmt.Errorf("%w: a delivery's notification is missing or unreadable", errCorrupt)
	}
	return v[1]&flagRead != 0, nil
}

// insertDelivery stores a new delivery and its index keys.
func (b *buckets) insertDelivery(d *persistence.Delivery) error {
	id, ok := deliveryKey(d.ID)
	if !ok {
		return herald.Errorf(herald.CodeInternal, "planned delivery id %q is not a UUID", d.ID)
	}
	note, ok := noteKey(d.NotificationID)
	if !ok {
		return herald.Errorf(herald.CodeInternal, "planned delivery of notification %q, not a UUID", d.NotificationID)
	}
	v, err := encodeDelivery(d, note)
	if err != nil {
		return err
	}
	if err := b.deliveries.Put(id, v); err != nil {
		return err
	}
	state := stateCodes[d.State] // encodeDelivery checked it
	if err := b.byState.Put(stateKey(state, id), nil); err != nil {
		return err
	}
	if state == statePending {
		return b.due.Put(dueKey(d.DueAt, id), nil)
	}
	return nil
}

// saveDelivery stores d, a changed copy of the stored old, and moves its index keys:
// the state index follows the state, the due index holds pending deliveries only, at
// their due time.
func (b *buckets) saveDelivery(old *storedDelivery, d *persistence.Delivery) error {
	v, err := encodeDelivery(d, old.noteID)
	if err != nil {
		return err
	}
	if err := b.deliveries.Put(bytes.Clone(old.key), v); err != nil {
		return err
	}
	state := stateCodes[d.State]
	if state != old.state {
		if err := b.byState.Delete(stateKey(old.state, old.key)); err != nil {
			return err
		}
		if err := b.byState.Put(stateKey(state, old.key), nil); err != nil {
			return err
		}
	}
	oldDue, newDue := dueKey(old.DueAt, old.key), dueKey(d.DueAt, old.key)
	wasPending, pending := old.state == statePending, state == statePending
	if wasPending && pending && bytes.Equal(oldDue, newDue) {
		return nil
	}
	if wasPending {
		if err := b.due.Delete(oldDue); err != nil {
			return err
		}
	}
	if pending {
		return b.due.Put(newDue, nil)
	}
	return nil
}

// ClaimDeliveries leases up to limit pending deliveries due at or before now, earliest
// due first (limit <= 0: none), moving each one's due index key to now+lease, and
// cancels the due escalations whose notification was read on the way. When nothing is
// due, a read transaction tells so and nothing is written: the dispatcher polls. bbolt
// runs one write transaction at a time, so concurrent claimers each see the others'
// leases.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]persistence.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	updated := stamp(now)
	end := dueEnd(updated)
	until := stamp(updated.Add(lease))
	isDue := func(k []byte) (bool, error) {
		if k == nil {
			return false, nil
		}
		if len(k) != dueKeyLen {
			return false, fmt.Errorf("%w: due key of %d bytes", errCorrupt, len(k))
		}
		return bytes.Compare(k[:timeKeyLen], end) <= 0, nil
	}
	var something bool
	err := s.view(ctx, func(b *buckets) error {
		var err error
		k, _ := b.due.Cursor().First()
		something, err = isDue(k)
		return err
	})
	if err != nil || !something {
		return nil, err
	}
	var out []persistence.Delivery
	for more := true; more; {
		more = false
		var claimed []persistence.Delivery
		err := s.update(ctx, func(b *buckets) error {
			claimed = nil
			var take, cancel []storedDelivery
			c := b.due.Cursor()
			for k, _ := c.First(); ; k, _ = c.Next() {
				due, err := isDue(k)
				if err != nil {
					return err
				}
				if !due || len(out)+len(take) == limit {
					break
				}
				if len(cancel) == s.cancelChunk {
					more = true
					break
				}
				d, err := b.mustDelivery(k[timeKeyLen:])
				if err != nil {
					return err
				}
				if d.state != statePending || !bytes.Equal(dueKey(d.DueAt, d.key), k) {
					return fmt.Errorf("%w: due key of delivery %s disagrees with its record", errCorrupt, d.ID)
				}
				if d.UnreadOnly {
					read, err := b.noteRead(d.noteID)
					if err != nil {
						return err
					}
					if read {
						cancel = append(cancel, d)
						continue
					}
				}
				if err := b.withNote(&d); err != nil {
					return err
				}
				take = append(take, d)
			}
			if len(take) == 0 && len(cancel) == 0 {
				return errNothingChanged // claimed by another meanwhile: no write, no fsync
			}
			// The cursor is done: bbolt cursors do not follow changes to their bucket.
			for i := range cancel {
				d := cancel[i].Delivery
				d.State, d.UpdatedAt = persistence.DeliveryCancelled, updated
				if err := b.saveDelivery(&cancel[i], &d); err != nil {
					return err
				}
			}
			for i := range take {
				d := take[i].Delivery
				d.DueAt = until
				if err := b.saveDelivery(&take[i], &d); err != nil {
					return err
				}
				claimed = append(claimed, d)
			}
			return nil
		})
		if err != nil {
			// Leases of earlier chunks, if any, run out like any other.
			return nil, err
		}
		out = append(out, claimed...)
	}
	return out, nil
}

// finish records outcomes (OpFinishDeliveries) and reports whether it changed
// anything. Outcomes of deliveries that are not pending (or do not exist) are ignored. A
// delivery named twice takes the last of its outcomes, as one attempt. A retry at the
// zero time is due now. A failure's Error becomes LastError; a success keeps the last
// failure's.
func (b *buckets) finish(now time.Time, outcomes []persistence.Outcome) (bool, error) {
	var last map[string]int
	if len(outcomes) > 1 {
		last = make(map[string]int, len(outcomes))
		for i := range outcomes {
			last[outcomes[i].ID] = i
		}
	}
	changed := false
	for i := range outcomes {
		o := &outcomes[i]
		if last != nil && last[o.ID] != i {
			continue
		}
		k, ok := deliveryKey(o.ID)
		if !ok {
			continue
		}
		old, ok, err := b.delivery(k)
		if err != nil {
			return false, err
		}
		if !ok || old.state != statePending {
			continue
		}
		d := old.Delivery
		d.Attempts++
		d.UpdatedAt = now
		switch {
		case o.Sent:
			d.State = persistence.DeliverySent
		case o.Dead:
			d.State, d.LastError = persistence.DeliveryDead, o.Error
		default:
			d.DueAt, d.LastError = stamp(o.Retry), o.Error
			if o.Retry.IsZero() {
				d.DueAt = now
			}
		}
		if err := b.saveDelivery(&old, &d); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

// Deliveries lists up to limit deliveries in state with an id greater than after, in id
// order, each with its notification; limit <= 0 lists none. A canonical id sorts as a
// string as its 16 bytes do, so after is a seek; an after that is not a delivery id
// (nor empty) is a validation error, as is an unknown state.
func (s *Store) Deliveries(ctx context.Context, state persistence.DeliveryState, after string, limit int) ([]persistence.Delivery, error) {
	code, ok := stateCodes[state]
	if !ok {
		return nil, herald.FieldError("state", "state must be one of pending, sent, dead and cancelled")
	}
	afterKey, ok := deliveryKey(after)
	if !ok && after != "" {
		return nil, herald.FieldError("after", "after must be a delivery id")
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []persistence.Delivery
	err := s.view(ctx, func(b *buckets) error {
		prefix := []byte{code}
		c := b.byState.Cursor()
		var k []byte
		if after == "" {
			k, _ = c.Seek(prefix)
		} else {
			from := stateKey(code, afterKey)
			if k, _ = c.Seek(from); bytes.Equal(k, from) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			if len(k) != stateKeyLen {
				return fmt.Errorf("%w: state key of %d bytes", errCorrupt, len(k))
			}
			d, err := b.mustDelivery(k[1:])
			if err != nil {
				return err
			}
			if d.state != code {
				return fmt.Errorf("%w: state key of delivery %s disagrees with its record", errCorrupt, d.ID)
			}
			if err := b.withNote(&d); err != nil {
				return err
			}
			out = append(out, d.Delivery)
		}
		return nil
	})
	return out, err
}

// retry makes dead delivery id pending again, due now, with no attempts
// (OpRetryDelivery), and returns it with its notification; false when id names no dead
// delivery. Its LastError is kept for the record until the next attempt.
func (b *buckets) retry(now time.Time, id string) (persistence.Delivery, bool, error) {
	k, ok := deliveryKey(id)
	if !ok {
		return persistence.Delivery{}, false, nil
	}
	old, ok, err := b.delivery(k)
	if err != nil || !ok || old.state != stateDead {
		return persistence.Delivery{}, false, err
	}
	d := old
	d.State, d.Attempts, d.DueAt, d.UpdatedAt = persistence.DeliveryPending, 0, now, now
	if err := b.saveDelivery(&old, &d.Delivery); err != nil {
		return persistence.Delivery{}, false, err
	}
	if err := b.withNote(&d); err != nil {
		return persistence.Delivery{}, false, err
	}
	return d.Delivery, true, nil
}

// OutboxStats walks the due index, which holds exactly the pending deliveries in due
// order, so the first one seen of a channel is its oldest. Channels come sorted.
func (s *Store) OutboxStats(ctx context.Context) ([]persistence.ChannelStats, error) {
	var out []persistence.ChannelStats
	err := s.view(ctx, func(b *buckets) error {
		at := map[herald.Channel]int{}
		c := b.due.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != dueKeyLen {
				return fmt.Errorf("%w: due key of %d bytes", errCorrupt, len(k))
			}
			d, err := b.mustDelivery(k[timeKeyLen:])
			if err != nil {
				return err
			}
			i, ok := at[d.Channel]
			if !ok {
				i = len(out)
				at[d.Channel] = i
				out = append(out, persistence.ChannelStats{Channel: d.Channel, OldestDue: d.DueAt})
			}
			out[i].Pending++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b persistence.ChannelStats) int {
		switch {
		case a.Channel < b.Channel:
			return -1
		case a.Channel > b.Channel:
			return 1
		}
		return 0
	})
	return out, nil
}

// ---- contacts and preferences: JSON by user ----

// putUserJSON stores v as userID's row of bk, or deletes the row when remove is set,
// and reports whether that changed the row.
func putUserJSON(bk *bolt.Bucket, userID string, v any, remove bool) (bool, error) {
	key := userPrefix(userID)
	old := bk.Get(key)
	if remove {
		if old == nil {
			return false, nil
		}
		return true, bk.Delete(key)
	}
	val, err := json.Marshal(v)
	if err != nil {
		return false, herald.Errorf(herald.CodeInternal, "encode: %v", err)
	}
	if bytes.Equal(old, val) {
		return false, nil
	}
	return true, bk.Put(key, val)
}

// getUserJSON decodes userID's row of bucket into v and reports whether there is one.
func getUserJSON(bk *bolt.Bucket, userID string, v any) (bool, error) {
	raw := bk.Get(userPrefix(userID))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: contact or preferences record: %v", errCorrupt, err)
	}
	return true, nil
}

// Contact returns how userID is reached; the zero Contact when it was never set.
func (s *Store) Contact(ctx context.Context, userID string) (persistence.Contact, error) {
	var c persistence.Contact
	err := s.view(ctx, func(b *buckets) error {
		_, err := getUserJSON(b.contacts, userID, &c)
		return err
	})
	return c, err
}

// Preferences returns userID's preferences; the zero value when never set.
func (s *Store) Preferences(ctx context.Context, userID string) (persistence.Preferences, error) {
	var p persistence.Preferences
	err := s.view(ctx, func(b *buckets) error {
		var err error
		p, _, err = b.preferences(userID)
		return err
	})
	return p, err
}

// preferences returns userID's stored preferences, or false when there are none.
func (b *buckets) preferences(userID string) (persistence.Preferences, bool, error) {
	var p persistence.Preferences
	ok, err := getUserJSON(b.prefs, userID, &p)
	return p, ok, err
}
