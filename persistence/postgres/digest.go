package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

const (
	sqlLoadDigests = `SELECT d.user_id, d.type, d.rule, d.opened_at, d.due_at, d.count, d.sender_id, d.object,
  d.channels, d.items
FROM unnest($1::text[], $2::text[], $3::text[]) AS k(user_id, type, rule)
JOIN digests AS d ON d.user_id = k.user_id AND d.type = k.type AND d.rule = k.rule`

	// Insert or replace whole rows. The plan names each key once, so no row is hit twice.
	sqlUpsertDigests = `INSERT INTO digests (user_id, type, rule, opened_at, due_at, count, sender_id, object,
  channels, items)
SELECT user_id, type, rule, opened_at, due_at, count, sender_id, object,
  string_to_array(channels, ','), items::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int4[],
  $7::text[], $8::text[], $9::text[], $10::text[])
  AS r(user_id, type, rule, opened_at, due_at, count, sender_id, object, channels, items)
ON CONFLICT (user_id, type, rule) DO UPDATE SET opened_at = excluded.opened_at, due_at = excluded.due_at,
  count = excluded.count, sender_id = excluded.sender_id, object = excluded.object,
  channels = excluded.channels, items = excluded.items`

	sqlDeleteDigests = `DELETE FROM digests AS d
USING unnest($1::text[], $2::text[], $3::text[]) AS k(user_id, type, rule)
WHERE d.user_id = k.user_id AND d.type = k.type AND d.rule = k.rule`

	sqlDueDigests = `SELECT user_id, type, rule FROM digests WHERE due_at <= $1
ORDER BY due_at, user_id, type, rule LIMIT $2`
)

// DueDigests returns the keys of up to limit digests due at or before now, earliest due
// first. It locks nothing: a flush locks the digest's user and finds the digest, or
// nothing when another flush came first.
func (s *Store) DueDigests(ctx context.Context, now time.Time, limit int) ([]persistence.DigestKey, error) {
	if limit <= 0 {
		return nil, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	rows, err := s.pool.Query(ctx, sqlDueDigests, now, limit)
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	defer rows.Close()
	var out []persistence.DigestKey
	for rows.Next() {
		var k persistence.DigestKey
		if err := rows.Scan(&k.UserID, &k.Type, &k.Rule); err != nil {
			return nil, herald.Unavailable(err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, herald.Unavailable(err)
	}
	return out, nil
}

// queueLoadDigests queues the load of the open digests among keys.
func queueLoadDigests(b *pgx.Batch, keys []persistence.DigestKey) {
	users, types, rules := digestKeyColumns(keys)
	b.Queue(sqlLoadDigests, users, types, rules)
}

// readDigests reads the result of queueLoadDigests into prior.Digests.
func readDigests(br pgx.BatchResults, prior *persistence.Prior) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			d        persistence.DigestBucket
			count    int32
			channels []string
			items    []byte
		)
		if err := rows.Scan(&d.Key.UserID, &d.Key.Type, &d.Key.Rule, &d.OpenedAt, &d.DueAt, &count,
			&d.SenderID, &d.Object, &channels, &items); err != nil {
			return err
		}
		d.OpenedAt, d.DueAt = d.OpenedAt.UTC(), d.DueAt.UTC()
		d.Count = int(count)
		d.Channels = toChannels(channels)
		if d.Items, err = decodeItems(items); err != nil {
			return fmt.Errorf("digest %+v: %w", d.Key, err)
		}
		if prior.Digests == nil {
			prior.Digests = make(map[persistence.DigestKey]persistence.DigestBucket)
		}
		prior.Digests[d.Key] = d
	}
	return rows.Err()
}

// queueDigests queues the plan's digest writes: the open digests inserted or replaced,
// the flushed ones deleted.
func queueDigests(b *pgx.Batch, open []persistence.DigestBucket, deleted []persistence.DigestKey) error {
	if n := len(open); n > 0 {
		var (
			users     = make([]string, n)
			types     = make([]string, n)
			rules     = make([]string, n)
			openedAt  = make([]time.Time, n)
			dueAt     = make([]time.Time, n)
			counts    = make([]int32, n)
			senders   = make([]string, n)
			objects   = make([]string, n)
			channels  = make([]string, n)
			itemsJSON = make([]string, n)
		)
		for i := range open {
			d := &open[i]
			if d.Count < 0 || d.Count > math.MaxInt32 {
				return fmt.Errorf("digest %+v: count %d out of range", d.Key, d.Count)
			}
			users[i], types[i], rules[i] = d.Key.UserID, d.Key.Type, d.Key.Rule
			openedAt[i], dueAt[i], counts[i] = d.OpenedAt, d.DueAt, int32(d.Count)
			senders[i], objects[i], channels[i] = d.SenderID, d.Object, joinChannels(d.Channels)
			itemsJSON[i] = encodeItems(d.Items)
		}
		b.Queue(sqlUpsertDigests, users, types, rules, openedAt, dueAt, counts, senders, objects, channels, itemsJSON)
	}
	if len(deleted) > 0 {
		users, types, rules := digestKeyColumns(deleted)
		b.Queue(sqlDeleteDigests, users, types, rules)
	}
	return nil
}

func digestKeyColumns(keys []persistence.DigestKey) (users, types, rules []string) {
	users, types, rules = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		users[i], types[i], rules[i] = k.UserID, k.Type, k.Rule
	}
	return users, types, rules
}

// encodeItems writes items as the JSON array [{"k":key,"p":payload},…], each payload
// as it is, byte for byte (json.Marshal would compact it and escape HTML characters); a
// nil payload is written null. The column is json, which keeps the text as it is
// written, so decodeItems gives back exactly these bytes.
func encodeItems(items []persistence.DigestItem) string {
	size := 2
	for i := range items {
		size += len(`{"k":"","p":},`) + len(items[i].IdempotencyKey) + len(items[i].Payload) + 4
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		key, _ := json.Marshal(items[i].IdempotencyKey) // a string: cannot fail
		buf = append(buf, `{"k":`...)
		buf = append(buf, key...)
		buf = append(buf, `,"p":`...)
		if items[i].Payload == nil {
			buf = append(buf, "null"...)
		} else {
			buf = append(buf, items[i].Payload...)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ']')
	return string(buf)
}

var errItems = errors.New("malformed digest items")

// decodeItems reads what encodeItems wrote (and the json column checked). A payload is
// everything between its "p": and the end of its item, so it keeps any white space
// around it as sent; null comes back as a nil payload.
func decodeItems(b []byte) ([]persistence.DigestItem, error) {
	rest, ok := bytes.CutPrefix(b, []byte("["))
	if !ok {
		return nil, errItems
	}
	var items []persistence.DigestItem
	for !bytes.HasPrefix(rest, []byte("]")) {
		if len(items) > 0 {
			if rest, ok = bytes.CutPrefix(rest, []byte(",")); !ok {
				return nil, errItems
			}
		}
		if rest, ok = bytes.CutPrefix(rest, []byte(`{"k":`)); !ok {
			return nil, errItems
		}
		end := stringEnd(rest)
		if end < 0 {
			return nil, errItems
		}
		var it persistence.DigestItem
		if raw := rest[1:end]; bytes.IndexByte(raw, '\\') < 0 {
			it.IdempotencyKey = string(raw)
		} else if err := json.Unmarshal(rest[:end+1], &it.IdempotencyKey); err != nil {
			return nil, errItems
		}
		if rest, ok = bytes.CutPrefix(rest[end+1:], []byte(`,"p":`)); !ok {
			return nil, errItems
		}
		end = itemEnd(rest)
		if end < 0 {
			return nil, errItems
		}
		if p := rest[:end]; string(p) != "null" {
			it.Payload = json.RawMessage(bytes.Clone(p))
		}
		items = append(items, it)
		rest = rest[end+1:]
	}
	if !bytes.Equal(rest, []byte("]")) {
		return nil, errItems
	}
	return items, nil
}

// stringEnd returns the index of the quote that ends the JSON string b starts with, or -1.
func stringEnd(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return -1
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// itemEnd returns the index of the brace that closes the item whose payload b starts
// with (valid JSON), or -1.
func itemEnd(b []byte) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			n := stringEnd(b[i:])
			if n < 0 {
				return -1
			}
			i += n
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				if b[i] != '}' {
					return -1
				}
				return i
			}
			depth--
		}
	}
	return -1
}
