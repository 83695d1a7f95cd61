package wire

import "github.com/heraldhq/herald"

// ClientEvent names a client → server frame.
type ClientEvent string

// The client → server events.
const (
	EventRefresh     ClientEvent = "refresh-unread" // a fresh unread-notifications snapshot
	EventMarkRead    ClientEvent = "mark-read"      // as PATCH /notifications/{id}/read; data {"id": "…"}
	EventMarkAllRead ClientEvent = "mark-all-read"  // as PATCH /notifications/read-all
	EventPing        ClientEvent = "ping"           // answered with pong (browsers cannot send protocol pings)
)

// The server → client events besides the log's own (herald.EventCreated, EventRead and
// EventReadAll, whose frames carry seq and unread).
const (
	EventUnread herald.Event = "unread-notifications" // the snapshot: data is the newest unread, seq and unread the state it shows
	EventPong   herald.Event = "pong"                 // answers ping; data {}
	EventError  herald.Event = "error"                // a client frame failed; data {"code", "message", "field"?}
)

// SnapshotSize is how many unread notifications a snapshot holds at most, newest
// first: the unread-notifications frame, and the snapshot the events feed answers a
// cursor it no longer has with.
const SnapshotSize = 100
