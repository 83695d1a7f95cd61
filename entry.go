package herald

import (
	"strconv"
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

// MarshalJSON encodes the entry as the events feed and the WebSocket send it (AppendJSON).
func (e Entry) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, e.jsonSize())), nil
}

// AppendJSON appends the entry as the events feed and the WebSocket send it, the one
// encoding of an entry: {"event":"…","seq":n,"unread":n,"data":…}, data being the
// notification or the read-all (null when the entry has none).
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"event":`...)
	b = AppendJSONString(b, string(e.Event), true)
	b = appendTail(b, e.Seq, e.Unread)
	switch {
	case e.Event == EventReadAll && e.ReadAll != nil:
		b = e.ReadAll.AppendJSON(b)
	case e.Event != EventReadAll && e.Notification != nil:
		b = e.Notification.AppendJSON(b)
	default:
		b = append(b, "null"...)
	}
	return append(b, '}')
}

// HasData reports whether the entry carries what its event needs: its Notification, or
// for a read-all its ReadAll.
func (e *Entry) HasData() bool {
	if e.Event == EventReadAll {
		return e.ReadAll != nil
	}
	return e.Notification != nil
}

// jsonSize is about how many bytes AppendJSON makes.
func (e *Entry) jsonSize() int {
	if e.Notification != nil {
		return 320 + len(e.Notification.Payload)
	}
	return 128
}

// appendTail appends what follows the event name in a frame that carries a log
// position: `,"seq":n,"unread":n,"data":`.
func appendTail(b []byte, seq, unread int64) []byte {
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"unread":`...)
	b = strconv.AppendInt(b, unread, 10)
	return append(b, `,"data":`...)
}
