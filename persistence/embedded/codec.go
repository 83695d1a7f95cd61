package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// errCorrupt reports a record that does not decode: the file was damaged or written by
// an incompatible version.
var errCorrupt = errors.New("embedded store: corrupt record")

// ---- keys ----

// userPrefix is uvarint(len(user)) | user: the start of every key of that user. The
// length prefix makes it prefix-free, so one user's keys never run into another's.
func userPrefix(user string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(user)+1+8)
	b = binary.AppendUvarint(b, uint64(len(user)))
	return append(b, user...)
}

// seqKey is userPrefix(user) | uint64 big-endian seq, so a user's keys sort by seq.
func seqKey(user string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(userPrefix(user), uint64(seq))
}

// The parts of a user's keys in the inbox bucket, in key order: the unread
// notifications, the user's row, the read notifications. A creation inserts just
// before the row, so a commit finds the user's newest unread keys and the row it
// updates on one page.
const (
	partUnread byte = 1 // userPrefix | 1 | seq -> id
	partRow    byte = 2 // userPrefix | 2      -> seq (8) | unread total (8)
	partRead   byte = 3 // userPrefix | 3 | seq -> id
)

// partPrefix is userPrefix(user) | part: the start of the keys of one part.
func partPrefix(user string, part byte) []byte { return append(userPrefix(user), part) }

// rowKey is the inbox key of user's row.
func rowKey(user string) []byte { return partPrefix(user, partRow) }

// inboxKey is the inbox key of notification seq of user, in part partUnread or
// partRead.
func inboxKey(user string, part byte, seq int64) []byte {
	return binary.BigEndian.AppendUint64(partPrefix(user, part), uint64(seq))
}

// withSeq returns prefix | uint64 big-endian seq in a new slice.
func withSeq(prefix []byte, seq int64) []byte {
	b := make([]byte, len(prefix), len(prefix)+8)
	copy(b, prefix)
	return binary.BigEndian.AppendUint64(b, uint64(seq))
}

// keySeq returns the seq at the end of a seqKey.
func keySeq(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[len(k)-8:]))
}

// timeKeyLen is the length of the time at the start of a logtime key.
const timeKeyLen = 8

// timeBits is Unix microseconds us as a uint64 that sorts like us: big-endian with the
// sign bit flipped, times before 1970 sort before the ones after.
func timeBits(us int64) uint64 { return uint64(us) ^ 1<<63 }

// timeKey is the logtime key of the log row with key logKey recorded at at:
// timeBits(at) | logKey.
func timeKey(at time.Time, logKey []byte) []byte {
	b := make([]byte, 0, timeKeyLen+len(logKey))
	b = binary.BigEndian.AppendUint64(b, timeBits(at.UnixMicro()))
	return append(b, logKey...)
}

// timeBound returns the time part of a logtime key such that an entry is recorded
// before cutoff exactly when its key's time part sorts before it. Entries are kept in
// whole microseconds, so a cutoff between two microseconds rounds up.
func timeBound(cutoff time.Time) []byte {
	us := cutoff.UnixMicro() // rounds down: the nanoseconds are never negative
	if cutoff.Nanosecond()%1000 != 0 {
		us++
	}
	return binary.BigEndian.AppendUint64(nil, timeBits(us))
}

// idemKey is uvarint(len(sender)) | sender | key.
func idemKey(sender, key string) []byte {
	return append(userPrefix(sender), key...)
}

// noteKey returns the 16 bytes of a UUID, or false when id is not a UUID (and so
// cannot name a stored notification).
func noteKey(id string) ([]byte, bool) {
	u, ok := persistence.ParseID(id)
	if !ok {
		return nil, false
	}
	return u[:], true
}

// ---- a user's row: seq (8) | unread (8) ----

func encodeUser(seq, unread int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(seq))
	binary.BigEndian.PutUint64(b[8:], uint64(unread))
	return b
}

func decodeUser(v []byte) (seq, unread int64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("%w: user record of %d bytes", errCorrupt, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), nil
}

// ---- notes ----
//
// A notification record is a fixed header followed by length-prefixed fields:
//
//	0      version (1)
//	1      flags: bit 0 set when read
//	2:10   seq
//	10:18  createdAt, Unix microseconds
//	18:26  readAt, Unix microseconds (0 unless read)
//	26:34  unread_after: the receiver's unread total right after the creation
//	34:    uvarint-length-prefixed receiverId, senderId, type, object, payload,
//	       idempotencyKey, then uvarint channel count and each channel length-prefixed
//
// readAt sits at a fixed offset so marking read patches a copy of the record without
// decoding it.

const (
	noteVersion = 1
	noteHeader  = 34
	flagRead    = 1
	offReadAt   = 18
)

// storedNote is a decoded notification record.
type storedNote struct {
	herald.Notification
	UnreadAfter    int64
	IdempotencyKey string
}

func micros(t time.Time) uint64 { return uint64(t.UnixMicro()) }

func fromMicros(v uint64) time.Time { return time.UnixMicro(int64(v)).UTC() }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeNote(n *herald.Notification, unreadAfter int64, idemKey string) []byte {
	size := noteHeader + 6*binary.MaxVarintLen32 + len(n.ReceiverID) + len(n.SenderID) + len(n.Type) +
		len(n.Object) + len(n.Payload) + len(idemKey) + 1
	for _, c := range n.Channels {
		size += 1 + len(c)
	}
	b := make([]byte, noteHeader, size)
	b[0] = noteVersion
	binary.BigEndian.PutUint64(b[2:], uint64(n.Seq))
	binary.BigEndian.PutUint64(b[10:], micros(n.CreatedAt))
	if n.ReadAt != nil {
		b[1] |= flagRead
		binary.BigEndian.PutUint64(b[offReadAt:], micros(*n.ReadAt))
	}
	binary.BigEndian.PutUint64(b[26:], uint64(unreadAfter))
	b = appendString(b, n.ReceiverID)
	b = appendString(b, n.SenderID)
	b = appendString(b, n.Type)
	b = appendString(b, n.Object)
	b = binary.AppendUvarint(b, uint64(len(n.Payload)))
	b = append(b, n.Payload...)
	b = appendString(b, idemKey)
	b = binary.AppendUvarint(b, uint64(len(n.Channels)))
	for _, c := range n.Channels {
		b = appendString(b, string(c))
	}
	return b
}

// markNoteRead returns a copy of record v marked read at at.
func markNoteRead(v []byte, at time.Time) ([]byte, error) {
	if len(v) < noteHeader || v[0] != noteVersion {
		return nil, fmt.Errorf("%w: notification record", errCorrupt)
	}
	b := bytes.Clone(v)
	b[1] |= flagRead
	binary.BigEndian.PutUint64(b[offReadAt:], micros(at))
	return b, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes() []byte {
	if r.err != nil {
		return nil
	}
	n, w := binary.Uvarint(r.b)
	if w <= 0 || n > uint64(len(r.b)-w) {
		r.err = errCorrupt
		return nil
	}
	v := r.b[w : w+int(n)]
	r.b = r.b[w+int(n):]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) count() int {
	if r.err != nil {
		return 0
	}
	n, w := binary.Uvarint(r.b)
	if w <= 0 || n > uint64(len(r.b)) || n > math.MaxInt32 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[w:]
	return int(n)
}

// decodeNote decodes record v of notification id. The result shares no memory with v.
func decodeNote(id []byte, v []byte) (storedNote, error) {
	var s storedNote
	if len(v) < noteHeader || v[0] != noteVersion || len(id) != 16 {
		return s, fmt.Errorf("%w: notification record", errCorrupt)
	}
	s.ID = uuid.UUID(id).String()
	s.Seq = int64(binary.BigEndian.Uint64(v[2:]))
	s.CreatedAt = fromMicros(binary.BigEndian.Uint64(v[10:]))
	if v[1]&flagRead != 0 {
		at := fromMicros(binary.BigEndian.Uint64(v[offReadAt:]))
		s.ReadAt = &at
	}
	s.UnreadAfter = int64(binary.BigEndian.Uint64(v[26:]))
	r := reader{b: v[noteHeader:]}
	s.ReceiverID = r.string()
	s.SenderID = r.string()
	s.Type = r.string()
	s.Object = r.string()
	s.Payload = bytes.Clone(r.bytes())
	s.IdempotencyKey = r.string()
	if n := r.count(); n > 0 {
		s.Channels = make([]herald.Channel, n)
		for i := range s.Channels {
			s.Channels[i] = herald.Channel(r.string())
		}
	}
	if r.err != nil {
		return storedNote{}, fmt.Errorf("%w: notification %s", errCorrupt, s.ID)
	}
	return s, nil
}

// ---- log: read and read-all entries ----
//
//	0      kind: 1 read, 2 read-all
//	1:9    at, Unix microseconds
//	9:17   unread total after the entry
//	17:    read: the notification id (16); read-all: updated (8)

const (
	logRead    = 1
	logReadAll = 2
	logHeader  = 17
)

func encodeLog(e *herald.Entry) ([]byte, error) {
	b := make([]byte, logHeader, logHeader+16)
	binary.BigEndian.PutUint64(b[1:], micros(e.At))
	binary.BigEndian.PutUint64(b[9:], uint64(e.Unread))
	switch e.Event {
	case herald.EventRead:
		id, ok := noteKey(e.Notification.ID)
		if !ok {
			return nil, fmt.Errorf("read entry of %q, not a UUID", e.Notification.ID)
		}
		b[0] = logRead
		b = append(b, id...)
	case herald.EventReadAll:
		b[0] = logReadAll
		b = binary.BigEndian.AppendUint64(b, uint64(e.ReadAll.Updated))
	default:
		return nil, fmt.Errorf("log entry of event %q", e.Event)
	}
	return b, nil
}

// logEntry is a decoded log record; for a read, ID is the notification's key.
type logEntry struct {
	Kind    byte
	At      time.Time
	Unread  int64
	ID      []byte
	Updated int64
}

func decodeLog(v []byte) (logEntry, error) {
	var e logEntry
	if len(v) < logHeader {
		return e, fmt.Errorf("%w: log record", errCorrupt)
	}
	e.Kind = v[0]
	e.At = fromMicros(binary.BigEndian.Uint64(v[1:]))
	e.Unread = int64(binary.BigEndian.Uint64(v[9:]))
	switch {
	case e.Kind == logRead && len(v) == logHeader+16:
		e.ID = bytes.Clone(v[logHeader:])
	case e.Kind == logReadAll && len(v) == logHeader+8:
		e.Updated = int64(binary.BigEndian.Uint64(v[logHeader:]))
	default:
		return e, fmt.Errorf("%w: log record", errCorrupt)
	}
	return e, nil
}

// logAt returns the time of log record v without decoding the rest.
func logAt(v []byte) (time.Time, error) {
	if len(v) < logHeader {
		return time.Time{}, fmt.Errorf("%w: log record", errCorrupt)
	}
	return fromMicros(binary.BigEndian.Uint64(v[1:])), nil
}

// ---- idem: notification id (16) | fingerprint ----

func encodeIdem(id []byte, fp []byte) []byte {
	b := make([]byte, 0, 16+len(fp))
	return append(append(b, id...), fp...)
}

func decodeIdem(v []byte) (id, fp []byte, err error) {
	if len(v) < 16 {
		return nil, nil, fmt.Errorf("%w: idempotency record", errCorrupt)
	}
	return bytes.Clone(v[:16]), bytes.Clone(v[16:]), nil
}

// ---- deliveries ----
//
// A delivery record is a fixed header followed by length-prefixed fields:
//
//	0      version (1)
//	1      state: 1 pending, 2 sent, 3 dead, 4 cancelled
//	2      flags: bit 0 set for an unread-only delivery (an escalation), bit 1 set when
//	       a service created the notification (records from before the bit read false:
//	       their payload's "email" is not honoured)
//	3:11   attempts
//	11:19  dueAt, Unix microseconds
//	19:27  createdAt, Unix microseconds
//	27:35  updatedAt, Unix microseconds
//	35:51  notification id (16)
//	51:    uvarint-length-prefixed userId, channel, lastError

const (
	deliveryVersion  = 1
	deliveryHeader   = 51
	flagUnreadOnly   = 1
	flagByService    = 2
	deliveryKeyLen   = 16
	dueKeyLen        = timeKeyLen + deliveryKeyLen
	stateKeyLen      = 1 + deliveryKeyLen
	statePending     = 1
	stateSent        = 2
	stateDead        = 3
	stateCancelled   = 4
	deliveryMaxState = stateCancelled
)

// stateCodes are the stored codes of the delivery states.
var stateCodes = map[persistence.DeliveryState]byte{
	persistence.DeliveryPending:   statePending,
	persistence.DeliverySent:      stateSent,
	persistence.DeliveryDead:      stateDead,
	persistence.DeliveryCancelled: stateCancelled,
}

// stateNames are the delivery states by stored code.
var stateNames = [...]persistence.DeliveryState{
	statePending:   persistence.DeliveryPending,
	stateSent:      persistence.DeliverySent,
	stateDead:      persistence.DeliveryDead,
	stateCancelled: persistence.DeliveryCancelled,
}

// storedDelivery is a decoded delivery record; its Notification is left empty.
type storedDelivery struct {
	persistence.Delivery
	key    []byte // the 16-byte id
	noteID []byte // the notification's key
	state  byte
}

func encodeDelivery(d *persistence.Delivery, noteID []byte) ([]byte, error) {
	state, ok := stateCodes[d.State]
	if !ok {
		return nil, fmt.Errorf("delivery %s in state %q", d.ID, d.State)
	}
	if len(noteID) != 16 {
		return nil, fmt.Errorf("delivery %s of notification key %x", d.ID, noteID)
	}
	b := make([]byte, deliveryHeader, deliveryHeader+3*binary.MaxVarintLen32+len(d.UserID)+len(d.Channel)+len(d.LastError))
	b[0] = deliveryVersion
	b[1] = state
	if d.UnreadOnly {
		b[2] |= flagUnreadOnly
	}
	if d.ByService {
		b[2] |= flagByService
	}
	binary.BigEndian.PutUint64(b[3:], uint64(d.Attempts))
	binary.BigEndian.PutUint64(b[11:], micros(d.DueAt))
	binary.BigEndian.PutUint64(b[19:], micros(d.CreatedAt))
	binary.BigEndian.PutUint64(b[27:], micros(d.UpdatedAt))
	copy(b[35:], noteID)
	b = appendString(b, d.UserID)
	b = appendString(b, string(d.Channel))
	b = appendString(b, d.LastError)
	return b, nil
}

// decodeDelivery decodes record v of delivery id. The result shares no memory with v.
func decodeDelivery(id, v []byte) (storedDelivery, error) {
	var d storedDelivery
	if len(v) < deliveryHeader || v[0] != deliveryVersion || v[1] == 0 || v[1] > deliveryMaxState || len(id) != deliveryKeyLen {
		return d, fmt.Errorf("%w: delivery record", errCorrupt)
	}
	d.key = bytes.Clone(id)
	d.ID = uuid.UUID(id).String()
	d.state = v[1]
	d.State = stateNames[d.state]
	d.UnreadOnly = v[2]&flagUnreadOnly != 0
	d.ByService = v[2]&flagByService != 0
	d.Attempts = int(binary.BigEndian.Uint64(v[3:]))
	d.DueAt = fromMicros(binary.BigEndian.Uint64(v[11:]))
	d.CreatedAt = fromMicros(binary.BigEndian.Uint64(v[19:]))
	d.UpdatedAt = fromMicros(binary.BigEndian.Uint64(v[27:]))
	d.noteID = bytes.Clone(v[35:51])
	d.NotificationID = uuid.UUID(d.noteID).String()
	r := reader{b: v[deliveryHeader:]}
	d.UserID = r.string()
	d.Channel = herald.Channel(r.string())
	d.LastError = r.string()
	if r.err != nil {
		return storedDelivery{}, fmt.Errorf("%w: delivery %s", errCorrupt, d.ID)
	}
	return d, nil
}

// dueKey is the due index key of delivery id due at due: timeBits(due) | id, so the
// index sorts by due time, then by id.
func dueKey(due time.Time, id []byte) []byte {
	b := make([]byte, 0, dueKeyLen)
	b = binary.BigEndian.AppendUint64(b, timeBits(due.UnixMicro()))
	return append(b, id...)
}

// dueEnd is the time part of the due index keys of deliveries due at or before now
// (stored in whole microseconds, so a now between two microseconds rounds down): a key
// is due exactly when its first timeKeyLen bytes sort at or before it.
func dueEnd(now time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, timeBits(now.UnixMicro()))
}

// stateKey is the state index key of delivery id in state: state code | id.
func stateKey(state byte, id []byte) []byte {
	b := make([]byte, 0, stateKeyLen)
	return append(append(b, state), id...)
}

// ---- digests ----
//
// A digest's key is userPrefix(user) | uvarint(len(type)) | type | rule: the user and
// the type are length-prefixed and the rule runs to the end, so the key decodes back
// into its three parts, and a user's digests sort together.
//
// A digest record is a fixed header followed by length-prefixed fields:
//
//	0      version (1)
//	1:9    openedAt, Unix microseconds
//	9:17   dueAt, Unix microseconds
//	17:25  count
//	25:    uvarint-length-prefixed senderId, object, then uvarint channel count and
//	       each channel length-prefixed, then uvarint item count and each item's
//	       idempotency key and payload, length-prefixed
//
// The payloads are kept as they came, byte for byte (a JSON encoding would compact
// them). dueAt sits at a fixed offset so a write finds the due index key of the digest
// it replaces without decoding the rest.

const (
	digestVersion = 1
	digestHeader  = 25
	offDigestDue  = 9
)

// digestKey is the digests key of k.
func digestKey(k persistence.DigestKey) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(k.UserID)+len(k.Type)+len(k.Rule))
	b = binary.AppendUvarint(b, uint64(len(k.UserID)))
	b = append(b, k.UserID...)
	b = appendString(b, k.Type)
	return append(b, k.Rule...)
}

// decodeDigestKey decodes a digestKey.
func decodeDigestKey(b []byte) (persistence.DigestKey, error) {
	r := reader{b: b}
	k := persistence.DigestKey{UserID: r.string(), Type: r.string()}
	if r.err != nil {
		return persistence.DigestKey{}, fmt.Errorf("%w: digest key %x", errCorrupt, b)
	}
	k.Rule = string(r.b)
	return k, nil
}

// digestDueKey is the digest due index key of the digest with key key due at due:
// timeBits(due) | key, so the index sorts by due time, then by key.
func digestDueKey(due time.Time, key []byte) []byte {
	b := make([]byte, 0, timeKeyLen+len(key))
	b = binary.BigEndian.AppendUint64(b, timeBits(due.UnixMicro()))
	return append(b, key...)
}

func encodeDigest(d *persistence.DigestBucket) []byte {
	size := digestHeader + 4*binary.MaxVarintLen32 + len(d.SenderID) + len(d.Object)
	for _, c := range d.Channels {
		size += binary.MaxVarintLen32 + len(c)
	}
	for _, it := range d.Items {
		size += 2*binary.MaxVarintLen32 + len(it.IdempotencyKey) + len(it.Payload)
	}
	b := make([]byte, digestHeader, size)
	b[0] = digestVersion
	binary.BigEndian.PutUint64(b[1:], micros(d.OpenedAt))
	binary.BigEndian.PutUint64(b[offDigestDue:], micros(d.DueAt))
	binary.BigEndian.PutUint64(b[17:], uint64(d.Count))
	b = appendString(b, d.SenderID)
	b = appendString(b, d.Object)
	b = binary.AppendUvarint(b, uint64(len(d.Channels)))
	for _, c := range d.Channels {
		b = appendString(b, string(c))
	}
	b = binary.AppendUvarint(b, uint64(len(d.Items)))
	for _, it := range d.Items {
		b = appendString(b, it.IdempotencyKey)
		b = binary.AppendUvarint(b, uint64(len(it.Payload)))
		b = append(b, it.Payload...)
	}
	return b
}

// digestDue returns the dueAt of digest record v without decoding the rest.
func digestDue(v []byte) (time.Time, error) {
	if len(v) < digestHeader || v[0] != digestVersion {
		return time.Time{}, fmt.Errorf("%w: digest record", errCorrupt)
	}
	return fromMicros(binary.BigEndian.Uint64(v[offDigestDue:])), nil
}

// decodeDigest decodes record v of the digest with key key. The result shares no
// memory with v.
func decodeDigest(key, v []byte) (persistence.DigestBucket, error) {
	var d persistence.DigestBucket
	k, err := decodeDigestKey(key)
	if err != nil {
		return d, err
	}
	if len(v) < digestHeader || v[0] != digestVersion {
		return d, fmt.Errorf("%w: digest record", errCorrupt)
	}
	d.Key = k
	d.OpenedAt = fromMicros(binary.BigEndian.Uint64(v[1:]))
	d.DueAt = fromMicros(binary.BigEndian.Uint64(v[offDigestDue:]))
	d.Count = int(binary.BigEndian.Uint64(v[17:]))
	r := reader{b: v[digestHeader:]}
	d.SenderID = r.string()
	d.Object = r.string()
	if n := r.count(); n > 0 {
		d.Channels = make([]herald.Channel, n)
		for i := range d.Channels {
			d.Channels[i] = herald.Channel(r.string())
		}
	}
	if n := r.count(); n > 0 {
		d.Items = make([]persistence.DigestItem, n)
		for i := range d.Items {
			d.Items[i].IdempotencyKey = r.string()
			d.Items[i].Payload = bytes.Clone(r.bytes())
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errCorrupt
	}
	if r.err != nil {
		return persistence.DigestBucket{}, fmt.Errorf("%w: digest %+v", errCorrupt, k)
	}
	return d, nil
}
