package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// deliveryCols are the columns of a delivery after noteCols, as scanDelivery reads them;
// the notification's id is the delivery's notification_id.
const deliveryCols = `d.id, d.user_id, d.channel, d.state, d.attempts, d.due_at, d.unread_only, d.by_service,
  d.last_error, d.created_at, d.updated_at`

const (
	// sqlClaim picks up to $3 pending rows due by $1, earliest first, skipping the rows
	// other claimers hold, and in the same statement leases each (due again at $2) or,
	// for an escalation whose notification is read, cancels it. It returns every row it
	// picked, the cancelled ones too (the caller drops them), with the notification as
	// it is now and the due time it was picked by. picked is materialized so that it runs
	// once: a rescan would pick again.
	sqlClaim = `WITH picked AS MATERIALIZED (
  SELECT id, due_at FROM deliveries
  WHERE state = 'pending' AND due_at <= $1
  ORDER BY due_at, id
  LIMIT $3
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE deliveries AS d SET
    state      = CASE WHEN d.unread_only AND n.read_at IS NOT NULL THEN 'cancelled' ELSE d.state END,
    due_at     = CASE WHEN d.unread_only AND n.read_at IS NOT NULL THEN d.due_at ELSE $2 END,
    updated_at = CASE WHEN d.unread_only AND n.read_at IS NOT NULL THEN $1 ELSE d.updated_at END
  FROM picked AS p, notifications AS n
  WHERE d.id = p.id AND n.id = d.notification_id
  RETURNING d.*, p.due_at AS was_due
)
SELECT ` + noteCols + `, ` + deliveryCols + `, d.was_due
FROM claimed AS d JOIN notifications AS n ON n.id = d.notification_id
ORDER BY d.was_due, d.id`

	// sqlFinish records outcomes given as arrays (id, state, due_at, error; a NULL due_at
	// or error keeps the row's). It first locks the rows still pending in id order, so
	// that two finishers of overlapping sets (a delivery whose lease ran out while its
	// first attempt was still going) wait for each other instead of deadlocking.
	sqlFinish = `WITH locked AS MATERIALIZED (
  SELECT id FROM deliveries WHERE id = ANY($2::uuid[]) AND state = 'pending' ORDER BY id FOR UPDATE
)
UPDATE deliveries AS d SET
  state      = o.state,
  attempts   = d.attempts + 1,
  due_at     = coalesce(o.due_at, d.due_at),
  last_error = coalesce(o.error, d.last_error),
  updated_at = $1
FROM locked AS l, unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::text[]) AS o(id, state, due_at, error)
WHERE d.id = l.id AND o.id = l.id AND d.state = 'pending'`

	sqlDeliveries = `SELECT ` + noteCols + `, ` + deliveryCols + `
FROM deliveries AS d JOIN notifications AS n ON n.id = d.notification_id
WHERE d.state = $1 AND d.id > $2
ORDER BY d.id LIMIT $3`

	sqlRetry = `WITH d AS (
  UPDATE deliveries SET state = 'pending', attempts = 0, due_at = $2, updated_at = $2
  WHERE id = $1 AND state = 'dead'
  RETURNING *
)
SELECT ` + noteCols + `, ` + deliveryCols + ` FROM d JOIN notifications AS n ON n.id = d.notification_id`

	sqlOutboxStats = `SELECT channel, count(*), min(due_at) FROM deliveries
WHERE state = 'pending' GROUP BY channel ORDER BY channel`

	sqlContact = `SELECT email FROM contacts WHERE user_id = $1`
	sqlPrefs   = `SELECT prefs FROM preferences WHERE user_id = $1`
)

// ClaimDeliveries leases up to limit pending deliveries due by now; see the package doc.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]persistence.Delivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	until := now.Add(lease).Truncate(time.Microsecond)
	var (
		out []persistence.Delivery
		due []time.Time // out[i] was picked due at due[i]
	)
	// Cancelled escalations take places in a claim without being returned: claim again
	// for those places, until a claim cancels nothing (there is nothing more to cancel
	// then, or the limit is reached).
	for len(out) < limit {
		cancelled := 0
		rows, err := s.pool.Query(ctx, sqlClaim, now, until, limit-len(out))
		if err != nil {
			return nil, herald.Unavailable(err)
		}
		var sc deliveryScanner
		for rows.Next() {
			var (
				d      persistence.Delivery
				wasDue time.Time
			)
			if err := sc.scan(rows, &d, &wasDue); err != nil {
				rows.Close()
				return nil, herald.Unavailable(err)
			}
			if d.State != persistence.DeliveryPending {
				cancelled++
				continue
			}
			out = append(out, d)
			due = append(due, wasDue)
		}
		if err := rows.Err(); err != nil {
			return nil, herald.Unavailable(err)
		}
		if cancelled == 0 {
			break
		}
	}
	if !slices.IsSortedFunc(due, time.Time.Compare) {
		// A later claim of the loop found a row due earlier (written meanwhile).
		idx := make([]int, len(out))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return due[a].Compare(due[b]) })
		sorted := make([]persistence.Delivery, len(out))
		for i, j := range idx {
			sorted[i] = out[j]
		}
		out = sorted
	}
	return out, nil
}

// finishArgs returns the arguments of sqlFinish for outcomes (OpFinishDeliveries), or
// nil when none names a delivery.
func finishArgs(now time.Time, outcomes []persistence.Outcome) []any {
	n := len(outcomes)
	var (
		ids    = make([][16]byte, 0, n)
		states = make([]string, 0, n)
		dueAt  = make(pgtype.FlatArray[pgtype.Timestamptz], 0, n)
		errs   = make(pgtype.FlatArray[pgtype.Text], 0, n)
		seen   = make(map[[16]byte]int, n)
	)
	for _, o := range outcomes {
		id, ok := persistence.ParseID(o.ID)
		if !ok {
			continue // names no delivery
		}
		var (
			state = persistence.DeliveryPending
			due   pgtype.Timestamptz
			msg   = pgtype.Text{String: cleanText(o.Error), Valid: true}
		)
		switch {
		case o.Sent:
			state, msg = persistence.DeliverySent, pgtype.Text{} // keeps the last failure's error
		case o.Dead:
			state = persistence.DeliveryDead
		default:
			at := o.Retry
			if at.IsZero() {
				at = now
			}
			due = pgtype.Timestamptz{Time: at.UTC().Truncate(time.Microsecond), Valid: true}
		}
		if i, dup := seen[id]; dup {
			// One row takes one outcome (an UPDATE … FROM would pick one at random): the last.
			states[i], dueAt[i], errs[i] = string(state), due, msg
			continue
		}
		seen[id] = len(ids)
		ids = append(ids, id)
		states = append(states, string(state))
		dueAt = append(dueAt, due)
		errs = append(errs, msg)
	}
	if len(ids) == 0 {
		return nil
	}
	return []any{now, ids, states, dueAt, errs}
}

// Deliveries lists the deliveries in state after the id after, in id order.
func (s *Store) Deliveries(ctx context.Context, state persistence.DeliveryState, after string, limit int) ([]persistence.Delivery, error) {
	if !state.Valid() {
		return nil, herald.FieldError("state", "state must be one of pending, sent, dead and cancelled")
	}
	var from [16]byte // the nil UUID sorts before every id Herald issues
	if after != "" {
		u, ok := persistence.ParseID(after)
		if !ok {
			return nil, herald.FieldError("after", "after must be a delivery id")
		}
		from = u
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, sqlDeliveries, string(state), from, limit)
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	defer rows.Close()
	out := make([]persistence.Delivery, 0, min(limit, 128))
	var sc deliveryScanner
	for rows.Next() {
		var d persistence.Delivery
		if err := sc.scan(rows, &d); err != nil {
			return nil, herald.Unavailable(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, herald.Unavailable(err)
	}
	return out, nil
}

func deliveryNotFound(id string) *herald.Error {
	return &herald.Error{Code: herald.CodeNotFound, Message: "no dead delivery " + id, Field: "id"}
}

// OutboxStats reports the pending deliveries of each channel that has some.
func (s *Store) OutboxStats(ctx context.Context) ([]persistence.ChannelStats, error) {
	rows, err := s.pool.Query(ctx, sqlOutboxStats)
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	defer rows.Close()
	var out []persistence.ChannelStats
	for rows.Next() {
		var (
			st persistence.ChannelStats
			ch string
		)
		if err := rows.Scan(&ch, &st.Pending, &st.OldestDue); err != nil {
			return nil, herald.Unavailable(err)
		}
		st.Channel, st.OldestDue = herald.Channel(ch), st.OldestDue.UTC()
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, herald.Unavailable(err)
	}
	return out, nil
}

// Contact returns how userID is reached; the zero Contact when it was never set.
func (s *Store) Contact(ctx context.Context, userID string) (persistence.Contact, error) {
	var c persistence.Contact
	if !storable(userID) {
		return c, nil
	}
	if err := s.pool.QueryRow(ctx, sqlContact, userID).Scan(&c.Email); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return persistence.Contact{}, herald.Unavailable(err)
	}
	return c, nil
}

// Preferences returns userID's preferences; the zero value when never set.
func (s *Store) Preferences(ctx context.Context, userID string) (persistence.Preferences, error) {
	var p persistence.Preferences
	if !storable(userID) {
		return p, nil
	}
	var raw []byte
	if err := s.pool.QueryRow(ctx, sqlPrefs, userID).Scan(&raw); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return p, nil
		}
		return p, herald.Unavailable(err)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return persistence.Preferences{}, herald.Unavailable(err)
	}
	return p, nil
}

// deliveryScanner reads noteCols, then deliveryCols (and extra columns after them) into
// a delivery with its notification.
type deliveryScanner struct {
	notes noteScanner
}

func (sc *deliveryScanner) scan(rows pgx.Rows, d *persistence.Delivery, extra ...any) error {
	var (
		id      pgtype.UUID
		channel string
		state   string
		n       int32
	)
	dest := append([]any{&id, &d.UserID, &channel, &state, &n, &d.DueAt, &d.UnreadOnly, &d.ByService,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt}, extra...)
	if err := sc.notes.scan(rows, &d.Notification, dest...); err != nil {
		return err
	}
	d.ID = uuid.UUID(id.Bytes).String()
	d.NotificationID = d.Notification.ID
	d.Channel = herald.Channel(channel)
	d.State = persistence.DeliveryState(state)
	d.Attempts = int(n)
	d.DueAt, d.CreatedAt, d.UpdatedAt = d.DueAt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	for _, x := range extra {
		if t, ok := x.(*time.Time); ok {
			*t = t.UTC()
		}
	}
	return nil
}

// cleanText makes s storable in a text column: invalid UTF-8 becomes U+FFFD and NUL
// characters are dropped. Errors from receivers can carry anything.
func cleanText(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
