package wire

import (
	"fmt"
	"strconv"

	"github.com/heraldhq/herald"
)

// EncodeEntry returns the frame of a log entry, {"event":"…","seq":n,"unread":n,"data":…}
// (herald.Entry.AppendJSON, the encoding the events feed uses too). An entry without
// the data its event needs is refused: a client must never be sent "data":null.
func EncodeEntry(e *herald.Entry) ([]byte, error) {
	if !e.HasData() {
		return nil, fmt.Errorf("entry %d (%s) has no data", e.Seq, e.Event)
	}
	size := 320
	if e.Notification != nil {
		size += len(e.Notification.Payload)
	}
	return e.AppendJSON(make([]byte, 0, size)), nil
}

// EncodeSnapshot returns the unread-notifications frame: items newest first (at most
// SnapshotSize of them), seq the log position they reflect, unread the total.
func EncodeSnapshot(items []herald.Notification, seq, unread int64) []byte {
	size := 96
	for i := range items {
		size += 320 + len(items[i].Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"event":"`+EventUnread+`","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"unread":`...)
	b = strconv.AppendInt(b, unread, 10)
	b = append(b, `,"data":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = items[i].AppendJSON(b)
	}
	return append(b, "]}"...)
}

// Pong is the frame that answers a client's ping. Shared: it must not be modified.
var Pong = []byte(`{"event":"` + EventPong + `","data":{}}`)

// EncodeError returns the error frame of err, {"event":"error","data":{"code","message",
// "field"?}}: err's code (internal for an error that is not a *herald.Error), message
// and field. An internal error says no more than that; its cause is for the log.
func EncodeError(err error) []byte { return EncodeErrorRef(err, "") }

// EncodeErrorRef is EncodeError for an error caused by a client frame that carried
// ref: the frame has "ref" too, {"event":"error","ref":"…","data":{…}}. An empty ref
// is left out.
func EncodeErrorRef(err error, ref string) []byte {
	e := herald.AsError(err)
	msg := e.Message
	if e.Code == herald.CodeInternal {
		msg = "internal error"
	}
	b := make([]byte, 0, 80+len(e.Code)+len(msg)+len(e.Field)+len(ref))
	b = append(b, `{"event":"`+EventError+`",`...)
	if ref != "" {
		b = append(b, `"ref":`...)
		b = herald.AppendJSONString(b, ref, true)
		b = append(b, ',')
	}
	b = append(b, `"data":{"code":`...)
	b = herald.AppendJSONString(b, string(e.Code), true)
	b = append(b, `,"message":`...)
	b = herald.AppendJSONString(b, msg, true)
	if e.Field != "" {
		b = append(b, `,"field":`...)
		b = herald.AppendJSONString(b, e.Field, true)
	}
	return append(b, "}}"...)
}
