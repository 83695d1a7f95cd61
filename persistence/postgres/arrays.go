package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The column types: one statement parameter holding a whole column of a batch (the
// arrays that INSERT … SELECT FROM unnest(…) and = ANY(…) take), written straight into
// PostgreSQL's binary array format. pgx's generic array encoding boxes every element
// into an interface (an allocation for most element types) and looks up its encoder
// each time; these write an array in one pass with no allocation of their own.
// registerArrays teaches a connection's type map to use them.
type (
	textArray  []string    // text[]
	int8Array  []int64     // int8[]
	uuidArray  [][16]byte  // uuid[]
	timeArray  []time.Time // timestamptz[]; the zero time is NULL
	byteaArray [][]byte    // bytea[]; a nil element is NULL
	// bytesText is a text[] of byte strings (JSON payloads, which the statement casts);
	// a nil element is NULL.
	bytesText [][]byte
)

// Element and array type OIDs (pg_type).
const (
	int8OID             = 20
	byteaOID            = 17
	timestamptzOID      = 1184
	uuidOID             = 2950
	textArrayOID        = 1009
	int8ArrayOID        = 1016
	byteaArrayOID       = 1001
	timestamptzArrayOID = 1185
	uuidArrayOID        = 2951
)

// binaryArray is a column type: its array type and its binary form.
type binaryArray interface {
	arrayOID() uint32
	// appendArray appends the array's binary form (array_send) to buf, and returns
	// nil (SQL NULL) for a nil slice, as pgx does.
	appendArray(buf []byte) []byte
	// binarySize is the length of that binary form, at most.
	binarySize() int
}

// arrayHeaderSize is the most bytes appendArrayHeader appends; a field's length takes 4.
const arrayHeaderSize = 20

func (a textArray) binarySize() int {
	n := arrayHeaderSize + 4*len(a)
	for _, s := range a {
		n += len(s)
	}
	return n
}
func (a int8Array) binarySize() int  { return arrayHeaderSize + 12*len(a) }
func (a uuidArray) binarySize() int  { return arrayHeaderSize + 20*len(a) }
func (a timeArray) binarySize() int  { return arrayHeaderSize + 12*len(a) }
func (a byteaArray) binarySize() int { return bytesArraySize(a) }
func (a bytesText) binarySize() int  { return bytesArraySize(a) }

func bytesArraySize(a [][]byte) int {
	n := arrayHeaderSize + 4*len(a)
	for _, b := range a {
		n += len(b)
	}
	return n
}

func (a textArray) arrayOID() uint32  { return textArrayOID }
func (a int8Array) arrayOID() uint32  { return int8ArrayOID }
func (a uuidArray) arrayOID() uint32  { return uuidArrayOID }
func (a timeArray) arrayOID() uint32  { return timestamptzArrayOID }
func (a byteaArray) arrayOID() uint32 { return byteaArrayOID }
func (a bytesText) arrayOID() uint32  { return textArrayOID }

func (a textArray) appendArray(buf []byte) []byte {
	if a == nil {
		return nil
	}
	buf = appendArrayHeader(buf, textOID, len(a), false)
	for _, s := range a {
		buf = appendText(buf, s)
	}
	return buf
}

func (a int8Array) appendArray(buf []byte) []byte {
	if a == nil {
		return nil
	}
	buf = appendArrayHeader(buf, int8OID, len(a), false)
	for _, v := range a {
		buf = appendInt8(buf, v)
	}
	return buf
}

func (a uuidArray) appendArray(buf []byte) []byte {
	if a == nil {
		return nil
	}
	buf = appendArrayHeader(buf, uuidOID, len(a), false)
	for i := range a {
		buf = appendBytes(buf, a[i][:])
	}
	return buf
}

func (a timeArray) appendArray(buf []byte) []byte {
	if a == nil {
		return nil
	}
	nulls := false
	for i := range a {
		nulls = nulls || a[i].IsZero()
	}
	buf = appendArrayHeader(buf, timestamptzOID, len(a), nulls)
	for i := range a {
		if a[i].IsZero() {
			buf = appendNull(buf)
		} else {
			buf = appendTime(buf, a[i])
		}
	}
	return buf
}

func (a byteaArray) appendArray(buf []byte) []byte { return appendBytesArray(buf, byteaOID, a) }
func (a bytesText) appendArray(buf []byte) []byte  { return appendBytesArray(buf, textOID, a) }

// appendBytesArray appends an array of elem, whose binary form is the bytes themselves
// (bytea, text).
func appendBytesArray(buf []byte, elem uint32, a [][]byte) []byte {
	if a == nil {
		return nil
	}
	nulls := false
	for _, b := range a {
		nulls = nulls || b == nil
	}
	buf = appendArrayHeader(buf, elem, len(a), nulls)
	for _, b := range a {
		if b == nil {
			buf = appendNull(buf)
		} else {
			buf = appendBytes(buf, b)
		}
	}
	return buf
}

// appendArrayHeader appends the header of a one-dimensional array of n elements of type
// elem: an empty array has no dimension, as PostgreSQL sends one.
func appendArrayHeader(buf []byte, elem uint32, n int, nulls bool) []byte {
	be := binary.BigEndian
	if n == 0 {
		buf = be.AppendUint32(buf, 0) // dimensions
		buf = be.AppendUint32(buf, 0) // has nulls
		return be.AppendUint32(buf, elem)
	}
	buf = be.AppendUint32(buf, 1)
	if nulls {
		buf = be.AppendUint32(buf, 1)
	} else {
		buf = be.AppendUint32(buf, 0)
	}
	buf = be.AppendUint32(buf, elem)
	buf = be.AppendUint32(buf, uint32(n)) // length of the dimension
	return be.AppendUint32(buf, 1)        // its lower bound
}

// arrayCodec is pgx's codec of one array type, which hands the column types to
// arrayPlan and everything else (other Go types, decoding) to pgx's own.
type arrayCodec struct{ pgtype.Codec }

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if a, ok := value.(binaryArray); ok && format == pgtype.BinaryFormatCode && a.arrayOID() == oid {
		return arrayPlan{}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// arrayPlan encodes a column type.
type arrayPlan struct{}

func (arrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	a := value.(binaryArray)
	// buf holds the statement's parameters so far and is pgx's, which drops it when it
	// grew past 256 bytes: made room for at once (and for as much again, for the
	// statement's next columns), an array costs one allocation instead of a chain of
	// appends' regrowths.
	if need := a.binarySize(); cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need+len(buf))
	}
	return a.appendArray(buf), nil
}

// registerArrays makes conn encode the column types with arrayPlan. It is the pool's
// AfterConnect: it runs once per connection, before its first statement.
func registerArrays(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	for _, oid := range []uint32{textArrayOID, int8ArrayOID, uuidArrayOID, timestamptzArrayOID, byteaArrayOID} {
		t, ok := m.TypeForOID(oid)
		if !ok {
			return fmt.Errorf("postgres: pgx knows no type %d", oid)
		}
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: oid, Codec: arrayCodec{t.Codec}})
	}
	return nil
}
