package persistence

import (
	"context"
	"encoding/json"
	"time"

	"github.com/heraldhq/herald"
)

// Digests. A create whose NewNotification has a Digest is not stored as a notification:
// the planner adds it to the open digest of its receiver, type and rule (opening one,
// due Window later, if there is none). When a digest is due, an OpFlushDigest op turns
// it into one notification, with the count and the items, and deletes it, in the same
// transaction: a digest is flushed once, and a restart loses none.

// MaxDigestItems is how many items a digest keeps; more are counted, not kept.
const MaxDigestItems = 100

// DigestKey names a digest: one open at a time per receiver, type and rule.
type DigestKey struct {
	UserID string
	Type   string
	Rule   string
}

// DigestItem is one notification held in a digest.
type DigestItem struct {
	IdempotencyKey string          `json:"k,omitempty"` // the sender and its key; a replay of it in the digest is dropped
	Payload        json.RawMessage `json:"p"`
}

// DigestBucket is an open digest.
type DigestBucket struct {
	Key      DigestKey
	OpenedAt time.Time
	DueAt    time.Time // when it is flushed: OpenedAt + the rule's window
	Count    int       // notifications added, kept or not
	SenderID string    // of the first item
	Object   string    // of the first item
	Channels []herald.Channel
	Items    []DigestItem // the first MaxDigestItems
}

// DigestReader is the reading side of the digests; they are written by creates and
// flushed by OpFlushDigest.
type DigestReader interface {
	// DueDigests returns the keys of up to limit digests due at or before now, earliest
	// due first.
	DueDigests(ctx context.Context, now time.Time, limit int) ([]DigestKey, error)
}
