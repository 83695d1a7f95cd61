// Package postgres is the PostgreSQL persistence.Store, on pgx (pgxpool).
//
// # Schema
//
// Migrations are embedded (migrations/*.sql) and applied by Migrate, which records them
// in herald_schema_migrations; Open does not migrate. The notifications and their logs:
//
//   - notifications: one row per notification, which is also its receiver's
//     new-notification log entry: seq is the entry's position in the receiver's log,
//     created_at its time and unread_after the unread total right after it. The payload is
//     a json column (not jsonb): it reads back byte for byte as it was sent, which is what
//     the live entry carried, and json is cheaper to insert. Indexes: the uuid primary
//     key; a unique (receiver_id, seq) for log order; a partial (receiver_id, seq) WHERE
//     read_at IS NULL for the unread list and read-all; a unique partial (sender_id,
//     idem_key) for idempotency keys, with idem_hash the body's fingerprint.
//   - notification_log: the notification-read and all-notifications-read entries, keyed by
//     (user_id, seq). A read entry names its notification, whose other fields never
//     change; its read time is the entry's at. OpPrune deletes these rows by time;
//     notifications are kept.
//   - user_state: each user's latest seq and unread total.
//
// The outbox (persistence.OutboxReader, Claimer and the delivery ops):
//
//   - deliveries: one row per delivery of a notification through email or webhook, keyed
//     by a UUIDv7 like notification ids (so id order is creation order), with its
//     notification_id, user_id, channel, state (pending, sent, dead, cancelled), attempts,
//     due_at, unread_only (an escalation), by_service (a service created the notification:
//     only then is the payload's "email" honoured; false on rows from before 0004),
//     last_error and times. No foreign key: rows are
//     only written by Apply with their notification, and notifications are never deleted.
//     Indexes: a partial (due_at, id) WHERE state = 'pending' for claims, and (state,
//     id) for listings (dead letters). Finished rows are kept.
//   - contacts: each user's e-mail address.
//   - preferences: each user's opt-outs, persistence.Preferences as jsonb; no row means
//     everything on.
//
// Digests (persistence.DigestReader, OpFlushDigest):
//
//   - digests: one row per open digest, keyed by (user_id, type, rule), with opened_at,
//     due_at, count, the first item's sender_id and object, channels, and items: the kept
//     items as [{"k": idempotency key, "p": payload}, …] in a json column (not jsonb),
//     written by hand rather than by json.Marshal so that each payload reads back byte
//     for byte as it was sent, as notification payloads do (the flushed notification's
//     payload is built from them). Index: due_at, for DueDigests.
//
// # Writing a batch
//
// Apply runs in one transaction and two round trips (three with a COPY). The first
// pipeline begins the transaction, creates the user_state rows of the users the batch
// touches that the store has not seen committed yet (knownUsers: rows are never
// deleted, so after a user's first batch this is nothing), locks all of them (a row
// lock, no new row version: the state update writes the one new version a batch makes)
// and loads the notifications named by mark-read
// operations, the originals of the batch's idempotency keys, the open digests its
// digested creates and flushes name and, when the batch creates or flushes a digest, the
// preferences of its users. The shared planner (persistence.NewPlan) then decides
// every row, seq, outbox delivery and result in memory. The new notifications of a large
// batch (100 or more) are written by a binary COPY, encoded here without a per-row
// allocation; then one pipeline writes the rest of the plan, one statement per kind of
// row, each taking whole columns as arrays (encoded by the package's column types,
// arrays.go, with no allocation per element; INSERT … SELECT FROM unnest(…), which also
// carries the notifications of small batches, where COPY's extra round trip costs more
// than it saves, and the outbox rows of every batch; the digests the plan leaves open
// are upserted whole, the flushed ones deleted), and commits: a delivery is stored
// exactly when its notification is, and a digest is deleted exactly when its
// notification is stored. The same pipeline upserts (or, for the zero value, deletes)
// the contacts and preferences the plan sets, one statement per kind, and then runs the
// ops the planner leaves to the store, in op order: the outcomes of an
// OpFinishDeliveries, an OpRetryDelivery and an OpPrune (deleting at most pruneChunk
// rows, so that the batch it shares is not held up; the op reports More). Any failure
// rolls the transaction back and Apply
// returns a herald unavailable error: a batch is written entirely or not at all. A plan
// that appends no entry and writes no digest (only no-ops and failed operations) is
// rolled back rather than committed, sparing a WAL flush; a batch with an op of the
// store's own is committed.
//
// # Concurrency
//
// Several nodes may share one database, and storage stays exact when they do: every
// notification is stored once, each user's seq has no gap. Live delivery is not this
// package's: until nodes are clustered, a node pushes frames only to the sockets it
// holds, and a device on another node sees a change when it next reads or reconnects
// with since. Every Apply locks the user_state rows of its users, sorted, before it
// reads anything it plans from: first it inserts the ones it does not know in that
// order (an insert that meets another transaction's uncommitted row of the same user waits for
// it), then it locks them all in that order (SELECT … FOR UPDATE, which returns each
// row as the last holder of its lock left it). So two batches that share a user run one
// after the other, seq stays 1, 2, 3, … with no gap or reuse, and a notification's read
// state (changed only under its receiver's lock) is read current. Batches that share no
// user run in parallel. Since every transaction inserts, then locks, in the same order,
// they cannot deadlock: a transaction that inserted a row has passed every user before
// it, so no transaction waiting on that row holds a lock it needs.
// A digest row is only read and written under its user's lock, so adds to one digest
// and its flush run one after the other, each seeing the last one's row.
//
// Idempotency keys are not locked. When two transactions store the same key at once,
// the unique index makes the second wait for the first and then fail; Apply rolls it back
// and tries again (up to maxAttempts), and the new attempt finds the original, which it
// replays or reports as a conflict. Rows with keys are written in key order, so two such
// transactions cannot deadlock on each other's keys. A connection found broken during
// the first pipeline, before any write, is also tried again on a fresh one.
//
// A commit whose acknowledgement is lost (the connection breaks, or the deadline passes,
// after COMMIT was sent) is reported as outcome_unknown (herald.OutcomeUnknown): it may
// have committed, and as with any database only a later read tells. Unavailable means
// the COMMIT never went out: nothing was written.
//
// Each read is one round trip on one snapshot (a read-only REPEATABLE READ transaction
// when it takes two statements): a page of unread notifications and the unread total and
// latest seq returned with it always agree.
//
// Errors from the database never reach callers as such: they are wrapped by
// herald.Unavailable (or herald.OutcomeUnknown), whose message is generic and whose cause
// is kept for the log.
//
// # The outbox
//
// A claim is a lease, not a lock held while sending, and the one write that does not go
// through Apply (see the persistence package doc): ClaimDeliveries is one statement
// (autocommitted), so that its row locks last only as long as it does. It picks the
// earliest due pending rows (ORDER BY due_at, id LIMIT n FOR UPDATE SKIP LOCKED, through
// the partial index), and an UPDATE of those rows makes each due again at now+lease, or
// cancels it when it is an escalation whose notification is read by then; the claimed
// rows come back joined with their notification as it is now, in the order of the due
// times they were picked at (each one's DueAt is its lease's end, when it is due again).
// Concurrent claimers, on any node, skip the rows another is claiming and, once that
// claim has committed, find them due later (the lock re-checks the row's current
// version), so no two get a row within its lease. A sender that dies leaves its rows
// pending; they come back when the lease runs out: delivery is at least once. When a
// claim cancels rows it claims again for their places, so cancellations do not make a
// backlog look drained. An OpFinishDeliveries is one statement for all its outcomes,
// taken as arrays; it locks the rows still pending in id order before updating them, so
// two finishers of the same rows (a lease that ran out during an attempt, or two nodes)
// cannot deadlock, and it ignores rows that are no longer pending. Its locks come after
// the batch's user locks, like every batch's, and a claim never waits on them (it skips
// locked rows). A sent outcome keeps the last failure's error, as OpRetryDelivery does;
// error texts are stored with invalid UTF-8 replaced and NUL characters dropped, since a
// receiver's answer can hold anything.
//
// # Digests
//
// DueDigests is one statement, taking no lock: the earliest due rows, through the due_at
// index. Flushing is an Apply of OpFlushDigest: it locks the user, so concurrent flushes
// of one digest (every node polls) run in turn, and all but the first find no row and
// store nothing.
//
// # Closing
//
// Close closes the pool: it waits for the connections in use to be returned, so close the
// store after the persistence actor and the dispatcher have stopped.
package postgres
