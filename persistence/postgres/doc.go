// Package postgres is the PostgreSQL persistence.Store, on pgx (pgxpool).
//
// # Schema
//
// Migrations are embedded (migrations/*.sql) and applied by Migrate, which records them
// in herald_schema_migrations; Open does not migrate. Three tables:
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
//     change; its read time is the entry's at. Prune deletes these rows by time;
//     notifications are kept.
//   - user_state: each user's latest seq and unread total.
//
// # Writing a batch
//
// Apply runs in one transaction and two round trips (three with a COPY). The first
// pipeline begins the transaction, locks the user_state rows of every user the batch
// touches (creating missing ones) and loads the notifications named by mark-read
// operations and the originals of the batch's idempotency keys. The shared planner
// (persistence.NewPlan) then decides every row, seq and result in memory. The new
// notifications of a large batch (100 or more) are written by a binary COPY, encoded
// here without a per-row allocation; then one pipeline writes the rest of the plan, one
// statement per kind of row, each taking whole columns as arrays (INSERT … SELECT FROM
// unnest(…), which also carries the notifications of small batches, where COPY's extra
// round trip costs more than it saves), and commits. Any failure rolls the transaction
// back and Apply returns a herald unavailable error: a batch is written entirely or not
// at all. A plan that appends no entry (only no-ops and failed operations) is rolled
// back rather than committed, sparing a WAL flush.
//
// # Concurrency
//
// Several nodes may share one database. Every Apply locks the user_state rows of its
// users, sorted, in one statement that processes them in order, before it reads
// anything it plans from; so two batches that share a user run one after the other, seq
// stays 1, 2, 3, … with no gap or reuse, and a notification's read state (changed only
// under its receiver's lock) is read current. Batches that share no user run in parallel.
// Since every transaction takes its locks in the same order, they cannot deadlock.
//
// Idempotency keys are not locked. When two transactions store the same key at once,
// the unique index makes the second wait for the first and then fail; Apply rolls it back
// and tries again (up to maxAttempts), and the new attempt finds the original, which it
// replays or reports as a conflict. Rows with keys are written in key order, so two such
// transactions cannot deadlock on each other's keys. A connection found broken during
// the first pipeline, before any write, is also tried again on a fresh one.
//
// A commit whose acknowledgement is lost (the connection breaks after COMMIT was sent) is
// reported as unavailable although it may have committed; as with any database, only a
// later read tells.
//
// Each read is one round trip on one snapshot (a read-only REPEATABLE READ transaction
// when it takes two statements): a page of unread notifications and the unread total and
// latest seq returned with it always agree.
//
// Errors from the database never reach callers as such: they are wrapped by
// herald.Unavailable, whose message is generic and whose cause is kept for the log.
package postgres
