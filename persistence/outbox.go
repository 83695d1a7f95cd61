package persistence

import (
	"context"
	"time"

	"github.com/heraldhq/herald"
)

// The outbox holds the deliveries of notifications through the email and webhook
// channels. A delivery row is written in the same transaction as its notification (the
// planner adds it to the Plan), so a notification that is stored always gets its
// deliveries, and a restart loses none. A dispatcher then claims due rows, attempts
// them, and records each outcome (an OpFinishDeliveries through the persistence actor):
// sent, retry later, or dead (a dead letter, kept for an operator to retry with an
// OpRetryDelivery).
//
// Claims are leases, not locks held across the network: a claimed row is simply made
// due again a lease later. If the process dies while sending, the row comes back after
// the lease and is attempted again, so a delivery happens at least once; its ID goes
// with every attempt (the webhook-id header, the e-mail's Message-ID) so that the
// receiver sees it once.

// DeliveryState is where a delivery is in its life.
type DeliveryState string

// The delivery states.
const (
	DeliveryPending   DeliveryState = "pending"   // waiting for its due time or in flight
	DeliverySent      DeliveryState = "sent"      // the channel accepted it
	DeliveryDead      DeliveryState = "dead"      // gave up; OpRetryDelivery revives it
	DeliveryCancelled DeliveryState = "cancelled" // an escalation whose notification was read in time
)

// Valid reports whether s is one of the states.
func (s DeliveryState) Valid() bool {
	switch s {
	case DeliveryPending, DeliverySent, DeliveryDead, DeliveryCancelled:
		return true
	}
	return false
}

// Delivery is one notification through one channel.
type Delivery struct {
	ID             string // a UUID, like notification ids; receivers dedupe by it
	NotificationID string
	UserID         string // the notification's receiver
	Channel        herald.Channel
	State          DeliveryState
	Attempts       int       // attempts finished so far
	DueAt          time.Time // pending: when it may be attempted next
	UnreadOnly     bool      // an escalation: cancelled if the notification is read by DueAt
	LastError      string    // the last failed attempt's error, if any
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// ByService records that a service (an API key, or a routing rule, digests included)
	// created the notification, as herald.NewNotification.ByService said when it was
	// planned. Only then does an e-mail go to the payload's "email" address; otherwise
	// it goes to the receiver's contact. Rows stored before the flag existed read false.
	ByService bool
	// Notification is the notification as it is now (ReadAt current). Claims and
	// listings fill it in.
	Notification herald.Notification
}

// Outcome is the result of one attempt of a claimed delivery.
type Outcome struct {
	ID    string
	Sent  bool      // the channel accepted it: state sent
	Dead  bool      // give up: state dead
	Retry time.Time // neither: pending again, due at Retry
	Error string    // why the attempt failed (Dead or Retry), kept as LastError
}

// ChannelStats is the pending part of the outbox for one channel.
type ChannelStats struct {
	Channel   herald.Channel
	Pending   int64
	OldestDue time.Time // zero when nothing is pending
}

// Contact is how a user is reached outside the app.
type Contact struct {
	Email string `json:"email"`
}

// Preferences are a user's opt-outs. A channel is on unless turned off for every type
// (Channels) or for the notification's type (Types). Turning realtime off for a type
// means its notifications are not stored at all (and so reach no channel).
type Preferences struct {
	Channels map[herald.Channel]bool            `json:"channels,omitempty"`
	Types    map[string]map[herald.Channel]bool `json:"types,omitempty"`
}

// Allows reports whether notifications of type typ may use channel c.
func (p *Preferences) Allows(typ string, c herald.Channel) bool {
	if on, ok := p.Channels[c]; ok && !on {
		return false
	}
	if on, ok := p.Types[typ][c]; ok && !on {
		return false
	}
	return true
}

// OutboxReader is the reading side of the outbox, contacts and preferences. Their
// writes are ops (OpFinishDeliveries, OpRetryDelivery, OpSetContact, OpSetPreferences).
type OutboxReader interface {
	// Deliveries lists the deliveries in state with an id greater than after (empty:
	// from the first), in id order (which is creation order), at most limit, each with
	// its notification.
	Deliveries(ctx context.Context, state DeliveryState, after string, limit int) ([]Delivery, error)
	// OutboxStats reports the pending deliveries of each channel that has some.
	OutboxStats(ctx context.Context) ([]ChannelStats, error)
	// Contact returns how userID is reached; the zero Contact when it was never set.
	Contact(ctx context.Context, userID string) (Contact, error)
	// Preferences returns userID's preferences; the zero value when never set.
	Preferences(ctx context.Context, userID string) (Preferences, error)
}

// Claimer leases due deliveries: the one write outside the persistence actor (see the
// package doc). Only the dispatcher is handed one.
type Claimer interface {
	// ClaimDeliveries returns up to limit pending deliveries due at or before now,
	// earliest due first, each with its notification, and leases them: each is due
	// again at now+lease unless an OpFinishDeliveries records its outcome first. A
	// pending UnreadOnly delivery whose notification has been read is set to cancelled
	// instead of being returned. Concurrent claimers never get the same delivery within
	// a lease.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
}
