package cluster

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
//	version (1 byte, 1)
//	commit time, Unix nanoseconds (varint)
//	user id length (uvarint), user id
//	entry count (uvarint), then per entry:
//	    entry time, Unix nanoseconds (varint)
//	    frame length (uvarint), the entry as the WebSocket sends it (herald.Entry.AppendJSON)
const version = 1

// appendMessage appends the message for entries, all of user, committed at at.
func appendMessage(b []byte, user string, at time.Time, entries []*herald.Entry) []byte {
	b = append(b, version)
	b = binary.AppendVarint(b, at.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(user)))
	b = append(b, user...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendVarint(b, e.At.UnixNano())
		// The frame's length goes before it: reserve the most a uvarint of a frame
		// takes, then move the frame down to the length's real size.
		start := len(b)
		b = append(b, make([]byte, binary.MaxVarintLen32)...)
		b = e.AppendJSON(b)
		n := len(b) - start - binary.MaxVarintLen32
		var lenBuf [binary.MaxVarintLen32]byte
		l := binary.PutUvarint(lenBuf[:], uint64(n))
		copy(b[start:], lenBuf[:l])
		copy(b[start+l:], b[start+binary.MaxVarintLen32:])
		b = b[:start+l+n]
	}
	return b
}

var errMessage = errors.New("malformed bus message")

// frame is an entry as the WebSocket sends it.
type frame struct {
	Event  herald.Event    `json:"event"`
	Seq    int64           `json:"seq"`
	Unread int64           `json:"unread"`
	Data   json.RawMessage `json:"data"`
}

// decodeMessage reads a message: the entries, of one user, and when they were committed.
func decodeMessage(b []byte) (entries []herald.Entry, at time.Time, err error) {
	if len(b) == 0 || b[0] != version {
		return nil, at, fmt.Errorf("%w: unknown version", errMessage)
	}
	b = b[1:]
	commit, b, err := varint(b)
	if err != nil {
		return nil, at, err
	}
	user, b, err := bytesField(b)
	if err != nil {
		return nil, at, err
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, at, fmt.Errorf("%w: entry count", errMessage)
	}
	b = b[n:]
	entries = make([]herald.Entry, 0, count)
	for range count {
		var when int64
		var data []byte
		if when, b, err = varint(b); err != nil {
			return nil, at, err
		}
		if data, b, err = bytesField(b); err != nil {
			return nil, at, err
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, at, fmt.Errorf("%w: %v", errMessage, err)
		}
		e := herald.Entry{UserID: string(user), Seq: f.Seq, Event: f.Event, Unread: f.Unread, At: time.Unix(0, when)}
		switch f.Event {
		case herald.EventReadAll:
			e.ReadAll = new(herald.ReadAll)
			err = json.Unmarshal(f.Data, e.ReadAll)
		default:
			e.Notification = new(herald.Notification)
			err = json.Unmarshal(f.Data, e.Notification)
		}
		if err != nil || !e.HasData() {
			return nil, at, fmt.Errorf("%w: entry %d: %v", errMessage, f.Seq, err)
		}
		entries = append(entries, e)
	}
	if len(b) != 0 {
		return nil, at, fmt.Errorf("%w: trailing bytes", errMessage)
	}
	return entries, time.Unix(0, commit), nil
}

func varint(b []byte) (int64, []byte, error) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: truncated", errMessage)
	}
	return v, b[n:], nil
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
