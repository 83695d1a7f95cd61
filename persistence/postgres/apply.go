package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// The statements of a batch. Every list is passed as arrays, one per column, and
// unnested: one statement per kind of row whatever the batch size.
const (
	// Create the rows of the users given (sorted) that have none, in that order: the
	// users the store does not know yet (knownUsers). A row another transaction is
	// inserting is waited for: once the statement ends, every user has a committed row
	// or one of this transaction's.
	sqlEnsureUsers = `INSERT INTO user_state (user_id, seq, unread)
SELECT u.user_id, 0, 0 FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, ord) ORDER BY u.ord
ON CONFLICT (user_id) DO NOTHING`

	// Lock the users' rows in the order given and return their state, as the last
	// transaction holding each lock left it. A row lock writes no new row version, as
	// the upsert's no-op update did (the state update then wrote a second one).
	sqlLockUsers = `SELECT s.user_id, s.seq, s.unread
FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, ord)
JOIN user_state AS s ON s.user_id = u.user_id
ORDER BY u.ord
FOR UPDATE OF s`

	sqlLoadNotes = `SELECT ` + noteCols + ` FROM notifications AS n WHERE n.id = ANY($1::uuid[])`

	sqlLoadIdem = `SELECT ` + noteCols + `, n.idem_key, n.idem_hash
FROM unnest($1::text[], $2::text[]) AS k(sender_id, idem_key)
JOIN notifications AS n ON n.sender_id = k.sender_id AND n.idem_key = k.idem_key
WHERE n.idem_key IS NOT NULL`

	sqlInsertNotes = `INSERT INTO notifications (id, receiver_id, seq, unread_after, created_at, read_at,
  sender_id, type, object, payload, channels, idem_key, idem_hash)
SELECT id, receiver_id, seq, unread_after, created_at, read_at,
  sender_id, type, object, payload::json, string_to_array(channels, ','), nullif(idem_key, ''), idem_hash
FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::timestamptz[], $6::timestamptz[],
  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[])
  AS r(id, receiver_id, seq, unread_after, created_at, read_at,
  sender_id, type, object, payload, channels, idem_key, idem_hash)`

	sqlMarkRead = `UPDATE notifications AS n SET read_at = r.read_at
FROM unnest($1::uuid[], $2::timestamptz[]) AS r(id, read_at)
WHERE n.id = r.id`

	sqlReadAll = `UPDATE notifications AS n SET read_at = r.read_at
FROM unnest($1::text[], $2::timestamptz[], $3::int8[]) AS r(user_id, read_at, before_seq)
WHERE n.receiver_id = r.user_id AND n.read_at IS NULL AND n.seq < r.before_seq`

	sqlInsertLog = `INSERT INTO notification_log (user_id, seq, event, at, unread, notification_id, updated)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], $5::int8[], $6::uuid[], $7::int8[])`

	sqlUpdateUsers = `UPDATE user_state AS s SET seq = u.seq, unread = u.unread
FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(user_id, seq, unread)
WHERE s.user_id = u.user_id`

	sqlLoadPrefs = `SELECT user_id, prefs FROM preferences WHERE user_id = ANY($1::text[])`

	sqlUpsertContacts = `INSERT INTO contacts (user_id, email)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (user_id) DO UPDATE SET email = excluded.email`
	sqlDeleteContacts = `DELETE FROM contacts WHERE user_id = ANY($1::text[])`

	sqlUpsertPrefs = `INSERT INTO preferences (user_id, prefs)
SELECT u, p::jsonb FROM unnest($1::text[], $2::text[]) AS r(u, p)
ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs`
	sqlDeletePrefs = `DELETE FROM preferences WHERE user_id = ANY($1::text[])`

	// sqlPrune deletes up to $2 log entries recorded before $1 (through the BRIN index
	// on at), so that one op does not hold its batch up for long.
	sqlPrune = `DELETE FROM notification_log WHERE ctid = ANY (ARRAY(
  SELECT ctid FROM notification_log WHERE at < $1 LIMIT $2))`

	sqlInsertDeliveries = `INSERT INTO deliveries (id, notification_id, user_id, channel, state, attempts,
  due_at, unread_only, last_error, created_at, updated_at, by_service)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int4[],
  $7::timestamptz[], $8::bool[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::bool[])`
)

// Apply performs ops in order in one transaction stamped now; see the package doc.
func (s *Store) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	now = now.UTC().Truncate(time.Microsecond)
	kept, results, pos := screen(now, ops)
	if pos != nil && len(kept) == 0 {
		return results, nil
	}
	var (
		res   []persistence.Result
		err   error
		retry bool
	)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		res, retry, err = s.apply(ctx, now, kept)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, errUncertain) {
		return nil, herald.OutcomeUnknown(err)
	}
	if err != nil {
		return nil, herald.Unavailable(err)
	}
	if pos == nil {
		return res, nil
	}
	for i, r := range res {
		results[pos[i]] = r
	}
	return results, nil
}

// screen sets aside the ops carrying text PostgreSQL cannot store (a NUL byte or invalid
// UTF-8), which would otherwise fail the whole batch: each fails alone with a validation
// error. It returns ops itself and a nil pos when every op is storable; otherwise the
// storable ops, a result for each of ops (the rejected ones filled in) and, for each
// storable op, its index in ops.
func screen(now time.Time, ops []persistence.Op) (kept []persistence.Op, results []persistence.Result, pos []int) {
	bad := -1
	for i := range ops {
		if unstorable(now, &ops[i]) != nil {
			bad = i
			break
		}
	}
	if bad < 0 {
		return ops, nil, nil
	}
	results = make([]persistence.Result, len(ops))
	pos = make([]int, 0, len(ops)) // not nil, even when no op is kept
	for i := range ops {
		if i >= bad {
			if r := unstorable(now, &ops[i]); r != nil {
				results[i] = *r
				continue
			}
		}
		kept = append(kept, ops[i])
		pos = append(pos, i)
	}
	return kept, results, pos
}

// unstorable returns the result of an op that holds text PostgreSQL cannot store, and
// nil for any other op. A create fails validation, and so does a contact or preferences
// setting (naming the field). A user id with such text names a user who has no
// notification: mark-read finds nothing and read-all has nothing to read. A digest key
// with such text names no digest: the flush finds nothing.
func unstorable(now time.Time, op *persistence.Op) *persistence.Result {
	switch op.Kind {
	case persistence.OpCreate:
		for i := range op.Creates {
			if field := unstorableField(&op.Creates[i]); field != "" {
				if len(op.Creates) > 1 {
					field = fmt.Sprintf("items[%d].%s", i, field)
				}
				return &persistence.Result{Err: badText(field)}
			}
		}
	case persistence.OpMarkRead:
		if !storable(op.UserID) {
			return &persistence.Result{Err: notFound(op.ID)}
		}
	case persistence.OpReadAll:
		if !storable(op.UserID) {
			return &persistence.Result{ReadAll: &herald.ReadAll{ReadAt: now}}
		}
	case persistence.OpFlushDigest:
		if k := op.Digest; !storable(k.UserID) || !storable(k.Type) || !storable(k.Rule) {
			return &persistence.Result{} // names no digest: as if flushed already
		}
	case persistence.OpSetContact:
		switch {
		case !storable(op.UserID):
			return &persistence.Result{Err: badText("userId")}
		case !storable(op.Contact.Email):
			return &persistence.Result{Err: badText("email")}
		}
	case persistence.OpSetPreferences:
		if !storable(op.UserID) {
			return &persistence.Result{Err: badText("userId")}
		}
		// jsonb refuses \u0000, and json.Marshal would quietly replace invalid UTF-8.
		for ch := range op.Preferences.Channels {
			if !storable(string(ch)) {
				return &persistence.Result{Err: badText("channels")}
			}
		}
		for typ, chs := range op.Preferences.Types {
			if !storable(typ) {
				return &persistence.Result{Err: badText("types")}
			}
			for ch := range chs {
				if !storable(string(ch)) {
					return &persistence.Result{Err: badText("types")}
				}
			}
		}
	}
	return nil
}

// unstorableField names the first field of n that PostgreSQL cannot store, or is "".
func unstorableField(n *herald.NewNotification) string {
	switch {
	case !storable(n.ReceiverID):
		return "receiverId"
	case !storable(n.SenderID):
		return "senderId"
	case !storable(n.Type):
		return "type"
	case !storable(n.Object):
		return "object"
	case !storable(n.IdempotencyKey):
		return "idempotencyKey"
	case !utf8.Valid(n.Payload) || slices.Contains(n.Payload, 0):
		return "payload"
	case n.Digest != nil && !storable(n.Digest.Rule):
		return "digest.rule" // set by routing rules, not sent
	}
	for _, ch := range n.Channels {
		// string_to_array splits the channels of an INSERT on commas.
		if !storable(string(ch)) || strings.IndexByte(string(ch), ',') >= 0 {
			return "channels"
		}
	}
	return ""
}

func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

func badText(field string) *herald.Error {
	return herald.FieldError(field, "%s must be valid UTF-8 without NUL characters", field)
}

// maxAttempts bounds how many transactions one Apply tries; see apply.
const maxAttempts = 5

const uniqueViolation = "23505" // SQLSTATE

// apply runs ops in one transaction on one connection. retry reports that the
// transaction failed without committing anything, in a way that trying again can cure:
//   - the connection broke during the first pipeline, before any write (a pool keeps
//     broken connections until they are used, e.g. after PostgreSQL restarted);
//   - another transaction committed an idempotency key this one also stored: the next
//     attempt finds that original and replays it or reports a conflict.
func (s *Store) apply(ctx context.Context, now time.Time, ops []persistence.Op) (_ []persistence.Result, retry bool, err error) {
	if len(ops) == 0 {
		return []persistence.Result{}, false, nil
	}
	keys := persistence.KeysOf(ops)
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer c.Release()
	conn := c.Conn()
	unknown := s.known.unknown(keys.Users)
	prior, err := load(ctx, conn, keys, unknown, createsAny(ops))
	if err != nil {
		rollback(conn)
		if errors.Is(err, errUserMissing) {
			s.known.forget()
			return nil, true, err
		}
		return nil, conn.IsClosed(), err
	}
	plan, results := persistence.NewPlan(now, ops, prior)
	committed, err := write(ctx, conn, now, &plan, ops, results, s.copyMin)
	if err != nil {
		rollback(conn)
		var pgErr *pgconn.PgError
		retry := errors.As(err, &pgErr) && pgErr.Code == uniqueViolation && pgErr.ConstraintName == "notifications_idem"
		return nil, retry, err
	}
	if committed { // a batch that changed nothing was rolled back, and its inserts too
		s.known.add(unknown)
	}
	return results, false, nil
}

// errUserMissing is a lock that found no row for a user the store knew: the database
// lost rows behind the node's back (a restore). The store forgets what it knew, and the
// batch is tried again, inserting every row it needs.
var errUserMissing = errors.New("a user_state row the store had seen is missing")

// rollback ends a failed transaction so that the connection can be reused. When that
// fails too, the pool discards the connection on release (it is not idle).
func rollback(conn *pgx.Conn) {
	if conn.IsClosed() || conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Exec(ctx, "ROLLBACK")
}

// createsAny reports whether ops may create notifications: creates, and digest flushes
// (the digest's notification is subject to its receiver's preferences too).
func createsAny(ops []persistence.Op) bool {
	return slices.ContainsFunc(ops, func(op persistence.Op) bool {
		return op.Kind == persistence.OpCreate || op.Kind == persistence.OpFlushDigest
	})
}

// load begins the transaction, takes the batch's locks and reads what the planner needs,
// in one round trip. Everything is read after the locks are taken, so it is as the last
// batch holding them left it. Preferences only matter to creates and digest flushes: a
// batch without any does not read them.
func load(ctx context.Context, conn *pgx.Conn, keys persistence.Keys, unknown []string, creates bool) (persistence.Prior, error) {
	prior := persistence.Prior{Users: make(map[string]persistence.UserState, len(keys.Users))}
	var b pgx.Batch
	b.Queue("BEGIN")
	if len(unknown) > 0 {
		b.Queue(sqlEnsureUsers, textArray(unknown))
	}
	b.Queue(sqlLockUsers, textArray(keys.Users))
	ids := canonicalIDs(keys.NotificationIDs)
	if len(ids) > 0 {
		b.Queue(sqlLoadNotes, uuidArray(ids))
	}
	if len(keys.Idempotency) > 0 {
		senders := make([]string, len(keys.Idempotency))
		idemKeys := make([]string, len(keys.Idempotency))
		for i, k := range keys.Idempotency {
			senders[i], idemKeys[i] = k.SenderID, k.Key
		}
		b.Queue(sqlLoadIdem, textArray(senders), textArray(idemKeys))
	}
	if creates {
		b.Queue(sqlLoadPrefs, textArray(keys.Users))
	}
	if len(keys.Digests) > 0 {
		queueLoadDigests(&b, keys.Digests)
	}
	br := conn.SendBatch(ctx, &b)
	err := func() error {
		if _, err := br.Exec(); err != nil { // BEGIN
			return err
		}
		if len(unknown) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			var u persistence.UserState
			if err := rows.Scan(&u.UserID, &u.Seq, &u.Unread); err != nil {
				rows.Close()
				return err
			}
			prior.Users[u.UserID] = u
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(prior.Users) != len(keys.Users) {
			return fmt.Errorf("%w: locked %d of the batch's %d users", errUserMissing, len(prior.Users), len(keys.Users))
		}
		if len(ids) > 0 {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			prior.Notifications = make(map[string]herald.Notification, len(ids))
			var sc noteScanner
			for rows.Next() {
				var n herald.Notification
				if err := sc.scan(rows, &n); err != nil {
					rows.Close()
					return err
				}
				prior.Notifications[n.ID] = n
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if len(keys.Idempotency) > 0 {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			prior.Idempotent = make(map[persistence.IdemKey]persistence.Idempotent)
			var sc noteScanner
			for rows.Next() {
				var (
					n   herald.Notification
					key string
					fp  []byte
				)
				if err := sc.scan(rows, &n, &key, &fp); err != nil {
					rows.Close()
					return err
				}
				prior.Idempotent[persistence.IdemKey{SenderID: n.SenderID, Key: key}] = persistence.Idempotent{Notification: n, Fingerprint: fp}
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if creates {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var (
					user string
					raw  []byte
					p    persistence.Preferences
				)
				if err := rows.Scan(&user, &raw); err != nil {
					rows.Close()
					return err
				}
				if err := json.Unmarshal(raw, &p); err != nil {
					rows.Close()
					return fmt.Errorf("preferences of %q: %w", user, err)
				}
				if prior.Preferences == nil {
					prior.Preferences = make(map[string]persistence.Preferences)
				}
				prior.Preferences[user] = p
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if len(keys.Digests) > 0 {
			if err := readDigests(br, &prior); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return prior, err
}

// canonicalIDs keeps the ids that are UUIDs in canonical form: Herald only issues those,
// so any other id names no notification.
func canonicalIDs(ids []string) [][16]byte {
	var out [][16]byte
	for _, id := range ids {
		if u, ok := persistence.ParseID(id); ok {
			out = append(out, u)
		}
	}
	return out
}

// write writes the plan, applies the ops the planner leaves to the store (outcomes,
// retries, prunes: in op order, filling in their results) and commits. Many new
// notifications go first, by COPY; the rest follows in one pipeline with the commit. A
// batch whose plan appends no entry and writes no digest, contact or preferences, and
// that has no op of the store's own, changes nothing: its transaction is rolled back
// instead (no commit to flush). committed says which of the two it was.
func write(ctx context.Context, conn *pgx.Conn, now time.Time, plan *persistence.Plan, ops []persistence.Op, results []persistence.Result, copyMin int) (committed bool, err error) {
	changed := len(plan.Created) > 0 || len(plan.Read) > 0 || len(plan.ReadAll) > 0 || len(plan.Log) > 0 ||
		len(plan.Deliveries) > 0 || len(plan.Digests) > 0 || len(plan.DigestDeletes) > 0 ||
		len(plan.Contacts) > 0 || len(plan.Preferences) > 0
	sortByIdempotencyKey(plan.Created)
	var b pgx.Batch
	switch n := len(plan.Created); {
	case n >= copyMin:
		if err := copyCreated(ctx, conn, plan.Created); err != nil {
			return false, err
		}
	case n > 0:
		if err := queueCreated(&b, plan.Created); err != nil {
			return false, err
		}
	}
	if len(plan.Deliveries) > 0 {
		if err := queueDeliveries(&b, plan.Deliveries); err != nil {
			return false, err
		}
	}
	if err := queueDigests(&b, plan.Digests, plan.DigestDeletes); err != nil {
		return false, err
	}
	if len(plan.Read) > 0 {
		ids := make([][16]byte, len(plan.Read))
		at := make([]time.Time, len(plan.Read))
		for i, r := range plan.Read {
			u, ok := persistence.ParseID(r.ID)
			if !ok {
				return false, fmt.Errorf("planned read of non-canonical id %q", r.ID)
			}
			ids[i], at[i] = u, r.ReadAt
		}
		b.Queue(sqlMarkRead, uuidArray(ids), timeArray(at))
	}
	if len(plan.ReadAll) > 0 {
		users := make([]string, len(plan.ReadAll))
		at := make([]time.Time, len(plan.ReadAll))
		before := make([]int64, len(plan.ReadAll))
		for i, r := range plan.ReadAll {
			users[i], at[i], before[i] = r.UserID, r.ReadAt, r.BeforeSeq
		}
		b.Queue(sqlReadAll, textArray(users), timeArray(at), int8Array(before))
	}
	if len(plan.Log) > 0 {
		if err := queueLog(&b, plan.Log); err != nil {
			return false, err
		}
	}
	if changed && len(plan.Users) > 0 {
		users := make([]string, len(plan.Users))
		seqs := make([]int64, len(plan.Users))
		unread := make([]int64, len(plan.Users))
		for i, u := range plan.Users {
			users[i], seqs[i], unread[i] = u.UserID, u.Seq, u.Unread
		}
		b.Queue(sqlUpdateUsers, textArray(users), int8Array(seqs), int8Array(unread))
	}
	if err := queueSettings(&b, plan); err != nil {
		return false, err
	}
	writes := b.Len()
	own := queueOwn(&b, now, ops)
	changed = changed || len(own) > 0
	if changed {
		b.Queue("COMMIT")
	} else {
		b.Queue("ROLLBACK")
	}
	br := conn.SendBatch(ctx, &b)
	err = func() error {
		for range writes {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if err := readOwn(br, own, results); err != nil {
			return err
		}
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if changed && tag.String() != "COMMIT" {
			return errors.New("transaction was not committed: " + tag.String())
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var pgErr *pgconn.PgError
	if err != nil && changed && !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
		// The COMMIT went out with the pipeline and no answer came back (a broken
		// connection, a deadline): the server may have committed it all the same.
		// SafeToRetry: the connection failed before anything of the pipeline was sent.
		return false, fmt.Errorf("%w: %w", errUncertain, err)
	}
	return changed && err == nil, err
}

// errUncertain marks a failure after the COMMIT was sent: the outcome is unknown.
var errUncertain = errors.New("storage did not confirm the commit")

// sortByIdempotencyKey puts the rows with an idempotency key last, in key order (the
// order of the rows does not matter otherwise). Two transactions storing some of the
// same keys then wait for each other's keys in one order, and cannot deadlock: the
// second fails on the first key the first one committed, and is tried again.
func sortByIdempotencyKey(rows []persistence.StoredNotification) {
	keyed := false
	for i := range rows {
		keyed = keyed || rows[i].IdempotencyKey != ""
	}
	if !keyed {
		return
	}
	slices.SortStableFunc(rows, func(a, b persistence.StoredNotification) int {
		switch {
		case a.IdempotencyKey == "" || b.IdempotencyKey == "":
			return strings.Compare(a.IdempotencyKey, b.IdempotencyKey) // "" first
		case a.SenderID != b.SenderID:
			return strings.Compare(a.SenderID, b.SenderID)
		}
		return strings.Compare(a.IdempotencyKey, b.IdempotencyKey)
	})
}

func queueCreated(b *pgx.Batch, rows []persistence.StoredNotification) error {
	n := len(rows)
	var (
		ids         = make(uuidArray, n)
		receivers   = make(textArray, n)
		seqs        = make(int8Array, n)
		unreadAfter = make(int8Array, n)
		createdAt   = make(timeArray, n)
		readAt      = make(timeArray, n) // zero: NULL
		senders     = make(textArray, n)
		types       = make(textArray, n)
		objects     = make(textArray, n)
		payloads    = make(bytesText, n)
		channels    = make(textArray, n)
		idemKeys    = make(textArray, n)
		idemHashes  = make(byteaArray, n)
	)
	for i := range rows {
		r := &rows[i]
		u, ok := persistence.ParseID(r.ID)
		if !ok {
			return fmt.Errorf("planned notification with non-canonical id %q", r.ID)
		}
		ids[i] = u
		receivers[i] = r.ReceiverID
		seqs[i] = r.Seq
		unreadAfter[i] = r.UnreadAfter
		createdAt[i] = r.CreatedAt
		if r.ReadAt != nil {
			readAt[i] = *r.ReadAt
		}
		senders[i] = r.SenderID
		types[i] = r.Type
		objects[i] = r.Object
		payloads[i] = r.Payload // nil (no payload) is stored as NULL
		channels[i] = joinChannels(r.Channels)
		idemKeys[i] = r.IdempotencyKey
		if r.IdempotencyKey != "" {
			idemHashes[i] = r.Fingerprint
		}
	}
	b.Queue(sqlInsertNotes, ids, receivers, seqs, unreadAfter, createdAt, readAt,
		senders, types, objects, payloads, channels, idemKeys, idemHashes)
	return nil
}

// joinChannels encodes channels as the text string_to_array(…, ',') splits back.
func joinChannels(chs []herald.Channel) string {
	switch len(chs) {
	case 0:
		return ""
	case 1:
		return string(chs[0])
	}
	var sb strings.Builder
	for i, ch := range chs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(string(ch))
	}
	return sb.String()
}

// queueDeliveries inserts the plan's outbox rows. They go in the write pipeline even when
// the notifications go by COPY: a COPY of their own would cost another round trip.
func queueDeliveries(b *pgx.Batch, rows []persistence.Delivery) error {
	n := len(rows)
	var (
		ids        = make([][16]byte, n)
		notes      = make([][16]byte, n)
		users      = make([]string, n)
		channels   = make([]string, n)
		states     = make([]string, n)
		attempts   = make([]int32, n)
		dueAt      = make([]time.Time, n)
		unreadOnly = make([]bool, n)
		byService  = make([]bool, n)
		lastErrors = make([]string, n)
		createdAt  = make([]time.Time, n)
		updatedAt  = make([]time.Time, n)
	)
	for i := range rows {
		d := &rows[i]
		id, ok := persistence.ParseID(d.ID)
		if !ok {
			return fmt.Errorf("planned delivery with non-canonical id %q", d.ID)
		}
		note, ok := persistence.ParseID(d.NotificationID)
		if !ok {
			return fmt.Errorf("planned delivery of non-canonical notification id %q", d.NotificationID)
		}
		ids[i], notes[i] = id, note
		users[i], channels[i], states[i] = d.UserID, string(d.Channel), string(d.State)
		attempts[i], dueAt[i], unreadOnly[i], byService[i] = int32(d.Attempts), d.DueAt, d.UnreadOnly, d.ByService
		lastErrors[i] = cleanText(d.LastError)
		createdAt[i], updatedAt[i] = d.CreatedAt, d.UpdatedAt
	}
	b.Queue(sqlInsertDeliveries, ids, notes, users, channels, states, attempts,
		dueAt, unreadOnly, lastErrors, createdAt, updatedAt, byService)
	return nil
}

// queueSettings writes the plan's contacts and preferences: the set ones upserted,
// the zero ones deleted, each kind in at most two statements.
func queueSettings(b *pgx.Batch, plan *persistence.Plan) error {
	var users, emails, gone []string
	for _, c := range plan.Contacts {
		if c.Contact == (persistence.Contact{}) {
			gone = append(gone, c.UserID)
			continue
		}
		users, emails = append(users, c.UserID), append(emails, c.Contact.Email)
	}
	if len(users) > 0 {
		b.Queue(sqlUpsertContacts, users, emails)
	}
	if len(gone) > 0 {
		b.Queue(sqlDeleteContacts, gone)
	}
	users, gone = nil, nil
	var prefs []string
	for _, p := range plan.Preferences {
		if len(p.Preferences.Channels) == 0 && len(p.Preferences.Types) == 0 {
			gone = append(gone, p.UserID)
			continue
		}
		raw, err := json.Marshal(p.Preferences)
		if err != nil {
			return fmt.Errorf("encoding preferences: %w", err)
		}
		users, prefs = append(users, p.UserID), append(prefs, string(raw))
	}
	if len(users) > 0 {
		b.Queue(sqlUpsertPrefs, users, prefs)
	}
	if len(gone) > 0 {
		b.Queue(sqlDeletePrefs, gone)
	}
	return nil
}

// ownOp is an op the store applies itself, queued in the write pipeline: its index in
// the batch and what its statement's answer means.
type ownOp struct {
	i    int
	kind persistence.OpKind
	id   string // OpRetryDelivery
}

// queueOwn queues the statements of the ops the planner leaves to the store, in op
// order, and returns what readOwn needs to read their answers. An op that needs no
// statement (a retry of an id that is not a UUID, outcomes that name no delivery) is
// not queued; readOwn fills its result in.
func queueOwn(b *pgx.Batch, now time.Time, ops []persistence.Op) []ownOp {
	var own []ownOp
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case persistence.OpFinishDeliveries:
			if args := finishArgs(now, op.Outcomes); args != nil {
				b.Queue(sqlFinish, args...)
				own = append(own, ownOp{i: i, kind: op.Kind})
			}
		case persistence.OpRetryDelivery:
			own = append(own, ownOp{i: i, kind: op.Kind, id: op.ID})
			if u, ok := persistence.ParseID(op.ID); ok {
				b.Queue(sqlRetry, u, now)
			} else {
				own[len(own)-1].kind = 0 // names no delivery: no statement
			}
		case persistence.OpPrune:
			b.Queue(sqlPrune, op.Cutoff, pruneChunk)
			own = append(own, ownOp{i: i, kind: op.Kind})
		}
	}
	return own
}

// pruneChunk is how many log entries one OpPrune deletes at most.
const pruneChunk = 10_000

// readOwn reads the answers of the statements queueOwn queued, into results.
func readOwn(br pgx.BatchResults, own []ownOp, results []persistence.Result) error {
	for _, o := range own {
		r := &results[o.i]
		switch o.kind {
		case 0:
			r.Err = deliveryNotFound(o.id)
		case persistence.OpFinishDeliveries:
			if _, err := br.Exec(); err != nil {
				return err
			}
		case persistence.OpPrune:
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			r.Pruned = tag.RowsAffected()
			r.More = r.Pruned == pruneChunk
		case persistence.OpRetryDelivery:
			rows, err := br.Query()
			if err != nil {
				return err
			}
			var (
				d     persistence.Delivery
				sc    deliveryScanner
				found bool
			)
			if rows.Next() {
				found = true
				err = sc.scan(rows, &d)
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			if err != nil {
				return err
			}
			if !found {
				r.Err = deliveryNotFound(o.id)
				continue
			}
			r.Delivery = &d
		}
	}
	return nil
}

func queueLog(b *pgx.Batch, log []herald.Entry) error {
	n := len(log)
	var (
		users   = make([]string, n)
		seqs    = make([]int64, n)
		events  = make([]string, n)
		at      = make([]time.Time, n)
		unread  = make([]int64, n)
		notes   = make(pgtype.FlatArray[pgtype.UUID], n)
		updated = make(pgtype.FlatArray[pgtype.Int8], n)
	)
	for i := range log {
		e := &log[i]
		users[i], seqs[i], events[i], at[i], unread[i] = e.UserID, e.Seq, string(e.Event), e.At, e.Unread
		switch e.Event {
		case herald.EventRead:
			u, ok := persistence.ParseID(e.Notification.ID)
			if !ok {
				return fmt.Errorf("planned read entry of non-canonical id %q", e.Notification.ID)
			}
			notes[i] = pgtype.UUID{Bytes: u, Valid: true}
		case herald.EventReadAll:
			updated[i] = pgtype.Int8{Int64: e.ReadAll.Updated, Valid: true}
		default:
			return fmt.Errorf("planned log entry of event %q", e.Event)
		}
	}
	b.Queue(sqlInsertLog, textArray(users), int8Array(seqs), textArray(events), timeArray(at), int8Array(unread), notes, updated)
	return nil
}
