package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/persistence"
)

// sqlCopyNotes is the COPY that copyCreated feeds, in the column order of encodeCopy.
const sqlCopyNotes = `COPY notifications (id, receiver_id, seq, unread_after, created_at, read_at,
  sender_id, type, object, payload, channels, idem_key, idem_hash) FROM STDIN (FORMAT binary)`

// copyCreated inserts new notification rows by COPY, in one round trip. The rows are
// encoded here, in PostgreSQL's binary COPY format, into one buffer: no value is boxed
// into an interface and nothing is allocated per row.
func copyCreated(ctx context.Context, conn *pgx.Conn, rows []persistence.StoredNotification) error {
	pooled := copyBuffers.Get().(*[]byte)
	buf, err := encodeCopy(slices.Grow((*pooled)[:0], len(rows)*384), rows)
	if err != nil {
		copyBuffers.Put(pooled) // unused
		return err
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(buf), sqlCopyNotes); err != nil {
		// On some failures CopyFrom returns before its reader is done with buf: the
		// buffer is left to the collector.
		return err
	}
	if cap(buf) <= maxPooledCopy {
		*pooled = buf[:0]
		copyBuffers.Put(pooled)
	}
	return nil
}

// copyBuffers holds the buffers of past COPYs: a batch of 1,000 notifications encodes
// to a few hundred kilobytes.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledCopy is the largest buffer copyBuffers keeps.
const maxPooledCopy = 4 << 20

// The binary COPY format: a signature, flags and an empty header extension; per row
// the number of fields, then each field as its length (-1 for NULL) and its value in
// the type's binary (send/recv) form; a trailer of -1.
const (
	copySignature = "PGCOPY\n\xff\r\n\x00"
	textOID       = 25
	// pgEpochUnix is 2000-01-01T00:00:00Z, the zero of PostgreSQL timestamps, in Unix
	// seconds.
	pgEpochUnix = 946_684_800
)

func encodeCopy(buf []byte, rows []persistence.StoredNotification) ([]byte, error) {
	be := binary.BigEndian
	buf = append(buf, copySignature...)
	buf = be.AppendUint32(buf, 0) // flags
	buf = be.AppendUint32(buf, 0) // header extension length
	for i := range rows {
		r := &rows[i]
		id, ok := persistence.ParseID(r.ID)
		if !ok {
			return nil, fmt.Errorf("planned notification with non-canonical id %q", r.ID)
		}
		buf = be.AppendUint16(buf, 13)
		buf = appendBytes(buf, id[:])
		buf = appendText(buf, r.ReceiverID)
		buf = appendInt8(buf, r.Seq)
		buf = appendInt8(buf, r.UnreadAfter)
		buf = appendTime(buf, r.CreatedAt)
		if r.ReadAt != nil {
			buf = appendTime(buf, *r.ReadAt)
		} else {
			buf = appendNull(buf)
		}
		buf = appendText(buf, r.SenderID)
		buf = appendText(buf, r.Type)
		buf = appendText(buf, r.Object)
		if r.Payload != nil {
			buf = appendBytes(buf, r.Payload) // json's binary form is its text
		} else {
			buf = appendNull(buf)
		}
		// channels text[]: the array header, then the elements.
		size := 12
		if len(r.Channels) > 0 {
			size += 8
			for _, ch := range r.Channels {
				size += 4 + len(ch)
			}
		}
		buf = be.AppendUint32(buf, uint32(size))
		if len(r.Channels) == 0 {
			buf = be.AppendUint32(buf, 0) // dimensions
			buf = be.AppendUint32(buf, 0) // has nulls
			buf = be.AppendUint32(buf, textOID)
		} else {
			buf = be.AppendUint32(buf, 1)
			buf = be.AppendUint32(buf, 0)
			buf = be.AppendUint32(buf, textOID)
			buf = be.AppendUint32(buf, uint32(len(r.Channels))) // length of the dimension
			buf = be.AppendUint32(buf, 1)                       // its lower bound
			for _, ch := range r.Channels {
				buf = appendText(buf, string(ch))
			}
		}
		if r.IdempotencyKey != "" {
			buf = appendText(buf, r.IdempotencyKey)
			buf = appendBytes(buf, r.Fingerprint)
		} else {
			buf = appendNull(buf)
			buf = appendNull(buf)
		}
	}
	return be.AppendUint16(buf, 0xffff), nil
}

func appendNull(buf []byte) []byte { return binary.BigEndian.AppendUint32(buf, 0xffffffff) }

func appendBytes(buf, v []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

func appendText(buf []byte, v string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

func appendInt8(buf []byte, v int64) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(v))
}

// appendTime appends t as a timestamptz: microseconds since 2000-01-01 UTC.
func appendTime(buf []byte, t time.Time) []byte {
	us := (t.Unix()-pgEpochUnix)*1_000_000 + int64(t.Nanosecond()/1000)
	return appendInt8(buf, us)
}
