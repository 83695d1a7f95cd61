// Package inbox delivers each user's event log to that user's open sockets.
//
// # Who owns what
//
// The router (NewRouter) is one actor. It knows which users are connected: it spawns an
// inbox actor for a user on the user's first socket, forwards that user's socket
// messages to it, and splits every committed batch (Committed, sent by the persistence
// actor's OnCommit hook through OnCommit) into one delivery per connected receiver.
// Entries for users with no inbox stop there: those users catch up from the store when
// they connect.
//
// An inbox actor owns, for its one user: every socket of the user (up to
// Options.MaxSockets), the latest log position it has seen (head), the unread total and
// the newest unread notifications (at most 100, the unread-notifications snapshot), and
// for each socket the last seq sent to it. It encodes each live entry's frame once and hands
// the same bytes to every socket. It never blocks: store reads run on goroutines of their
// own and come back as messages; a Socket's Send only queues.
//
// # Exactly once, in order
//
// The inbox registers with the router before it reads anything from the store, so every
// entry committed after its first read reaches it live. A socket that resumes (Since) is
// therefore served in three steps: entries after its cursor read from the store, then
// the entries that arrived live during that read (kept in a small ring while any socket
// catches up), then live. Each step drops what is at or below the socket's last sent
// seq, so nothing is sent twice, and a socket that sees a live entry beyond the next one
// it needs (a lost delivery) reads the store again instead of skipping ahead: nothing is
// left out. A cursor the store no longer has (past retention) or never had (beyond the
// latest seq) gets the snapshot instead.
//
// An inbox's first read starts when it takes in the Attach it was spawned for, not
// while it starts (on the router's goroutine, before the router sends that Attach): it
// always has its socket to serve, so a big list is never read for no socket, let go at
// once, and read again for the Attach.
//
// # Snapshots
//
// The snapshot comes from the inbox's cache of the unread list (unreadCache), kept up to
// date from live entries and read from the store again only when it cannot be (a gap, a
// read of one it does not hold) or was let go. Its encoding is made once per state and
// shared by every socket. Between messages an inbox holds at most Options.CacheBytes
// (4 KiB) of it: the encoding stays while it fits with the list, so a refresh of an
// unchanged small list encodes nothing, and a list bigger than that on its own is let go
// and read again for the next snapshot. Idle inboxes hold no more than that budget,
// except, for a user with more than one socket, for Options.RefreshEvery after each
// snapshot read: the list just read, and its encoding, are kept that long whatever their
// size, so every socket of the user that connects or refreshes meanwhile is served from
// them, and a user's sockets together cost about one store read of a big snapshot a
// second, however many there are. A user with one socket has nothing to share, and its
// inbox lets a big list go as soon as the snapshot is queued: thousands of users
// connecting a second would otherwise hold a page each for that second, and the
// process keeps the heap such a peak grew to.
//
// # Memory of an idle inbox
//
// hollywood keeps the last message an actor processed referenced until the next one
// arrives (its process's context). An inbox that goes idle after a page from the store
// (a snapshot read, a catch-up read, a client's write's answer, a delivered batch)
// would hold that page for as long as it stays idle. So those messages go to the inbox
// as pointers, and the inbox zeroes each once it has taken what it keeps: what stays
// referenced is an empty struct, and an idle inbox's memory does not depend on the
// size of the last message it handled. (Sending itself a tiny message after a big one
// costs a wake-up and a queue slot per page; a middleware cannot reach the field.)
//
// A socket is sent at most one snapshot per Options.RefreshEvery (1 s). A refresh-unread
// within that time of the socket's last snapshot (the one it connected with included) is
// not dropped but deferred: one timer message at the end of the window, with a generation
// so that a stale one is ignored, brings one snapshot for every refresh received in the
// window, and it reflects everything the inbox has seen by then. So a client flooding
// refresh-unread (the gateway lets through up to its frame rate) costs at most one store
// read and one encoding of the snapshot a second, and always ends with a snapshot taken
// after its last refresh. A refresh while a snapshot is already owed to the socket (its
// store read in flight) is answered by that one.
//
// # A client's frames
//
// A socket's refresh-unread, mark-read and mark-all-read frames come to its inbox (a
// Client message from the connection's reader, through the router), never straight to
// the store: the reader sends it and reads on, and never waits for a commit. The path
// of a mark-read is
//
//	client → api/ws reader (parses; answers ping and bad frames itself)
//	       → router → inbox (Client) → goroutine: Writer.Write (the persistence actor)
//	       → inbox (written: an error frame on that socket, or nothing)
//	and, for a change, its entry: persistence actor → OnCommit → router → every inbox
//	of the user → every socket.
//
// Each socket's frames take effect in the order it sent them: while one write of the
// socket is in flight, its later frames (refresh-unread included) wait behind it, at
// most Options.PendingFrames of them (one more is answered with an unavailable error
// frame and not applied). The inbox takes the entries of an answered write at once,
// before the router's copy arrives (which it then drops as seen), so a refresh-unread
// sent after a mark-read gets a snapshot that shows it. A failed write is an error frame
// on the socket that sent it, its field named as in the frame (data.id). A write that
// does not commit within Options.OpTimeout (15 s, more than a commit's own 10 s) is
// answered with the writer's error: unavailable when it never went to storage (nothing
// written), outcome_unknown when its commit went unanswered; one that landed then
// arrives as any other entry once the node re-checks its batch's users (CheckHeads).
//
// The store is skipped only when the answer is certain whatever the cache holds:
//
//   - a mark-read of an id that is no notification id (persistence.ParseID refuses it,
//     as every store's lookup does) is answered not_found (data.id), the store's
//     answer;
//   - a mark-read of a notification the inbox saw become read is answered with
//     nothing, which is what the store's no-op answers (no entry, no frame): read is
//     for good, since notifications are never made unread and never deleted (Prune
//     deletes log entries only). The inbox learns it from the user's notification-read
//     entries, from the unread notifications it held when an all-notifications-read
//     entry came, and from the answers to its own mark-reads; it remembers the newest
//     16 such ids, and none once its last socket has gone.
//
// Everything else goes to the store: a mark-read of an id the inbox does not know (the
// unread cache holds at most the 100 newest unread, and proves nothing about read or
// other users' notifications: whether the id is the user's, read, or nobody's is the
// store's to say), and every mark-all-read (a cache that shows nothing unread may be
// behind a create committed before the frame).
//
// # Lifecycle
//
// After its last socket goes, an inbox waits Options.Grace (a page reload reconnects
// within it and finds the cache warm), then asks the router to retire it. The router
// agrees only if no socket was attached in the meantime, and stops it. Stopping the
// router stops every inbox (without waiting for them: inboxes are not the router's
// children, whose stops a parent would wait for). Sockets are closed by their owner
// (the WebSocket gateway), not by the inbox, except when the inbox refuses one
// (CloseTooManySockets), cannot serve it (CloseTryAgain: storage unavailable;
// CloseInternal: an entry it cannot encode), or a catching-up socket makes no room
// within the read timeout (CloseSlowConsumer).
package inbox
