package postgres

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

var (
	arrayTime  = time.Date(2026, 12, 2, 4, 5, 6, 789_123_000, time.UTC)
	arrayEarly = time.Date(1969, 7, 20, 20, 17, 40, 1_000, time.FixedZone("", -5*3600))
)

// arrayCase is a column type's value and the value pgx encodes the same array from, or
// scans it back into.
type arrayCase struct {
	name    string
	col     binaryArray
	generic any
}

func arrayCases() []arrayCase {
	return []arrayCase{
		{"text", textArray{"user-1", "", "Zoë ✓", "a,b", `"{}"\`}, []string{"user-1", "", "Zoë ✓", "a,b", `"{}"\`}},
		{"int8", int8Array{0, 1, -1, 1 << 62, -1 << 63}, []int64{0, 1, -1, 1 << 62, -1 << 63}},
		{"uuid", uuidArray{{1, 2, 3}, {15: 0xff}}, [][16]byte{{1, 2, 3}, {15: 0xff}}},
		{"timestamptz", timeArray{arrayTime, {}, arrayEarly}, pgtype.FlatArray[pgtype.Timestamptz]{
			{Time: arrayTime, Valid: true}, {}, {Time: arrayEarly, Valid: true}}},
		{"bytea", byteaArray{{0, 1, 2}, nil, {}}, pgtype.FlatArray[[]byte]{{0, 1, 2}, nil, {}}},
		{"bytes as text", bytesText{[]byte(`{"a":1}`), nil, []byte(`[]`)}, pgtype.FlatArray[[]byte]{[]byte(`{"a":1}`), nil, []byte(`[]`)}},
	}
}

// TestArraysEncodeAsPgx: each column type encodes, byte for byte, as pgx's generic
// array encoding of the same elements, NULL elements included.
func TestArraysEncodeAsPgx(t *testing.T) {
	m := pgtype.NewMap() // pgx's own codecs only
	for _, c := range arrayCases() {
		want, err := m.Encode(c.col.arrayOID(), pgtype.BinaryFormatCode, c.generic, nil)
		if err != nil {
			t.Fatalf("%s: pgx: %v", c.name, err)
		}
		if got := c.col.appendArray([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, got[len("prefix"):], want)
		}
	}
}

// TestArraySizes: binarySize bounds each column type's binary form, for the arrays of
// arrayCases and for empty ones, and the plan encodes into room it made at once.
func TestArraySizes(t *testing.T) {
	cases := arrayCases()
	cases = append(cases, arrayCase{name: "empty text", col: textArray{}}, arrayCase{name: "empty bytea", col: byteaArray{}})
	for _, c := range cases {
		if got, size := len(c.col.appendArray(nil)), c.col.binarySize(); got > size {
			t.Errorf("%s: %d bytes, binarySize %d", c.name, got, size)
		}
	}
	col := textArray{"user-1", "user-2", "user-3"}
	buf := make([]byte, 3, 8)
	got, err := arrayPlan{}.Encode(col, buf)
	if err != nil || !bytes.Equal(got[3:], col.appendArray(nil)) || cap(got) < col.binarySize()+3 {
		t.Fatalf("Encode: % x (cap %d), %v", got, cap(got), err)
	}
}

// TestArraysOnTheServer: a store's connections encode the column types themselves, and
// PostgreSQL reads back each one as it was sent: values, NULL elements, empty arrays and
// a nil column (NULL).
func TestArraysOnTheServer(t *testing.T) {
	s := open(t, 0)
	ctx := t.Context()
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	conn := c.Conn()
	empties := []binaryArray{textArray{}, int8Array{}, uuidArray{}, timeArray{}, byteaArray{}, bytesText{}}
	nils := []binaryArray{textArray(nil), int8Array(nil), uuidArray(nil), timeArray(nil), byteaArray(nil), bytesText(nil)}
	for i, tc := range arrayCases() {
		if plan := conn.TypeMap().PlanEncode(tc.col.arrayOID(), pgtype.BinaryFormatCode, tc.col); plan != (arrayPlan{}) {
			t.Fatalf("%s: the connection encodes it with %T, not arrayPlan", tc.name, plan)
		}
		cast := map[uint32]string{textArrayOID: "text[]", int8ArrayOID: "int8[]", uuidArrayOID: "uuid[]",
			timestamptzArrayOID: "timestamptz[]", byteaArrayOID: "bytea[]"}[tc.col.arrayOID()]
		var text string
		var n, empty int
		var null bool
		err := conn.QueryRow(ctx, `SELECT $1::`+cast+`::text, cardinality($1::`+cast+`), cardinality($2::`+cast+`), $3::`+cast+` IS NULL`,
			tc.col, empties[i], nils[i]).Scan(&text, &n, &empty, &null)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var want string
		if err := conn.QueryRow(ctx, `SELECT $1::`+cast+`::text`, tc.generic).Scan(&want); err != nil {
			t.Fatalf("%s: generic: %v", tc.name, err)
		}
		if text != want || n != arrayLen(tc.col) || empty != 0 || !null {
			t.Errorf("%s: read back %s (%d elements), empty has %d, nil is NULL: %v; want %s (%d), 0, true",
				tc.name, text, n, empty, null, want, arrayLen(tc.col))
		}
	}
	// The round trip keeps the instants and the NULLs of a timestamptz column.
	var back []pgtype.Timestamptz
	if err := conn.QueryRow(ctx, `SELECT $1::timestamptz[]`, timeArray{arrayTime, {}, arrayEarly}).Scan(&back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || !back[0].Time.Equal(arrayTime) || back[1].Valid || !back[2].Time.Equal(arrayEarly) {
		t.Errorf("timestamptz round trip: %v", back)
	}
	var texts []string
	if err := conn.QueryRow(ctx, `SELECT $1::text[]`, textArray{"Zoë ✓", ""}).Scan(&texts); err != nil || !slices.Equal(texts, []string{"Zoë ✓", ""}) {
		t.Errorf("text round trip: %q, %v", texts, err)
	}
}

func arrayLen(a binaryArray) int {
	switch a := a.(type) {
	case textArray:
		return len(a)
	case int8Array:
		return len(a)
	case uuidArray:
		return len(a)
	case timeArray:
		return len(a)
	case byteaArray:
		return len(a)
	case bytesText:
		return len(a)
	}
	return -1
}
