package postgres

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// noteCols are the columns of a notification, as noteScanner reads them: noteColCount
// of them.
const (
	noteCols     = `n.id, n.receiver_id, n.sender_id, n.type, n.object, n.payload, n.channels, n.created_at, n.read_at, n.seq`
	noteColCount = 10
)

const (
	sqlGet = `SELECT ` + noteCols + ` FROM notifications AS n WHERE n.id = $1 AND n.receiver_id = $2`

	sqlUserState = `SELECT seq, unread FROM user_state WHERE user_id = $1`

	// The heads of many users: their positions in $1 (from 1) and their seqs.
	sqlHeads = `SELECT u.i, s.seq FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)
JOIN user_state AS s ON s.user_id = u.id`

	// A user's unread page with their state, in one statement, so in one snapshot: a row
	// per notification with the state after it, or one row of NULL notification columns
	// when there is none. No row: the user has nothing (a state row comes with the
	// first notification).
	sqlUnread = `SELECT ` + noteCols + `, s.seq, s.unread FROM user_state AS s
LEFT JOIN LATERAL (SELECT ` + noteCols + ` FROM notifications AS n
  WHERE n.receiver_id = s.user_id AND n.read_at IS NULL AND n.seq < $2
  ORDER BY n.seq DESC LIMIT $3) AS n ON true
WHERE s.user_id = $1
ORDER BY n.seq DESC`

	sqlCreated = `SELECT ` + noteCols + ` FROM notifications AS n
WHERE n.receiver_id = $1 AND n.seq > $2
ORDER BY n.seq LIMIT $3`

	// The entries after $2: creations are notification rows, the others log rows. Each
	// side is limited before they are merged.
	sqlEvents = `(SELECT n.seq, 'new-notification' AS event, n.created_at AS at, n.unread_after AS unread,
    NULL::bigint AS updated, n.id, n.sender_id, n.type, n.object, n.payload, n.channels,
    n.created_at AS note_created_at, n.seq AS note_seq
  FROM notifications AS n
  WHERE n.receiver_id = $1 AND n.seq > $2
  ORDER BY n.seq LIMIT $3)
UNION ALL
(SELECT l.seq, l.event, l.at, l.unread, l.updated, n.id, n.sender_id, n.type, n.object, n.payload,
    n.channels, n.created_at, n.seq
  FROM notification_log AS l LEFT JOIN notifications AS n ON n.id = l.notification_id
  WHERE l.user_id = $1 AND l.seq > $2
  ORDER BY l.seq LIMIT $3)
ORDER BY 1 LIMIT $3`
)

func notFound(id string) *herald.Error {
	return persistence.NotFound(id)
}

// Get returns notification id of userID, or a not_found error.
func (s *Store) Get(ctx context.Context, userID, id string) (herald.Notification, error) {
	u, ok := persistence.ParseID(id)
	if !ok || !storable(userID) {
		return herald.Notification{}, notFound(id)
	}
	rows, err := s.pool.Query(ctx, sqlGet, u, userID)
	if err != nil {
		return herald.Notification{}, herald.Unavailable(err)
	}
	defer rows.Close()
	var n herald.Notification
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return herald.Notification{}, herald.Unavailable(err)
		}
		return herald.Notification{}, notFound(id)
	}
	if err := scanNote(rows, &n); err != nil {
		return herald.Notification{}, herald.Unavailable(err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return herald.Notification{}, herald.Unavailable(err)
	}
	return n, nil
}

// Unread returns up to limit unread notifications of userID with seq < before (before
// <= 0: no bound), newest first, with the unread total and latest seq of the same
// snapshot.
func (s *Store) Unread(ctx context.Context, userID string, before int64, limit int) (persistence.UnreadPage, error) {
	var page persistence.UnreadPage
	if !storable(userID) {
		return page, nil
	}
	if limit <= 0 {
		if err := s.pool.QueryRow(ctx, sqlUserState, userID).Scan(&page.Seq, &page.Total); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return persistence.UnreadPage{}, herald.Unavailable(err)
		}
		return page, nil
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, sqlUnread, userID, before, limit)
	if err != nil {
		return persistence.UnreadPage{}, herald.Unavailable(err)
	}
	defer rows.Close()
	var sc noteScanner
	for rows.Next() {
		if rows.RawValues()[0] == nil { // no unread notification: the state alone
			var skip [noteColCount]any // nil destinations: the NULL columns are skipped
			if err := rows.Scan(append(skip[:], &page.Seq, &page.Total)...); err != nil {
				return persistence.UnreadPage{}, herald.Unavailable(err)
			}
			break
		}
		var n herald.Notification
		if err := sc.scan(rows, &n, &page.Seq, &page.Total); err != nil {
			return persistence.UnreadPage{}, herald.Unavailable(err)
		}
		if page.Items == nil {
			// Room for the page, which the total (of every row) bounds: an inbox of
			// three is not given room for a hundred.
			page.Items = make([]herald.Notification, 0, int(min(int64(limit), max(page.Total, 1))))
		}
		page.Items = append(page.Items, n)
	}
	if err := rows.Err(); err != nil {
		return persistence.UnreadPage{}, herald.Unavailable(err)
	}
	return page, nil
}

// Created returns up to limit notifications of userID created at log positions after
// since, oldest first, with their current read state.
func (s *Store) Created(ctx context.Context, userID string, since int64, limit int) ([]herald.Notification, error) {
	if limit <= 0 || !storable(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, sqlCreated, userID, since, limit)
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	notes, err := collect(rows)
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	return notes, nil
}

// UnreadCount returns the unread total of userID.
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	if !storable(userID) {
		return 0, nil
	}
	var seq, unread int64
	if err := s.pool.QueryRow(ctx, sqlUserState, userID).Scan(&seq, &unread); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil
		}
		return 0, herald.Unavailable(err)
	}
	return unread, nil
}

// Heads sets seqs[i] to the latest seq of users[i], 0 when the user has no log, in one
// query.
func (s *Store) Heads(ctx context.Context, users []string, seqs []int64) error {
	clear(seqs)
	var ids []string // users, with "" for the ids no store can hold
	for i, u := range users {
		if !storable(u) {
			if ids == nil {
				ids = slices.Clone(users)
			}
			ids[i] = ""
		}
	}
	if ids == nil {
		ids = users
	}
	rows, err := s.pool.Query(ctx, sqlHeads, ids)
	if err != nil {
		return herald.Unavailable(err)
	}
	defer rows.Close()
	var i, seq int64
	for rows.Next() {
		if err := rows.Scan(&i, &seq); err != nil {
			return herald.Unavailable(err)
		}
		seqs[i-1] = seq
	}
	if err := rows.Err(); err != nil {
		return herald.Unavailable(err)
	}
	return nil
}

// Events returns up to limit entries of userID's log after since, oldest first, or a
// reset when since is beyond the latest seq or its next entry is gone or older than the
// retention.
func (s *Store) Events(ctx context.Context, userID string, since int64, limit int) (persistence.EventsPage, error) {
	var page persistence.EventsPage
	if !storable(userID) {
		page.Reset = since > 0
		return page, nil
	}
	if since < 0 {
		since = 0
	}
	// The next entry decides a reset, so at least one is read even for limit 0.
	qlimit := max(limit, 1)
	horizon := time.Now().Add(-s.retention)
	err := s.snapshot(ctx, func(b *pgx.Batch) {
		b.Queue(sqlUserState, userID)
		b.Queue(sqlEvents, userID, since, qlimit)
	}, func(br pgx.BatchResults) error {
		var unread int64
		if err := br.QueryRow().Scan(&page.Seq, &unread); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows, userID)
			if err != nil {
				return err
			}
			page.Entries = append(page.Entries, e)
		}
		return rows.Err()
	})
	if err != nil {
		return persistence.EventsPage{}, herald.Unavailable(err)
	}
	switch {
	case since > page.Seq:
		page.Reset = true
	case since < page.Seq:
		// The log must continue right after since, with no gap, from an entry still
		// within retention.
		page.Reset = len(page.Entries) == 0 || page.Entries[0].At.Before(horizon)
		for i := range page.Entries {
			page.Reset = page.Reset || page.Entries[i].Seq != since+1+int64(i)
		}
	}
	if page.Reset || limit <= 0 {
		page.Entries = nil
	}
	return page, nil
}

// snapshot runs the statements queue adds in one read-only REPEATABLE READ transaction,
// so that they all see the same snapshot, in one round trip; read reads their results.
func (s *Store) snapshot(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	var b pgx.Batch
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
	queue(&b)
	b.Queue("COMMIT")
	br := s.pool.SendBatch(ctx, &b)
	err := func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		if err := read(br); err != nil {
			return err
		}
		_, err := br.Exec()
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// collect reads rows into notifications, the slice growing as they come: a
// notification is 168 bytes, and room made for a page that does not come would be
// garbage.
func collect(rows pgx.Rows) ([]herald.Notification, error) {
	defer rows.Close()
	var notes []herald.Notification
	for rows.Next() {
		var n herald.Notification
		if err := scanNote(rows, &n); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}

// noteScanner reads noteCols (and extra columns after them) into a notification.
type noteScanner struct {
	dest []any
}

func (sc *noteScanner) scan(rows pgx.Rows, n *herald.Notification, extra ...any) error {
	var (
		id       pgtype.UUID
		payload  []byte
		channels []string
		readAt   pgtype.Timestamptz
	)
	sc.dest = append(sc.dest[:0], &id, &n.ReceiverID, &n.SenderID, &n.Type, &n.Object, &payload, &channels, &n.CreatedAt, &readAt, &n.Seq)
	sc.dest = append(sc.dest, extra...)
	if err := rows.Scan(sc.dest...); err != nil {
		return err
	}
	n.ID = uuid.UUID(id.Bytes).String()
	n.Payload = payload
	n.Channels = toChannels(channels)
	n.CreatedAt = n.CreatedAt.UTC()
	if readAt.Valid {
		t := readAt.Time.UTC()
		n.ReadAt = &t
	}
	return nil
}

func scanNote(rows pgx.Rows, n *herald.Notification) error {
	var sc noteScanner
	return sc.scan(rows, n)
}

func toChannels(ss []string) []herald.Channel {
	if len(ss) == 0 {
		return nil
	}
	chs := make([]herald.Channel, len(ss))
	for i, s := range ss {
		chs[i] = herald.Channel(s)
	}
	return chs
}

// scanEntry reads a row of sqlEvents.
func scanEntry(rows pgx.Rows, userID string) (herald.Entry, error) {
	var (
		e        = herald.Entry{UserID: userID}
		event    string
		updated  pgtype.Int8
		id       pgtype.UUID
		sender   pgtype.Text
		typ      pgtype.Text
		object   pgtype.Text
		payload  []byte
		channels []string
		created  pgtype.Timestamptz
		noteSeq  pgtype.Int8
	)
	if err := rows.Scan(&e.Seq, &event, &e.At, &e.Unread, &updated, &id, &sender, &typ, &object, &payload, &channels, &created, &noteSeq); err != nil {
		return e, err
	}
	e.Event = herald.Event(event)
	e.At = e.At.UTC()
	switch e.Event {
	case herald.EventReadAll:
		e.ReadAll = &herald.ReadAll{ReadAt: e.At, Updated: updated.Int64}
	case herald.EventCreated, herald.EventRead:
		if !id.Valid {
			return e, errors.New("log entry of a missing notification")
		}
		n := &herald.Notification{
			ID:         uuid.UUID(id.Bytes).String(),
			ReceiverID: userID,
			SenderID:   sender.String,
			Type:       typ.String,
			Object:     object.String,
			Payload:    payload,
			Channels:   toChannels(channels),
			CreatedAt:  created.Time.UTC(),
			Seq:        noteSeq.Int64,
		}
		if e.Event == herald.EventRead {
			at := e.At
			n.ReadAt = &at
		}
		e.Notification = n
	default:
		return e, errors.New("log entry of unknown event " + event)
	}
	return e, nil
}
