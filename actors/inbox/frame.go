package inbox

import (
	"encoding/json"
	"strconv"

	"github.com/heraldhq/herald"
)

// EventUnread is the snapshot frame's event name.
const EventUnread = "unread-notifications"

// EncodeEntry returns the frame of a log entry:
// {"event":"…","seq":n,"unread":n,"data":…}.
func EncodeEntry(e *herald.Entry) ([]byte, error) {
	data, err := json.Marshal(e.Data())
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(data)+len(e.Event)+64)
	b = append(b, `{"event":"`...)
	b = append(b, e.Event...)
	b = appendTail(b, e.Seq, e.Unread)
	b = append(b, data...)
	return append(b, '}'), nil
}

// EncodeSnapshot returns the unread-notifications frame: items newest first, seq the
// log position they reflect, unread the total.
func EncodeSnapshot(items []herald.Notification, seq, unread int64) ([]byte, error) {
	if items == nil {
		items = []herald.Notification{}
	}
	data, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(data)+80)
	b = append(b, `{"event":"`+EventUnread...)
	b = appendTail(b, seq, unread)
	b = append(b, data...)
	return append(b, '}'), nil
}

// appendTail appends `","seq":n,"unread":n,"data":` to b.
func appendTail(b []byte, seq, unread int64) []byte {
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"unread":`...)
	b = strconv.AppendInt(b, unread, 10)
	return append(b, `,"data":`...)
}
