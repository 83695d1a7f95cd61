package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

// checkDigestIndex checks that digestdue holds exactly one key per digest, at its due
// time, with an empty value, and returns the stored digests.
func checkDigestIndex(t *testing.T, s *Store) []persistence.DigestBucket {
	t.Helper()
	var out []persistence.DigestBucket
	err := s.db.View(func(tx *bolt.Tx) error {
		b := open(tx)
		var want [][]byte
		err := b.digests.ForEach(func(k, v []byte) error {
			d, err := decodeDigest(k, v)
			if err != nil {
				return err
			}
			if !bytes.Equal(digestKey(d.Key), k) {
				t.Errorf("digest key %x decodes to %+v, which encodes to %x", k, d.Key, digestKey(d.Key))
			}
			out = append(out, d)
			want = append(want, digestDueKey(d.DueAt, k))
			return nil
		})
		if err != nil {
			return err
		}
		return checkIndex(t, "digestdue", b.digestDue, want, "one per digest")
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func digestNote(t testing.TB, receiver string, i int, rule string, window time.Duration) herald.NewNotification {
	n := newNote(t, receiver, i)
	n.Digest = &herald.Digest{Rule: rule, Window: window}
	return n
}

func dueDigests(t *testing.T, s *Store, now time.Time, limit int) []persistence.DigestKey {
	t.Helper()
	ks, err := s.DueDigests(t.Context(), now, limit)
	if err != nil {
		t.Fatalf("DueDigests: %v", err)
	}
	return ks
}

func flushOp(k persistence.DigestKey) persistence.Op {
	return persistence.Op{Kind: persistence.OpFlushDigest, Digest: k}
}

// writePlan writes plan in a transaction of its own, as Apply would.
func writePlan(t *testing.T, s *Store, plan persistence.Plan) bool {
	t.Helper()
	var changed bool
	if err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		changed, err = open(tx).write(&plan)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return changed
}

// checkDigestsWork opens, finds due and flushes a digest, checking the index along the
// way.
func checkDigestsWork(t *testing.T, s *Store) {
	t.Helper()
	now := persistence.Now()
	k := persistence.DigestKey{UserID: "quinn", Type: "test", Rule: "r"}
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		digestNote(t, "quinn", 1, "r", time.Minute), digestNote(t, "quinn", 2, "r", time.Minute)}})
	if ds := checkDigestIndex(t, s); len(ds) != 1 || ds[0].Key != k || ds[0].Count != 2 {
		t.Fatalf("digests: %+v", ds)
	}
	if ks := dueDigests(t, s, now.Add(time.Minute), 10); !slices.Equal(ks, []persistence.DigestKey{k}) {
		t.Fatalf("due: %+v", ks)
	}
	res := apply(t, s, now.Add(time.Minute), flushOp(k))
	if len(res[0].Notifications) != 1 || res[0].Notifications[0].ReceiverID != "quinn" {
		t.Fatalf("flush: %+v", res[0])
	}
	if ds := checkDigestIndex(t, s); len(ds) != 0 {
		t.Fatalf("digests after the flush: %+v", ds)
	}
}

// TestDigestCodec: digest keys decode back into their parts, whatever the parts hold,
// and records round-trip exactly, payloads byte for byte.
func TestDigestCodec(t *testing.T) {
	long := strings.Repeat("u", 300) // a length prefix of two bytes
	keys := []persistence.DigestKey{
		{UserID: "ann", Type: "project.updated", Rule: "hourly"},
		{},
		{UserID: "", Type: "", Rule: "r"},
		{UserID: "a\x00b", Type: "\x03xyz", Rule: "\x01\x02"},
		{UserID: long, Type: long, Rule: long},
		{UserID: "ann", Type: "t", Rule: ""},
	}
	seen := map[string]bool{}
	for _, k := range keys {
		enc := digestKey(k)
		if seen[string(enc)] {
			t.Errorf("two keys encode to %x", enc)
		}
		seen[string(enc)] = true
		got, err := decodeDigestKey(enc)
		if err != nil || got != k {
			t.Errorf("key %+v: decoded %+v, %v", k, got, err)
		}
		due := digestDueKey(time.Unix(5, 0), enc)
		if got, err := decodeDigestKey(due[timeKeyLen:]); err != nil || got != k {
			t.Errorf("due key of %+v: decoded %+v, %v", k, got, err)
		}
	}
	// A user's keys share the user's prefix, so they sort together.
	if a, b := digestKey(keys[0]), digestKey(keys[5]); !bytes.HasPrefix(a, userPrefix("ann")) || !bytes.HasPrefix(b, userPrefix("ann")) {
		t.Errorf("digest keys %x %x do not start with the user prefix", a, b)
	}
	if _, err := decodeDigestKey([]byte{5, 'a'}); !errors.Is(err, errCorrupt) {
		t.Errorf("decode of a short key: %v", err)
	}

	opened := stamp(time.Now())
	for _, d := range []persistence.DigestBucket{
		{
			Key: keys[0], OpenedAt: opened, DueAt: opened.Add(time.Hour), Count: 250,
			SenderID: "svc", Object: "project/1", Channels: []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail},
			Items: []persistence.DigestItem{
				{IdempotencyKey: "s:a", Payload: json.RawMessage(`{ "message" : "a <b> & c",  "x": [1, 2.50] }`)},
				{Payload: json.RawMessage("{\n\t\"u\": \"\\u00e9\"\n}")},
				{IdempotencyKey: "u:" + long, Payload: json.RawMessage(`{}`)},
			},
		},
		{Key: keys[4], OpenedAt: time.UnixMicro(-5).UTC(), DueAt: time.UnixMicro(-1).UTC(), Count: 1,
			Items: []persistence.DigestItem{{Payload: json.RawMessage(`{"n":1}`)}}},
		{Key: keys[1], OpenedAt: opened, DueAt: opened},
	} {
		k, v := digestKey(d.Key), encodeDigest(&d)
		got, err := decodeDigest(k, v)
		if err != nil {
			t.Fatalf("decode %+v: %v", d.Key, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("round trip\n%+v\nwant\n%+v", got, d)
		}
		for i := range d.Items {
			if !bytes.Equal(got.Items[i].Payload, d.Items[i].Payload) {
				t.Errorf("payload %d: %s, want %s", i, got.Items[i].Payload, d.Items[i].Payload)
			}
		}
		if at, err := digestDue(v); err != nil || !at.Equal(d.DueAt) {
			t.Errorf("digestDue = %v %v, want %v", at, err, d.DueAt)
		}
		for _, bad := range [][]byte{v[:digestHeader-1], v[:len(v)-1], append(bytes.Clone(v), 0), append([]byte{9}, v[1:]...)} {
			if _, err := decodeDigest(k, bad); !errors.Is(err, errCorrupt) {
				t.Errorf("decode of a damaged record of %+v: %v", d.Key, err)
			}
		}
		for i := range v { // the result shares no memory with the record
			v[i] ^= 0xff
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("decoded digest changed with its record")
		}
	}
}

// TestDigestPayloadsExact: held payloads are stored and flushed as they came, byte for
// byte, and a one-item digest is that item.
func TestDigestPayloadsExact(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	payloads := []string{`{ "message" : "a <b> & c" }`, "{\"message\":\"\\u00e9\",\n \"x\": 1.50}"}
	var items []herald.NewNotification
	for i, p := range payloads {
		n := digestNote(t, "ivy", i, "r", time.Hour)
		n.Payload = json.RawMessage(p)
		items = append(items, n)
	}
	one := digestNote(t, "ivy", 9, "solo", time.Hour)
	one.Payload = json.RawMessage(payloads[0])
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: items},
		persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{one}})
	ds := checkDigestIndex(t, s)
	if len(ds) != 2 {
		t.Fatalf("digests: %+v", ds)
	}
	for _, d := range ds {
		if d.Key.Rule != "r" {
			continue
		}
		if len(d.Items) != 2 || string(d.Items[0].Payload) != payloads[0] || string(d.Items[1].Payload) != payloads[1] {
			t.Errorf("stored items %+v", d.Items)
		}
		if !d.OpenedAt.Equal(now) || !d.DueAt.Equal(now.Add(time.Hour)) || d.Count != 2 || d.SenderID != herald.DefaultSenderID {
			t.Errorf("stored digest %+v", d)
		}
	}
	ks := dueDigests(t, s, now.Add(time.Hour), 10)
	if len(ks) != 2 {
		t.Fatalf("due: %+v", ks)
	}
	var ops []persistence.Op
	for _, k := range ks {
		ops = append(ops, flushOp(k))
	}
	res := apply(t, s, now.Add(time.Hour), ops...)
	for i, k := range ks {
		n := res[i].Notifications[0]
		if k.Rule == "solo" && string(n.Payload) != payloads[0] {
			t.Errorf("one-item digest payload %s, want %s", n.Payload, payloads[0])
		}
		// The stored notification reads back as the result has it.
		got, err := s.Get(t.Context(), "ivy", n.ID)
		if err != nil || !bytes.Equal(got.Payload, n.Payload) {
			t.Errorf("stored digest notification %s %v, want payload %s", got.Payload, err, n.Payload)
		}
	}
	if ds := checkDigestIndex(t, s); len(ds) != 0 {
		t.Errorf("digests after the flushes: %+v", ds)
	}
}

// TestDigestDueMoves: a digest written again with another dueAt moves its due index
// key; a delete takes the record and the key; deleting a digest that is not stored
// changes nothing.
func TestDigestDueMoves(t *testing.T) {
	s := openStore(t, t.TempDir())
	t0 := persistence.Now()
	k := persistence.DigestKey{UserID: "jo", Type: "t", Rule: "r"}
	d := persistence.DigestBucket{Key: k, OpenedAt: t0, DueAt: t0.Add(time.Hour), Count: 1,
		Items: []persistence.DigestItem{{Payload: json.RawMessage(`{}`)}}}
	if !writePlan(t, s, persistence.Plan{Digests: []persistence.DigestBucket{d}}) {
		t.Error("a new digest changed nothing")
	}
	checkDigestIndex(t, s)
	if writePlan(t, s, persistence.Plan{Digests: []persistence.DigestBucket{d}}) {
		t.Error("writing a digest as it is stored changed something")
	}
	d.DueAt = t0.Add(time.Minute)
	if !writePlan(t, s, persistence.Plan{Digests: []persistence.DigestBucket{d}}) {
		t.Error("moving a digest changed nothing")
	}
	if ds := checkDigestIndex(t, s); len(ds) != 1 || !ds[0].DueAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after the move: %+v", ds)
	}
	if ks := dueDigests(t, s, t0.Add(time.Minute), 10); !slices.Equal(ks, []persistence.DigestKey{k}) {
		t.Errorf("due at the new time: %+v", ks)
	}
	d.Count++ // same due time: the key stays
	if !writePlan(t, s, persistence.Plan{Digests: []persistence.DigestBucket{d}}) {
		t.Error("a changed digest changed nothing")
	}
	if ds := checkDigestIndex(t, s); len(ds) != 1 || ds[0].Count != 2 {
		t.Fatalf("after the count: %+v", ds)
	}
	other := persistence.DigestKey{UserID: "jo", Type: "t", Rule: "other"}
	if writePlan(t, s, persistence.Plan{DigestDeletes: []persistence.DigestKey{other}}) {
		t.Error("deleting a digest that is not stored changed something")
	}
	if !writePlan(t, s, persistence.Plan{DigestDeletes: []persistence.DigestKey{k}}) {
		t.Error("deleting a digest changed nothing")
	}
	if ds := checkDigestIndex(t, s); len(ds) != 0 {
		t.Errorf("after the delete: %+v", ds)
	}
}

// TestDueDigestsOrderAndLimit: due digests come earliest first, up to the limit, due
// at or before now to the microsecond.
func TestDueDigestsOrderAndLimit(t *testing.T) {
	s := openStore(t, t.TempDir())
	t0 := persistence.Now()
	windows := map[string]time.Duration{"c": 3 * time.Hour, "a": time.Hour, "b": 2 * time.Hour}
	var items []herald.NewNotification
	for rule, w := range windows {
		items = append(items, digestNote(t, "kim", 0, rule, w))
	}
	items = append(items, digestNote(t, "al", 0, "z", time.Hour)) // ties with "a": sorts first by key
	apply(t, s, t0, persistence.Op{Kind: persistence.OpCreate, Creates: items})
	rules := func(ks []persistence.DigestKey) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.UserID+"/"+k.Rule)
		}
		return out
	}
	later := t0.Add(4 * time.Hour)
	if got, want := rules(dueDigests(t, s, later, 10)), []string{"al/z", "kim/a", "kim/b", "kim/c"}; !slices.Equal(got, want) {
		t.Errorf("due = %v, want %v", got, want)
	}
	if got, want := rules(dueDigests(t, s, later, 3)), []string{"al/z", "kim/a", "kim/b"}; !slices.Equal(got, want) {
		t.Errorf("due, limit 3 = %v, want %v", got, want)
	}
	if got := dueDigests(t, s, later, 0); got != nil {
		t.Errorf("limit 0: %v", got)
	}
	if got := dueDigests(t, s, t0.Add(time.Hour-time.Nanosecond), 10); len(got) != 0 {
		t.Errorf("due a nanosecond early: %v", got)
	}
	if got := rules(dueDigests(t, s, t0.Add(2*time.Hour+time.Nanosecond), 10)); !slices.Equal(got, []string{"al/z", "kim/a", "kim/b"}) {
		t.Errorf("due a nanosecond late: %v", got)
	}
}

// TestDigestNoOpsWriteNothing: polling for due digests, replaying a held item and
// flushing a digest flushed already commit no transaction; holding one back and
// flushing commit one each.
func TestDigestNoOpsWriteNothing(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	k := persistence.DigestKey{UserID: "lu", Type: "test", Rule: "r"}
	held := digestNote(t, "lu", 1, "r", time.Minute)
	held.IdempotencyKey = "once"
	id := txID(t, s)
	dueDigests(t, s, now.Add(time.Hour), 10)
	apply(t, s, now, flushOp(k))
	if got := txID(t, s); got != id {
		t.Fatalf("a poll and a flush of nothing committed %d transactions", got-id)
	}
	res := apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{held}})
	if len(res[0].Digested) != 1 || !res[0].Digested[0] {
		t.Fatalf("held create: %+v", res[0])
	}
	if got := txID(t, s); got != id+1 {
		t.Fatalf("a held create committed %d transactions, want 1", got-id)
	}
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{held}})
	if got := txID(t, s); got != id+1 {
		t.Errorf("a replay of a held item committed %d transactions", got-id-1)
	}
	if ds := checkDigestIndex(t, s); len(ds) != 1 || ds[0].Count != 1 {
		t.Fatalf("digests: %+v", ds)
	}
	apply(t, s, now.Add(time.Minute), flushOp(k))
	apply(t, s, now.Add(time.Minute), flushOp(k))
	if got := txID(t, s); got != id+2 {
		t.Errorf("two flushes committed %d transactions, want 1", got-id-1)
	}
}

// TestDigestOpenAndFlushInOneBatch: a digest opened and flushed in the same batch is
// never stored, and its notification is.
func TestDigestOpenAndFlushInOneBatch(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	k := persistence.DigestKey{UserID: "mo", Type: "test", Rule: "r"}
	res := apply(t, s, now,
		persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{digestNote(t, "mo", 1, "r", 0)}}, // due at once
		flushOp(k),
		persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{digestNote(t, "mo", 2, "r", time.Minute)}})
	if len(res[1].Notifications) != 1 || string(res[1].Notifications[0].Payload) != `{"i":1}` {
		t.Fatalf("flush: %+v", res[1])
	}
	ds := checkDigestIndex(t, s)
	if len(ds) != 1 || ds[0].Count != 1 || string(ds[0].Items[0].Payload) != `{"i":2}` {
		t.Fatalf("digests: %+v", ds)
	}
	if n, err := s.UnreadCount(t.Context(), "mo"); err != nil || n != 1 {
		t.Errorf("unread: %d %v", n, err)
	}
}

// TestDigestCorruptRecord: a damaged digest record fails the batch that needs it as an
// internal error, and DueDigests too, rather than being taken for no digest.
func TestDigestCorruptRecord(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := persistence.Now()
	k := persistence.DigestKey{UserID: "ned", Type: "test", Rule: "r"}
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{digestNote(t, "ned", 1, "r", time.Minute)}})
	s.Close()
	tamper(t, dir, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDigests).Put(digestKey(k), []byte{digestVersion, 1, 2})
	})
	s = openStore(t, dir)
	if _, err := s.Apply(t.Context(), now, []persistence.Op{flushOp(k)}); herald.ErrorCode(err) != herald.CodeInternal {
		t.Errorf("flush of a damaged digest: %v", err)
	}
	if _, err := s.DueDigests(t.Context(), now.Add(time.Minute), 10); herald.ErrorCode(err) != herald.CodeInternal {
		t.Errorf("DueDigests over a damaged digest: %v", err)
	}
}

// TestOpenUpgradesVersion3: a version 3 file, from before digests, opens and gets the
// digest buckets; its notifications, log and outbox stay as they were.
func TestOpenUpgradesVersion3(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logAtHours(t, s, persistence.Now().Add(-10*time.Hour))
	now := persistence.Now()
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		withChannels(newNote(t, "pat", 1), herald.ChannelEmail)}})
	if err := storetest.SetContact(t, s, "pat", persistence.Contact{Email: "pat@example.com"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	tamper(t, dir, func(tx *bolt.Tx) error {
		if err := toVersion(tx, versionNoDigests); err != nil {
			return err
		}
		return dropBuckets(tx, digestBuckets)
	})

	s = openStore(t, dir)
	if got, want := logKeys(t, s), []string{"alice:4", "alice:5", "alice:6", "bob:4", "bob:5"}; !slices.Equal(got, want) {
		t.Fatalf("log after upgrade = %v, want %v", got, want)
	}
	if ds := claimAt(t, s, now, 10); len(ds) != 1 || ds[0].UserID != "pat" {
		t.Errorf("claim after upgrade: %+v", ds)
	}
	if c, err := s.Contact(t.Context(), "pat"); err != nil || c.Email != "pat@example.com" {
		t.Errorf("contact after upgrade: %+v %v", c, err)
	}
	if ks := dueDigests(t, s, now.Add(time.Hour), 10); len(ks) != 0 {
		t.Errorf("due digests of an upgraded file: %v", ks)
	}
	checkDigestsWork(t, s)
	checkIndexes(t, s)
	// One left open across the reopen.
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{digestNote(t, "pat", 2, "r", time.Minute)}})
	s.Close()
	if v := fileVersion(t, dir); !bytes.Equal(v, []byte{formatVersion}) {
		t.Errorf("version after upgrade = %x, want %d", v, formatVersion)
	}
	s = openStore(t, dir)
	want := []persistence.DigestKey{{UserID: "pat", Type: "test", Rule: "r"}}
	if ks := dueDigests(t, s, now.Add(time.Minute), 10); !slices.Equal(ks, want) {
		t.Errorf("after reopen: due %+v, want %+v", ks, want)
	}
}

// TestOpenUpgradesVersion3Leftovers: should a version 3 file hold digest buckets (no
// build writes that), the digests are kept and their due index rebuilt.
func TestOpenUpgradesVersion3Leftovers(t *testing.T) {
	for _, c := range []struct {
		name string
		old  func(tx *bolt.Tx) error
	}{
		{"no index", func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketDigestDue) }},
		{"stale index", func(tx *bolt.Tx) error {
			// A key of a digest that does not exist, due before every real one.
			return tx.Bucket(bucketDigestDue).Put(digestDueKey(time.Unix(1, 0), digestKey(persistence.DigestKey{UserID: "x"})), nil)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			now := persistence.Now()
			apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
				digestNote(t, "rae", 1, "r", time.Minute), digestNote(t, "sam", 1, "r", time.Hour)}})
			s.Close()
			tamper(t, dir, func(tx *bolt.Tx) error {
				if err := toVersion(tx, versionNoDigests); err != nil {
					return err
				}
				return c.old(tx)
			})

			s = openStore(t, dir)
			if ds := checkDigestIndex(t, s); len(ds) != 2 {
				t.Fatalf("digests after upgrade: %+v", ds)
			}
			want := []persistence.DigestKey{{UserID: "rae", Type: "test", Rule: "r"}, {UserID: "sam", Type: "test", Rule: "r"}}
			if ks := dueDigests(t, s, now.Add(time.Hour), 10); !slices.Equal(ks, want) {
				t.Errorf("due after upgrade: %+v, want %+v", ks, want)
			}
		})
	}
}
