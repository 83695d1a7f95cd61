// Package dispatch delivers notifications through the email and webhook channels from
// the store's outbox, with retries and dead letters.
//
// # Who owns what
//
// The store owns the deliveries: a notification's delivery rows are written in the
// transaction that stores it, so none is lost to a restart. The dispatcher actor owns
// the loop: it claims due deliveries (a claim is a lease: a delivery whose sender dies
// comes back when the lease runs out), hands each to the Sender of its channel on a
// goroutine of its own, and records the outcomes in batches. The actor itself never
// waits: claims, sends and the recording of outcomes all run on goroutines and report
// back as messages. At most Options.Concurrency sends are in flight; the dispatcher
// claims ahead, up to twice that, so that one claim transaction serves many sends.
//
// # What it writes, and how
//
// Outcomes (persistence.OpFinishDeliveries) and digest flushes (OpFlushDigest) go
// through the persistence actor (Options.Writer), so they join the group commit of
// whatever else is being written, creates included. The claim is the one write the
// dispatcher makes to the store itself (Options.Claimer), on purpose: on PostgreSQL it
// is a single autocommitted statement whose FOR UPDATE SKIP LOCKED lets the dispatchers
// of every node sharing the database take disjoint rows without waiting on one another,
// and its row locks last only as long as that statement; inside a batch they would last
// until a transaction that also waits on user locks commits. On the embedded store a
// claim is a bbolt write transaction of its own, which bbolt runs one at a time with the
// batches; it is opened only when a read transaction found something due, so an idle
// poll writes nothing. A lease only moves a delivery's due time (and cancels an
// escalation whose notification was read): losing or repeating one costs a later or a
// repeated attempt, never a wrong state.
//
// # Retries
//
// A failed attempt is retried after an exponential backoff with jitter
// (Options.BackoffBase doubled per attempt, up to Options.BackoffMax, then a random
// point in its upper half; a longer Retry-After from a webhook endpoint is honoured up
// to BackoffMax). A permanent failure (a 3xx, or a 4xx other than 408, 425 and 429,
// from a webhook endpoint, a 5xx reply from the SMTP server, no email address for the
// user), or Options.MaxAttempts failures, makes it a dead letter: kept, listed by GET /deliveries?state=dead, and sent again by
// POST /deliveries/{id}/retry.
//
// A delivery goes out at least once; every attempt carries the delivery's id (the
// webhook-id header, the e-mail's Message-ID), so a receiver that remembers ids sees it
// exactly once.
//
// # Escalations
//
// An escalation ("email it if still unread after 30 minutes") is a delivery due later
// and marked unread-only: the store cancels it at claim time if the notification has
// been read by then, on any device.
//
// # Shutdown
//
// Drain stops claiming and returns once the sends in flight have ended and their
// outcomes are recorded, through the persistence actor, which must still be running
// then (drain the dispatcher first, then the writer); then the actor can be poisoned. A delivery cut off by a crash
// instead is retried after its lease.
package dispatch
