package cluster

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/heraldhq/herald"
)

// subjectPrefix starts every user's subject: herald.u.<32 hex digits>.
const subjectPrefix = "herald.u."

// subject is the bus subject of user's entries: a hash of the id, since an id may hold
// any character and a subject may not. Two users whose ids share a hash share a subject;
// each node hands the router only what its users' inboxes take, so that costs traffic,
// never correctness.
func subject(user string) string {
	h := fnv.New128a()
	h.Write([]byte(user))
	var sum [16]byte
	b := make([]byte, len(subjectPrefix), len(subjectPrefix)+32)
	copy(b, subjectPrefix)
	return string(hex.AppendEncode(b, h.Sum(sum[:0])))
}

// A message carries one user's entries of one committed batch, in commit order:
//
//	version (1 byte, 2)
//	commit time, Unix nanoseconds (varint)
//	user id (text: a uvarint length, then the bytes)
//	entry count (uvarint), then per entry:
//	    entry time, Unix nanoseconds (varint), seq (varint), unread (varint),
//	    event (1 byte: 1 created, 2 read, 3 read-all), then
//	    for created and read, the notification: id, object, receiver, sender, type,
//	        payload (text each), channel count (uvarint) and each channel (text),
//	        createdAt (text, RFC 3339 with nanoseconds), readAt (1 byte, 0 or 1, then text),
//	        seq (varint);
//	    for read-all: readAt (text), updated (varint).
//
// Times travel as the text the WebSocket shows, so a socket on another node gets the
// same bytes as one on the origin.
const version = 2

const (
	evCreated byte = 1 + iota
	evRead
	evReadAll
)

// appendMessage appends the message for entries, all of user, committed at at.
func appendMessage(b []byte, user string, at time.Time, entries []*herald.Entry) []byte {
	b = append(b, version)
	b = binary.AppendVarint(b, at.UnixNano())
	b = appendText(b, user)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendVarint(b, e.At.UnixNano())
		b = binary.AppendVarint(b, e.Seq)
		b = binary.AppendVarint(b, e.Unread)
		switch {
		case e.Event == herald.EventReadAll && e.ReadAll != nil:
			b = append(b, evReadAll)
			b = appendTime(b, e.ReadAll.ReadAt)
			b = binary.AppendVarint(b, e.ReadAll.Updated)
			continue
		case e.Event == herald.EventRead && e.Notification != nil:
			b = append(b, evRead)
		case e.Event == herald.EventCreated && e.Notification != nil:
			b = append(b, evCreated)
		default:
			b = append(b, 0) // refused by the receiver: never sent by a store
			continue
		}
		n := e.Notification
		b = appendText(b, n.ID)
		b = appendText(b, n.Object)
		b = appendText(b, n.ReceiverID)
		b = appendText(b, n.SenderID)
		b = appendText(b, n.Type)
		b = appendText(b, n.Payload)
		b = binary.AppendUvarint(b, uint64(len(n.Channels)))
		for _, c := range n.Channels {
			b = appendText(b, c)
		}
		b = appendTime(b, n.CreatedAt)
		if n.ReadAt == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendTime(b, *n.ReadAt)
		}
		b = binary.AppendVarint(b, n.Seq)
	}
	return b
}

func appendText[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	var buf [40]byte
	return appendText(b, t.AppendFormat(buf[:0], time.RFC3339Nano))
}

var errMessage = errors.New("malformed bus message")

// decoder reads a message; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMessage, what)
	}
	d.b = nil
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if l > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:l]
	d.b = d.b[l:]
	return v
}

func (d *decoder) text() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	raw := d.bytes()
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil && d.err == nil {
		d.fail("time " + strconv.Quote(string(raw)))
	}
	return t
}

// decodeMessage reads a message: the entries, of one user, and when they were committed.
func decodeMessage(b []byte) (entries []herald.Entry, at time.Time, err error) {
	if len(b) == 0 || b[0] != version {
		return nil, at, fmt.Errorf("%w: unknown version", errMessage)
	}
	d := &decoder{b: b[1:]}
	commit := d.varint()
	user := d.text()
	count := d.uvarint()
	if count > uint64(len(d.b))/4 { // an entry takes at least 4 bytes
		d.fail("entry count")
	}
	if d.err != nil {
		return nil, at, d.err
	}
	entries = make([]herald.Entry, count)
	notes := make([]herald.Notification, 0, count)
	for i := range entries {
		e := &entries[i]
		e.UserID = user
		e.At = time.Unix(0, d.varint())
		e.Seq, e.Unread = d.varint(), d.varint()
		switch d.byte() {
		case evReadAll:
			e.Event = herald.EventReadAll
			e.ReadAll = &herald.ReadAll{ReadAt: d.time(), Updated: d.varint()}
			continue
		case evRead:
			e.Event = herald.EventRead
		case evCreated:
			e.Event = herald.EventCreated
		default:
			d.fail("event")
		}
		notes = append(notes, herald.Notification{
			ID: d.text(), Object: d.text(), ReceiverID: d.text(), SenderID: d.text(), Type: d.text(),
			Payload: json.RawMessage(d.text()),
		})
		n := &notes[len(notes)-1]
		if c := d.uvarint(); c > uint64(len(d.b)) {
			d.fail("channel count")
		} else if c > 0 {
			n.Channels = make([]herald.Channel, c)
			for j := range n.Channels {
				n.Channels[j] = herald.Channel(d.text())
			}
		}
		n.CreatedAt = d.time()
		switch d.byte() {
		case 0:
		case 1:
			t := d.time()
			n.ReadAt = &t
		default:
			d.fail("readAt")
		}
		n.Seq = d.varint()
		e.Notification = n
		if d.err != nil {
			break
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, at, d.err
	}
	return entries, time.Unix(0, commit), nil
}

func bytesField(b []byte) ([]byte, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, fmt.Errorf("%w: truncated", errMessage)
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// A head-check request on herald.ctl.check is the users' ids, each as its length
// (uvarint) and its bytes; an empty one asks for every user.
func appendUsers(b []byte, users []string) []byte {
	for _, u := range users {
		b = binary.AppendUvarint(b, uint64(len(u)))
		b = append(b, u...)
	}
	return b
}

func decodeUsers(b []byte) ([]string, error) {
	var users []string
	for len(b) > 0 {
		u, rest, err := bytesField(b)
		if err != nil {
			return nil, err
		}
		users, b = append(users, string(u)), rest
	}
	return users, nil
}
