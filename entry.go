package herald

import (
	"encoding/json"
	"time"
)

// Event names an entry of a user's event log; the names are the WebSocket event names.
type Event string

// The events of the log.
const (
	EventCreated Event = "new-notification"       // a notification was stored
	EventRead    Event = "notification-read"      // one notification was marked read
	EventReadAll Event = "all-notifications-read" // all of the user's notifications were marked read
)

// ReadAll is what a read-all changed.
type ReadAll struct {
	ReadAt  time.Time `json:"readAt"`
	Updated int64     `json:"updated"`
}

// Entry is one change in a user's event log. Seq numbers the user's entries 1, 2, 3, …
// with no gap; Unread is the user's unread total right after the change.
//
// For EventCreated and EventRead, Notification is the notification as it was right after
// the change (a created entry always has ReadAt nil, even if it was read later). For
// EventReadAll, ReadAll says when and how many.
type Entry struct {
	UserID       string
	Seq          int64
	Event        Event
	Unread       int64
	At           time.Time
	Notification *Notification
	ReadAll      *ReadAll
}

// Data is the value the contract sends as the entry's "data".
func (e *Entry) Data() any {
	if e.Event == EventReadAll {
		return e.ReadAll
	}
	return e.Notification
}

type entryJSON struct {
	Seq    int64 `json:"seq"`
	Event  Event `json:"event"`
	Data   any   `json:"data"`
	Unread int64 `json:"unread"`
}

// MarshalJSON encodes the entry as the events feed and the WebSocket send it:
// {"seq", "event", "data", "unread"}.
func (e Entry) MarshalJSON() ([]byte, error) {
	return json.Marshal(entryJSON{Seq: e.Seq, Event: e.Event, Data: e.Data(), Unread: e.Unread})
}
