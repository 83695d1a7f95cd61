package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

func openTemp(t *testing.T, retention time.Duration) persistence.Store {
	s, err := Open(t.TempDir(), Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openTemp)
}

func newNote(t testing.TB, receiver string, i int) herald.NewNotification {
	n := herald.NewNotification{ReceiverID: receiver, Type: "test", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := persistence.Now()
	key := newNote(t, "alice", 2)
	key.IdempotencyKey = "k"
	res, err := s.Apply(t.Context(), now, []persistence.Op{
		{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, "alice", 1), key}},
	})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	first, keyed := res[0].Notifications[0], res[0].Notifications[1]
	if _, err := s.Apply(t.Context(), now, []persistence.Op{{Kind: persistence.OpMarkRead, UserID: "alice", ID: first.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(t.Context(), "alice", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReadAt == nil || !got.ReadAt.Equal(now) || got.Seq != 1 {
		t.Errorf("after reopen: %+v, want seq 1 read at %s", got, now)
	}
	p, err := s.Events(t.Context(), "alice", 0, 10)
	if err != nil || len(p.Entries) != 3 || p.Seq != 3 {
		t.Fatalf("after reopen: Events = %+v, %v; want 3 entries", p, err)
	}
	if c, _ := s.UnreadCount(t.Context(), "alice"); c != 1 {
		t.Errorf("after reopen: UnreadCount = %d, want 1", c)
	}
	// The idempotency key survived too.
	res, err = s.Apply(t.Context(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: []herald.NewNotification{key}}})
	if err != nil || !res[0].Replayed[0] || res[0].Notifications[0].ID != keyed.ID {
		t.Errorf("after reopen: replay = %+v, %v", res, err)
	}
	// The seq goes on.
	res, err = s.Apply(t.Context(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, "alice", 3)}}})
	if err != nil || res[0].Notifications[0].Seq != 4 {
		t.Errorf("after reopen: next create = %+v, %v; want seq 4", res, err)
	}
}

func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := Open(dir, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a dir in use succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v, want ErrInUse", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %s", d)
	}
	t.Logf("second Open: %v", err)
	// Once the first closes, the dir opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apply(t *testing.T, s *Store, now time.Time, ops ...persistence.Op) []persistence.Result {
	t.Helper()
	res, err := s.Apply(t.Context(), now, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("op %d: %v", i, r.Err)
		}
	}
	return res
}

func createOp(t *testing.T, user string, n int) persistence.Op {
	op := persistence.Op{Kind: persistence.OpCreate}
	for i := range n {
		op.Creates = append(op.Creates, newNote(t, user, i))
	}
	return op
}

func markReadOp(user, id string) persistence.Op {
	return persistence.Op{Kind: persistence.OpMarkRead, UserID: user, ID: id}
}

func readAllOp(user string) persistence.Op {
	return persistence.Op{Kind: persistence.OpReadAll, UserID: user}
}

// txID returns the id of the file's last committed transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// checkIndex checks that index bucket idx holds exactly the keys want (in any order),
// each with an empty value; what says what want is, for the failure message.
func checkIndex(t *testing.T, name string, idx *bolt.Bucket, want [][]byte, what string) error {
	t.Helper()
	var got [][]byte
	err := idx.ForEach(func(k, v []byte) error {
		if len(v) != 0 {
			t.Errorf("%s value %x, want empty", name, v)
		}
		got = append(got, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(want, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("%s keys\n%x\nwant %s\n%x", name, got, what, want)
	}
	return nil
}

// logKeys returns the user:seq of every log row, checking that logtime holds exactly
// one key per row, at the row's time.
func logKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var rows []string
	err := s.db.View(func(tx *bolt.Tx) error {
		var want [][]byte
		err := tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
			at, err := logAt(v)
			if err != nil {
				return err
			}
			want = append(want, timeKey(at, k))
			n, w := int(k[0]), 1 // user IDs in these tests are shorter than 128 bytes
			rows = append(rows, fmt.Sprintf("%s:%d", k[w:w+n], keySeq(k)))
			return nil
		})
		if err != nil {
			return err
		}
		return checkIndex(t, "logtime", tx.Bucket(bucketLogTime), want, "one per log row")
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows
}

// logAtHours writes, for alice and bob with three notifications each (seq 1-3) created
// at base, read and read-all entries at base plus 1 to 5 hours:
//
//	+1h alice 4   +2h bob 4   +3h alice 5   +4h bob 5   +5h alice 6
func logAtHours(t *testing.T, s *Store, base time.Time) {
	t.Helper()
	hour := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	res := apply(t, s, base, createOp(t, "alice", 3), createOp(t, "bob", 3))
	alice, bob := res[0].Notifications, res[1].Notifications
	apply(t, s, hour(1), markReadOp("alice", alice[0].ID))
	apply(t, s, hour(2), markReadOp("bob", bob[0].ID))
	apply(t, s, hour(3), markReadOp("alice", alice[1].ID))
	apply(t, s, hour(4), readAllOp("bob"))
	apply(t, s, hour(5), readAllOp("alice"))
}

func prune(t *testing.T, s *Store, cutoff time.Time) int64 {
	t.Helper()
	n, err := storetest.Prune(t, s, cutoff)
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	return n
}

// checkPrunedAtHour3 checks the store of logAtHours after a Prune at base+3h.
func checkPrunedAtHour3(t *testing.T, s *Store) {
	t.Helper()
	if got, want := logKeys(t, s), []string{"alice:5", "alice:6", "bob:5"}; !slices.Equal(got, want) {
		t.Errorf("log after Prune = %v, want %v", got, want)
	}
	seqs := func(p persistence.EventsPage) []int64 {
		var out []int64
		for _, e := range p.Entries {
			out = append(out, e.Seq)
		}
		return out
	}
	for _, c := range []struct {
		user  string
		since int64
		reset bool
		seqs  []int64
	}{
		{"alice", 0, true, nil}, // creations stay, but seq 4 is gone
		{"alice", 3, true, nil},
		{"alice", 4, false, []int64{5, 6}},
		{"alice", 5, false, []int64{6}},
		{"bob", 3, true, nil},
		{"bob", 4, false, []int64{5}},
	} {
		p, err := s.Events(t.Context(), c.user, c.since, 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.Reset != c.reset || !slices.Equal(seqs(p), c.seqs) {
			t.Errorf("Events(%s, %d) = seqs %v reset %v; want %v reset %v", c.user, c.since, seqs(p), p.Reset, c.seqs, c.reset)
		}
	}
	p, err := s.Events(t.Context(), "alice", 4, 100)
	if err == nil && len(p.Entries) == 2 {
		if e := p.Entries[0]; e.Event != herald.EventRead || e.Notification == nil || e.Unread != 1 {
			t.Errorf("alice seq 5 = %+v, want the read of her second notification", e)
		}
		if e := p.Entries[1]; e.Event != herald.EventReadAll || e.ReadAll == nil || e.ReadAll.Updated != 1 {
			t.Errorf("alice seq 6 = %+v, want a read-all of 1", e)
		}
	}
}

func TestPrune(t *testing.T) {
	s := openStore(t, t.TempDir())
	base := persistence.Now().Add(-10 * time.Hour)
	hour3 := base.Add(3 * time.Hour)
	if n := prune(t, s, time.Now()); n != 0 {
		t.Errorf("Prune of an empty log = %d", n)
	}
	logAtHours(t, s, base)
	if got, want := logKeys(t, s), []string{"alice:4", "alice:5", "alice:6", "bob:4", "bob:5"}; !slices.Equal(got, want) {
		t.Fatalf("log = %v, want %v", got, want)
	}

	// Before base+3h: alice 4 (+1h) and bob 4 (+2h); alice 5, at exactly +3h, stays.
	if n := prune(t, s, hour3); n != 2 {
		t.Errorf("Prune(+3h) = %d, want 2", n)
	}
	checkPrunedAtHour3(t, s)

	// Nothing more before the same cutoff: no transaction is committed.
	id := txID(t, s)
	if n := prune(t, s, hour3); n != 0 {
		t.Errorf("second Prune(+3h) = %d, want 0", n)
	}
	if n := prune(t, s, base); n != 0 {
		t.Errorf("Prune(base) = %d, want 0", n)
	}
	if got := txID(t, s); got != id {
		t.Errorf("Prune with nothing to delete moved the transaction id from %d to %d", id, got)
	}

	// A cutoff a nanosecond past +3h is after alice 5, kept in whole microseconds.
	if n := prune(t, s, hour3.Add(time.Nanosecond)); n != 1 {
		t.Errorf("Prune(+3h+1ns) = %d, want 1", n)
	}
	if got, want := logKeys(t, s), []string{"alice:6", "bob:5"}; !slices.Equal(got, want) {
		t.Errorf("log = %v, want %v", got, want)
	}
	if got := txID(t, s); got != id+1 {
		t.Errorf("Prune of one entry committed %d transactions, want 1", got-id)
	}

	// The log goes on, indexed.
	apply(t, s, persistence.Now(), createOp(t, "alice", 1), readAllOp("alice"))
	if got, want := logKeys(t, s), []string{"alice:6", "alice:8", "bob:5"}; !slices.Equal(got, want) {
		t.Errorf("log = %v, want %v", got, want)
	}
	if n := prune(t, s, time.Now().Add(time.Hour)); n != 3 {
		t.Errorf("Prune(everything) = %d, want 3", n)
	}
	if got := logKeys(t, s); len(got) != 0 {
		t.Errorf("log after pruning everything = %v", got)
	}
}

// TestPruneChunks: a Prune larger than a chunk takes one transaction per chunk and no
// empty one after the last, even when the old entries fill the chunks exactly.
func TestPruneChunks(t *testing.T) {
	s := openStore(t, t.TempDir())
	s.pruneChunk = 3
	old := persistence.Now().Add(-2 * time.Hour)
	entries := func(at time.Time, users ...string) {
		var ops []persistence.Op
		for _, u := range users {
			ops = append(ops, createOp(t, u, 1), readAllOp(u))
		}
		apply(t, s, at, ops...)
	}
	entries(persistence.Now(), "a", "g")
	cutoff := persistence.Now().Add(-time.Hour)
	for _, c := range []struct {
		users   []string
		commits int
	}{
		{[]string{"a", "b", "c", "d", "e", "f"}, 2},
		{[]string{"a", "b", "c", "d"}, 2},
		{[]string{"a", "b"}, 1},
		{nil, 0},
	} {
		if c.users != nil {
			entries(old, c.users...)
		}
		id := txID(t, s)
		if n := prune(t, s, cutoff); n != int64(len(c.users)) {
			t.Errorf("Prune of %d old entries = %d", len(c.users), n)
		}
		if got := txID(t, s) - id; got != c.commits {
			t.Errorf("Prune of %d old entries in chunks of 3 committed %d transactions, want %d", len(c.users), got, c.commits)
		}
		if got, want := logKeys(t, s), []string{"a:2", "g:2"}; !slices.Equal(got, want) {
			t.Errorf("log after Prune = %v, want the recent %v", got, want)
		}
	}
}

// tamper changes the closed store file in dir with fn.
func tamper(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// fileVersion returns the version in the closed store file in dir.
func fileVersion(t *testing.T, dir string) []byte {
	t.Helper()
	var v []byte
	tamper(t, dir, func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
	return v
}

// TestOpenUpgradesVersion1: a version 1 file, which had no logtime index, gets one on
// Open, and Prune works on it.
func TestOpenUpgradesVersion1(t *testing.T) {
	for _, c := range []struct {
		name string
		old  func(tx *bolt.Tx) error // what the file has instead of the index
	}{
		{"no index", func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLogTime) }},
		{"stale index", func(tx *bolt.Tx) error {
			// A key for a log row that does not exist, older than every real one.
			return tx.Bucket(bucketLogTime).Put(timeKey(time.Unix(1, 0), seqKey("carol", 1)), nil)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			base := persistence.Now().Add(-10 * time.Hour)
			logAtHours(t, s, base)
			s.Close()
			tamper(t, dir, func(tx *bolt.Tx) error {
				if err := toVersion(tx, versionNoLogTime); err != nil {
					return err
				}
				if err := dropBuckets(tx, outboxBuckets); err != nil { // version 1 had none
					return err
				}
				if err := dropBuckets(tx, digestBuckets); err != nil { // nor these
					return err
				}
				return c.old(tx)
			})

			s = openStore(t, dir)
			if got, want := logKeys(t, s), []string{"alice:4", "alice:5", "alice:6", "bob:4", "bob:5"}; !slices.Equal(got, want) {
				t.Fatalf("log after upgrade = %v, want %v", got, want)
			}
			if n := prune(t, s, base.Add(3*time.Hour)); n != 2 {
				t.Errorf("Prune(+3h) after upgrade = %d, want 2", n)
			}
			checkPrunedAtHour3(t, s)
			apply(t, s, persistence.Now(), readAllOp("bob"), createOp(t, "bob", 1), readAllOp("bob"))
			if got, want := logKeys(t, s), []string{"alice:5", "alice:6", "bob:5", "bob:7"}; !slices.Equal(got, want) {
				t.Errorf("log after a write = %v, want %v", got, want)
			}
			s.Close()
			if v := fileVersion(t, dir); !bytes.Equal(v, []byte{formatVersion}) {
				t.Errorf("version after upgrade = %x, want %d", v, formatVersion)
			}
			// The upgraded file opens as it is, with an outbox.
			s = openStore(t, dir)
			if got := len(logKeys(t, s)); got != 4 {
				t.Errorf("after reopen: %d log rows, want 4", got)
			}
			checkOutboxWorks(t, s)
			checkDigestsWork(t, s)
		})
	}
}

// TestOpenRefusesUnknownFormat: a file this build cannot read fails Open with a clear
// error and is left as it was.
func TestOpenRefusesUnknownFormat(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(tx *bolt.Tx) error
		want    error
		message string
	}{
		{"newer version", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte{formatVersion + 1})
		}, ErrFormat, fmt.Sprintf("format version %d is newer than this build reads (%d)", formatVersion+1, formatVersion)},
		{"version 0", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0})
		}, ErrFormat, "unknown format version 0"},
		{"long version", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, formatVersion})
		}, ErrFormat, "not one byte"},
		{"no version", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keyVersion)
		}, ErrFormat, "no format version"},
		{"not a herald file", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketMeta)
		}, ErrFormat, "not a Herald store"},
		{"index missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketLogTime)
		}, errCorrupt, "bucket logtime is missing"},
		{"outbox missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketDue)
		}, errCorrupt, "bucket due is missing"},
		{"digest index missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketDigestDue)
		}, errCorrupt, "bucket digestdue is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			logAtHours(t, s, persistence.Now().Add(-10*time.Hour))
			s.Close()
			var before []byte
			tamper(t, dir, func(tx *bolt.Tx) error {
				if err := c.change(tx); err != nil {
					return err
				}
				if meta := tx.Bucket(bucketMeta); meta != nil {
					before = bytes.Clone(meta.Get(keyVersion))
				}
				return nil
			})

			s, err = Open(dir, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.message) || !strings.Contains(err.Error(), FileName) {
				t.Errorf("Open: %v; want %v saying %q and naming the file", err, c.want, c.message)
			}
			t.Logf("Open: %v", err)
			tamper(t, dir, func(tx *bolt.Tx) error {
				var v []byte
				if meta := tx.Bucket(bucketMeta); meta != nil {
					v = meta.Get(keyVersion)
				}
				if !bytes.Equal(v, before) {
					t.Errorf("failed Open changed the version from %x to %x", before, v)
				}
				if b := tx.Bucket(bucketLog); b == nil || b.Stats().KeyN != 5 {
					t.Error("failed Open changed the log")
				}
				return nil
			})
		})
	}
}

// TestTimeKeyOrder: logtime keys sort by time, before and after 1970, and timeBound
// rounds a cutoff up to the next whole microsecond.
func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 0),
		time.UnixMicro(-1),
		time.Unix(0, 0),
		time.UnixMicro(1),
		time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := timeKey(times[i-1], seqKey("z", 9)), timeKey(times[i], seqKey("a", 1))
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("key of %s sorts at or after the key of %s", times[i-1], times[i])
		}
	}
	for _, c := range []struct {
		cutoff time.Time
		want   int64 // microseconds
	}{
		{time.UnixMicro(1_000), 1_000},
		{time.Unix(0, 1_000_001), 1_001},
		{time.Unix(0, 1_000_999), 1_001},
		{time.Unix(0, -1), 0},
		{time.Unix(0, -1_001), -1},
		{time.UnixMicro(-5), -5},
	} {
		if got, want := timeBound(c.cutoff), timeKey(time.UnixMicro(c.want), nil); !bytes.Equal(got, want) {
			t.Errorf("timeBound(%d ns) = %x, want %x (%d µs)", c.cutoff.UnixNano(), got, want, c.want)
		}
	}
}

// BenchmarkApply stores batches of 1,000 single-notification create ops, as the
// persistence actor sends them, spread round-robin over receivers users.
func BenchmarkApply(b *testing.B) {
	for _, receivers := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("receivers=%d", receivers), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 1000
			// Enough distinct batches to reach every receiver, built before timing.
			batches := make([][]persistence.Op, max(1, receivers/batch))
			next := 0
			for i := range batches {
				batches[i] = make([]persistence.Op, batch)
				for j := range batches[i] {
					n := newNote(b, fmt.Sprintf("user-%06d", next%receivers), next)
					batches[i][j] = persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}}
					next++
				}
			}
			stored := 0
			for i := 0; b.Loop(); i++ {
				if _, err := s.Apply(b.Context(), persistence.Now(), batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				stored += batch
			}
			b.ReportMetric(float64(stored)/b.Elapsed().Seconds(), "notifications/s")
		})
	}
}

// BenchmarkApplyRead stores batches of 1,000 create ops, each followed by a read-all of
// its receiver, so every batch also appends 1,000 read-all entries to the log.
func BenchmarkApplyRead(b *testing.B) {
	for _, receivers := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("receivers=%d", receivers), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 1000
			batches := make([][]persistence.Op, max(1, receivers/batch))
			next := 0
			for i := range batches {
				batches[i] = make([]persistence.Op, 0, 2*batch)
				for range batch {
					user := fmt.Sprintf("user-%06d", next%receivers)
					batches[i] = append(batches[i],
						persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(b, user, next)}},
						persistence.Op{Kind: persistence.OpReadAll, UserID: user})
					next++
				}
			}
			for i := 0; b.Loop(); i++ {
				if _, err := s.Apply(b.Context(), persistence.Now(), batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkPruneNothing runs the hourly Prune over a log of 100,000 recent entries,
// none of them old enough to go.
func BenchmarkPruneNothing(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch, batches = 1000, 100
	for i := range batches {
		ops := make([]persistence.Op, 0, 2*batch)
		for j := range batch {
			user := fmt.Sprintf("user-%06d", j)
			ops = append(ops,
				persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(b, user, i*batch+j)}},
				persistence.Op{Kind: persistence.OpReadAll, UserID: user})
		}
		if _, err := s.Apply(b.Context(), persistence.Now(), ops); err != nil {
			b.Fatal(err)
		}
	}
	cutoff := time.Now().Add(-time.Hour)
	for b.Loop() {
		n, err := storetest.Prune(b, s, cutoff)
		if err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}
