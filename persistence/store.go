// Package persistence defines what Herald needs from storage and the one piece of logic
// every store shares: the planner, which turns a batch of write operations into the rows
// to write, the per-user seq and unread totals, and each operation's result.
//
// # One writer
//
// Every change to what the store holds is an Op: notifications and their log (create,
// mark-read, read-all, digest flushes), contacts and preferences, the outcomes of
// delivery attempts and dead-letter retries, and pruning of the log. Ops reach the store
// only through Applier.Apply, and only the persistence actor (actors/persist) holds an
// Applier: it groups the ops of every caller into batches and applies each batch in one
// transaction, one fsync. Everything else is handed narrower interfaces: a Reader for
// reads, and a Writer (the persistence actor's client) to send an Op and wait for its
// commit. The compiler keeps it so: neither interface has a method that writes to the
// store.
//
// One write stays outside: the dispatcher's claim of due deliveries (Claimer). A claim
// is a lease: it only makes a delivery due again a lease later (and cancels an
// escalation whose notification was read, as any later claim would). On PostgreSQL its
// point is FOR UPDATE SKIP LOCKED: one autocommitted statement with which the
// dispatchers of every node sharing the database take disjoint rows without waiting on
// one another; inside a batch it would hold those row locks until a transaction that
// also waits on user locks commits. The embedded store has no such concurrency (one
// process holds its file, and bbolt runs one write transaction at a time): its claim is
// a bbolt write transaction of its own, serialised with the batches, opened only when
// something is due. A lost or repeated claim costs a later or repeated attempt, never a
// wrong state, so it needs no place in the batches' order. Only the dispatcher is handed
// a Claimer.
//
// # Transactions
//
// A store (persistence/postgres, persistence/embedded) owns its transactions: Apply loads
// what the planner needs, calls NewPlan, writes the plan and commits, all in one
// transaction. Either the whole batch is durable when Apply returns nil, or nothing of it
// is. Per-operation failures (not found, idempotency conflict, validation) are results,
// not errors: they fail that operation alone and the rest of the batch goes on. Ops the
// planner does not decide (delivery outcomes, retries, pruning: see OpKind) are applied
// by the store in the same transaction, in op order.
//
// Every store must also be safe under concurrent Apply calls (two nodes sharing one
// PostgreSQL, or several commits in flight): seq stays 1..N with no gap.
package persistence

import (
	"context"
	"errors"
	"time"

	"github.com/heraldhq/herald"
)

// ErrCommitsFailing is wrapped by the error of a Ping that found the store's writes
// failing while it can be read: not ready, though reachable.
var ErrCommitsFailing = errors.New("writes are failing")

// DefaultRetention is how long a user's event log is kept for catching up.
const DefaultRetention = 720 * time.Hour

// OpKind says what an Op does.
type OpKind uint8

// The write operations. The planner (NewPlan) decides the ops up to OpSetPreferences;
// the store applies the others itself, in the batch's transaction, in op order.
const (
	OpCreate         OpKind = iota + 1 // store Creates, atomically as one unit
	OpMarkRead                         // mark notification ID of UserID read
	OpReadAll                          // mark every unread notification of UserID read
	OpFlushDigest                      // store the digest Digest as one notification, and close it
	OpSetContact                       // store Contact as how UserID is reached (the zero Contact removes it)
	OpSetPreferences                   // replace UserID's Preferences (the zero value: everything on)

	OpFinishDeliveries // record the Outcomes of attempts of claimed deliveries
	OpRetryDelivery    // make dead delivery ID pending again, due now, its attempts reset
	OpPrune            // delete log entries recorded before Cutoff, up to a store's chunk
)

// Op is one write operation. A create op with several notifications (a batch create) is
// atomic: if one of them fails, none is stored and the op's Result carries the error.
type Op struct {
	Kind        OpKind
	Creates     []herald.NewNotification // OpCreate: validated notifications
	UserID      string                   // OpMarkRead, OpReadAll, OpSetContact, OpSetPreferences
	ID          string                   // OpMarkRead: a notification; OpRetryDelivery: a delivery
	Digest      DigestKey                // OpFlushDigest
	Contact     Contact                  // OpSetContact
	Preferences Preferences              // OpSetPreferences
	// Outcomes (OpFinishDeliveries): Attempts grows by one for each, UpdatedAt becomes
	// the batch time. Outcomes for deliveries that are not pending are ignored; a
	// delivery named twice takes its last outcome, as one attempt.
	Outcomes []Outcome
	Cutoff   time.Time // OpPrune
}

// Size is what op weighs in a batch: its notifications or outcomes, at least 1.
func (op *Op) Size() int {
	return max(1, len(op.Creates), len(op.Outcomes))
}

// Result is what one Op did.
type Result struct {
	// Err is a per-operation failure (an *herald.Error: not_found, idempotency_conflict);
	// when set, the op changed nothing.
	Err error
	// Notifications: for OpCreate, one per Creates item in order (the original for a
	// replayed idempotency key); for OpMarkRead, the notification with its ReadAt.
	Notifications []herald.Notification
	// Replayed[i] is true when Notifications[i] was an idempotent replay (OpCreate).
	Replayed []bool
	// Suppressed[i] is true when item i was not stored because its receiver turned
	// its type off (Preferences); Notifications[i] is then the zero value. Nil when no
	// item was suppressed.
	Suppressed []bool
	// Digested[i] is true when item i went into a digest instead of being stored
	// (NewNotification.Digest); Notifications[i] is then the zero value. Nil when no
	// item was. For OpFlushDigest, Notifications holds the digest's notification, or
	// nothing when the digest was already flushed.
	Digested []bool
	// ReadAll is set for OpReadAll (Updated 0 when nothing was unread).
	ReadAll *herald.ReadAll
	// Entries are the log entries this op appended, in seq order (none for a no-op).
	Entries []herald.Entry
	// Delivery is, for OpRetryDelivery, the delivery as the retry left it, with its
	// notification. An id that names no dead delivery fails the op with not_found.
	Delivery *Delivery
	// Pruned is, for OpPrune, how many log entries the op deleted; More says that
	// entries older than the cutoff are left (a store deletes a bounded chunk per op,
	// so a batch is not held up): send another.
	Pruned int64
	More   bool
}

// UnreadPage is a page of a user's unread notifications, newest first.
type UnreadPage struct {
	Items []herald.Notification
	Total int64 // the user's unread total
	Seq   int64 // the user's latest log seq
}

// EventsPage is a page of a user's event log, oldest first.
type EventsPage struct {
	Entries []herald.Entry
	Seq     int64 // the user's latest log seq
	// Reset is true when the cursor is older than the retention (its next entry is gone
	// or expired) or beyond the latest seq: the caller must take a fresh snapshot
	// (unread list) and continue from Seq. Entries is empty then.
	Reset bool
}

// Reader is what reading the store takes: the API and the inbox actors are handed one
// (the dispatcher, its outbox and digest parts). Every limit passed to a read must be positive.
type Reader interface {
	// Get returns notification id of user, or a not_found *herald.Error.
	Get(ctx context.Context, userID, id string) (herald.Notification, error)
	// Unread returns up to limit unread notifications of user with seq < before
	// (before <= 0: no bound), newest first, with the unread total and latest seq.
	Unread(ctx context.Context, userID string, before int64, limit int) (UnreadPage, error)
	// Created returns up to limit notifications of user created at log position > since,
	// oldest first, read or not, with their current ReadAt.
	Created(ctx context.Context, userID string, since int64, limit int) ([]herald.Notification, error)
	// Events returns up to limit log entries of user after since, oldest first.
	Events(ctx context.Context, userID string, since int64, limit int) (EventsPage, error)
	// UnreadCount returns the user's unread total.
	UnreadCount(ctx context.Context, userID string) (int64, error)
	// Heads sets seqs[i] to the latest log seq of users[i] (0 for a user with no log),
	// in one read for them all: how the inboxes learn whether they missed an entry.
	// len(seqs) must be len(users).
	Heads(ctx context.Context, users []string, seqs []int64) error
	// Ping reports whether the store can be reached. A store that can tell that its
	// writes are failing while its reads go through (the embedded store: the last
	// commit failed and none has succeeded since) returns an error wrapping
	// ErrCommitsFailing.
	Ping(ctx context.Context) error

	OutboxReader
	DigestReader
}

// Applier is the writing side of a store: only the persistence actor holds one.
type Applier interface {
	// Apply performs ops in order in one transaction stamped now. It returns one Result
	// per op, or an error (and nothing written) when the transaction failed.
	Apply(ctx context.Context, now time.Time, ops []Op) ([]Result, error)
}

// Store is durable storage for notifications, their per-user event logs, the outbox and
// the digests: what the node opens and closes. It hands the Store to the persistence
// actor alone, and to every other part the narrow interface it needs (Reader, Claimer,
// Writer).
type Store interface {
	Reader
	Applier
	Claimer
	Close() error
}

// Writer sends one Op to the single writer and waits until it is durable: the persistence
// actor's client (actors/persist.Client). The API, the inbox actors (their clients'
// frames), the event emitter, the dispatcher and the node write through one. The error is the op's own failure (a per-op
// *herald.Error such as not_found or a validation error) or its batch's: unavailable
// (nothing was written) or outcome_unknown (sent to the store, no answer: it may be stored).
type Writer interface {
	Write(ctx context.Context, op Op) (Result, error)
}
