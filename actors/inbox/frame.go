package inbox

import (
	"fmt"
	"strconv"

	"github.com/heraldhq/herald"
)

// EventUnread is the snapshot frame's event name.
const EventUnread = "unread-notifications"

// EncodeEntry returns the frame of a log entry:
// {"event":"…","seq":n,"unread":n,"data":…}.
func EncodeEntry(e *herald.Entry) ([]byte, error) {
	size := 320
	if e.Notification != nil {
		size += len(e.Notification.Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"event":"`...)
	b = append(b, e.Event...)
	b = appendTail(b, e.Seq, e.Unread)
	switch {
	case e.Event == herald.EventReadAll && e.ReadAll != nil:
		b = e.ReadAll.AppendJSON(b)
	case e.Event != herald.EventReadAll && e.Notification != nil:
		b = e.Notification.AppendJSON(b)
	default:
		return nil, fmt.Errorf("entry %d (%s) has no data", e.Seq, e.Event)
	}
	return append(b, '}'), nil
}

// EncodeSnapshot returns the unread-notifications frame: items newest first, seq the
// log position they reflect, unread the total.
func EncodeSnapshot(items []herald.Notification, seq, unread int64) ([]byte, error) {
	if items == nil {
		items = []herald.Notification{}
	}
	size := 96
	for i := range items {
		size += 320 + len(items[i].Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"event":"`+EventUnread...)
	b = appendTail(b, seq, unread)
	b = append(b, '[')
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = items[i].AppendJSON(b)
	}
	return append(b, "]}"...), nil
}

// appendTail appends `","seq":n,"unread":n,"data":` to b.
func appendTail(b []byte, seq, unread int64) []byte {
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"unread":`...)
	b = strconv.AppendInt(b, unread, 10)
	return append(b, `,"data":`...)
}
