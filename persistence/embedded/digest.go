package embedded

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/persistence"
)

// digest returns the open digest k, or false when there is none.
func (b *buckets) digest(k persistence.DigestKey) (persistence.DigestBucket, bool, error) {
	key := digestKey(k)
	v := b.digests.Get(key)
	if v == nil {
		return persistence.DigestBucket{}, false, nil
	}
	d, err := decodeDigest(key, v)
	return d, err == nil, err
}

// putDigest stores d, inserting or replacing the whole record, and keeps its due index
// key at its dueAt: a replaced digest's key moves when its dueAt changed. It reports
// whether it wrote anything: a record that is stored as it is stays.
func (b *buckets) putDigest(d *persistence.DigestBucket) (bool, error) {
	key, v := digestKey(d.Key), encodeDigest(d)
	due := digestDueKey(d.DueAt, key)
	if old := b.digests.Get(key); old != nil {
		if bytes.Equal(old, v) {
			return false, nil
		}
		at, err := digestDue(old)
		if err != nil {
			return false, err
		}
		oldDue := digestDueKey(at, key)
		if bytes.Equal(oldDue, due) {
			due = nil // in place already
		} else if err := b.digestDue.Delete(oldDue); err != nil {
			return false, err
		}
	}
	if err := b.digests.Put(key, v); err != nil {
		return false, err
	}
	if due != nil {
		if err := b.digestDue.Put(due, nil); err != nil {
			return false, err
		}
	}
	return true, nil
}

// deleteDigest deletes digest k and its due index key, and reports whether there was
// one: a digest opened and flushed in the same batch was never stored.
func (b *buckets) deleteDigest(k persistence.DigestKey) (bool, error) {
	key := digestKey(k)
	old := b.digests.Get(key)
	if old == nil {
		return false, nil
	}
	at, err := digestDue(old)
	if err != nil {
		return false, err
	}
	if err := b.digestDue.Delete(digestDueKey(at, key)); err != nil {
		return false, err
	}
	return true, b.digests.Delete(key)
}

// DueDigests returns the keys of up to limit digests due at or before now, earliest due
// first (limit <= 0: none), from a read transaction: polling writes nothing.
func (s *Store) DueDigests(ctx context.Context, now time.Time, limit int) ([]persistence.DigestKey, error) {
	if limit <= 0 {
		return nil, nil
	}
	end := dueEnd(stamp(now))
	var out []persistence.DigestKey
	err := s.view(ctx, func(b *buckets) error {
		c := b.digestDue.Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) <= timeKeyLen {
				return fmt.Errorf("%w: digest due key of %d bytes", errCorrupt, len(k))
			}
			if bytes.Compare(k[:timeKeyLen], end) > 0 {
				break
			}
			key := k[timeKeyLen:]
			dk, err := decodeDigestKey(key)
			if err != nil {
				return err
			}
			v := b.digests.Get(key)
			if v == nil {
				return fmt.Errorf("%w: digest due key of a missing digest %+v", errCorrupt, dk)
			}
			at, err := digestDue(v)
			if err != nil {
				return err
			}
			if !bytes.Equal(digestDueKey(at, key), k) {
				return fmt.Errorf("%w: digest due key of %+v disagrees with its record", errCorrupt, dk)
			}
			out = append(out, dk)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
