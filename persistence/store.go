// Package persistence defines what Herald needs from storage and the one piece of logic
// every store shares: the planner, which turns a batch of write operations into the rows
// to write, the per-user seq and unread totals, and each operation's result.
//
// A store (persistence/postgres, persistence/embedded) owns its transactions: Apply loads
// what the planner needs, calls NewPlan, writes the plan and commits, all in one
// transaction. Either the whole batch is durable when Apply returns nil, or nothing of it
// is. Per-operation failures (not found, idempotency conflict) are results, not errors:
// they fail that operation alone and the rest of the batch goes on.
//
// Reads go straight to the store; writes come from one writer, the persistence actor
// (actors/persist), but every store must also be safe under concurrent Apply calls (two
// nodes sharing one PostgreSQL): seq stays 1..N with no gap.
package persistence

import (
	"context"
	"time"

	"github.com/heraldhq/herald"
)

// DefaultRetention is how long a user's event log is kept for catching up.
const DefaultRetention = 720 * time.Hour

// OpKind says what an Op does.
type OpKind uint8

// The write operations.
const (
	OpCreate      OpKind = iota + 1 // store Creates, atomically as one unit
	OpMarkRead                      // mark notification ID of UserID read
	OpReadAll                       // mark every unread notification of UserID read
	OpFlushDigest                   // store the digest Digest as one notification, and close it
)

// Op is one write operation. A create op with several notifications (a batch create) is
// atomic: if one of them fails, none is stored and the op's Result carries the error.
type Op struct {
	Kind    OpKind
	Creates []herald.NewNotification // OpCreate: validated notifications
	UserID  string                   // OpMarkRead, OpReadAll
	ID      string                   // OpMarkRead
	Digest  DigestKey                // OpFlushDigest
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

// Store is durable storage for notifications and per-user event logs. Every limit
// passed to a read must be positive.
type Store interface {
	// Apply performs ops in order in one transaction stamped now. It returns one Result
	// per op, or an error (and nothing written) when the transaction failed.
	Apply(ctx context.Context, now time.Time, ops []Op) ([]Result, error)

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

	// Prune deletes log entries recorded before cutoff and reports how many went.
	// Notifications themselves are kept.
	Prune(ctx context.Context, cutoff time.Time) (int64, error)
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	Close() error

	Outbox
	DigestStore
}
