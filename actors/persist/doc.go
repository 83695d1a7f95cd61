// Package persist is the persistence actor: the one writer of Herald's store. It alone
// holds the store's persistence.Applier; every other part of a node is handed a
// persistence.Reader for reads and a Client (a persistence.Writer) to write.
//
// Callers (the API, the inbox actors for their clients' frames, the event emitter, the
// dispatcher, the node's Notify and its prune loop) send it a Write holding one persistence.Op and a reply channel: creates,
// mark-read and read-all, digest flushes, contacts and preferences, delivery outcomes and
// dead-letter retries, and pruning of the log. The actor groups what arrives into batches
// and hands each batch to one commit goroutine, which runs Applier.Apply (one
// transaction), then delivers the committed entries (Options.OnCommit) and replies to
// every caller of the batch. A caller is answered only after its change is durable; if
// the transaction fails, every caller in the batch gets the same error: `unavailable`
// when nothing of the batch was written, `outcome_unknown` when the store took the
// commit and gave no answer (a timeout, a connection lost mid-commit: it may be stored).
//
// Only `unavailable` means "not written". A write does not start when its caller can no
// longer be answered: its context has ended, or its deadline, which allowed for a commit
// (CommitTimeout) when the write arrived, no longer does when its batch leaves; it is
// answered `unavailable`. A caller that stops waiting before its batch leaves hears
// `unavailable` too, and its write is dropped (Client and the commit race for the write
// and one of them wins); one that stops waiting after hears `outcome_unknown`. Callers
// give a write DefaultWriteTimeout, more than a commit, so that a write that starts is
// answered with its commit's outcome.
//
// After an `outcome_unknown` batch, its users go to Options.OnUncertain once the store
// answers for them again (a probe that takes their locks and writes nothing), so that
// what the batch did store reaches their sockets (the node has the router re-read them).
//
// One write to the store does not come through here: the dispatcher's lease claim on
// due deliveries (persistence.Claimer), whose reasons the persistence package doc gives.
//
// Batching is group commit: while a commit is running the actor keeps accepting writes,
// and the next batch leaves the moment it ends, so batches grow with load and an idle
// system commits a lone write at once. A batch also leaves when it reaches
// Options.MaxBatch (notifications, delivery outcomes and other ops: persistence.Op.Size),
// or after Options.FlushDelay (default 0: no waiting). Up to Options.InFlight commits run
// at once, and a write that finds fewer running starts one at once: a second transaction
// is written while the first waits for its flush (PostgreSQL flushes both together, and
// two that share a user are serialised by its row lock). With one commit at a time,
// OnCommit sees each user's entries in seq order; with more, a user's batches may be
// handed over in either order, and the consumer reorders (the inbox waits briefly for
// an entry that is missing before treating it as lost).
//
// Ownership and shutdown: the actor owns the pending batch and the commit goroutines it
// starts, one per batch. Drain flushes what is pending and answers once nothing is in
// flight; Poison after Drain then loses nothing (hollywood drops queued messages on
// Poison, so Drain must come first).
package persist
