package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on a fresh, migrated database of the shared server.
func open(t *testing.T, retention time.Duration) *Store {
	t.Helper()
	return openURL(t, pgtest.Shared(t).NewDatabase(t), retention)
}

func openURL(t testing.TB, url string, retention time.Duration) *Store {
	t.Helper()
	s, err := OpenAndMigrate(t.Context(), url, Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, retention time.Duration) persistence.Store {
		return open(t, retention)
	})
}

// TestConformanceCopy runs the suite with every new notification written by COPY, the
// path of large batches.
func TestConformanceCopy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, retention time.Duration) persistence.Store {
		s := open(t, retention)
		s.copyMin = 1
		return s
	})
}

func valid(t testing.TB, n herald.NewNotification) herald.NewNotification {
	t.Helper()
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

func create(items ...herald.NewNotification) persistence.Op {
	return persistence.Op{Kind: persistence.OpCreate, Creates: items}
}

func mustApply(t *testing.T, s *Store, ops ...persistence.Op) []persistence.Result {
	t.Helper()
	res, err := s.Apply(t.Context(), persistence.Now(), ops)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func TestApplySeqAndNoOps(t *testing.T) {
	s := open(t, 0)
	var items []herald.NewNotification
	for i := range 50 {
		items = append(items, valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}))
	}
	r := mustApply(t, s, create(items...))[0]
	for i, n := range r.Notifications {
		if n.Seq != int64(i+1) || r.Entries[i].Unread != int64(i+1) {
			t.Fatalf("notification %d: seq %d unread %d", i, n.Seq, r.Entries[i].Unread)
		}
	}
	// Marking read twice: one entry.
	id := r.Notifications[7].ID
	res := mustApply(t, s, persistence.Op{Kind: persistence.OpMarkRead, UserID: "alice", ID: id},
		persistence.Op{Kind: persistence.OpMarkRead, UserID: "alice", ID: id})
	if len(res[0].Entries) != 1 || len(res[1].Entries) != 0 || res[0].Entries[0].Seq != 51 {
		t.Fatalf("mark-read twice: %+v / %+v", res[0].Entries, res[1].Entries)
	}
	res = mustApply(t, s, persistence.Op{Kind: persistence.OpMarkRead, UserID: "alice", ID: id})
	if res[0].Err != nil || len(res[0].Entries) != 0 || res[0].Notifications[0].ReadAt == nil {
		t.Fatalf("mark-read of a read notification: %+v", res[0])
	}
	res = mustApply(t, s, persistence.Op{Kind: persistence.OpReadAll, UserID: "alice"},
		persistence.Op{Kind: persistence.OpReadAll, UserID: "alice"})
	if res[0].ReadAll.Updated != 49 || res[1].ReadAll.Updated != 0 || len(res[1].Entries) != 0 {
		t.Fatalf("read-all twice: %+v / %+v", res[0].ReadAll, res[1].ReadAll)
	}
	if n, err := s.UnreadCount(t.Context(), "alice"); err != nil || n != 0 {
		t.Fatalf("UnreadCount = %d, %v", n, err)
	}
	p, err := s.Events(t.Context(), "alice", 0, 1000)
	if err != nil || p.Seq != 52 || len(p.Entries) != 52 {
		t.Fatalf("Events: seq %d, %d entries, %v", p.Seq, len(p.Entries), err)
	}
	// Ids that are not canonical UUIDs name nothing, without failing the batch.
	for _, bad := range []string{"nope", strings.ToUpper(id), "{" + id + "}", ""} {
		res = mustApply(t, s, persistence.Op{Kind: persistence.OpMarkRead, UserID: "alice", ID: bad})
		if herald.ErrorCode(res[0].Err) != herald.CodeNotFound {
			t.Errorf("mark-read %q: %v", bad, res[0].Err)
		}
		if _, err := s.Get(t.Context(), "alice", bad); herald.ErrorCode(err) != herald.CodeNotFound {
			t.Errorf("Get %q: %v", bad, err)
		}
	}
}

// TestPayloadAsSent: the payload reads back byte for byte, which is what live delivery
// carried; a nil payload stays nil.
func TestPayloadAsSent(t *testing.T) {
	s := open(t, 0)
	sent := json.RawMessage("{ \"b\" : [1, 2.50, 1e3],\n \"a\":\"é\\u00e9\" , \"a\": 2}")
	n := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x", Payload: sent})
	bare := herald.NewNotification{ReceiverID: "alice", SenderID: "s", Type: "x", Object: "x"}
	r := mustApply(t, s, create(n, bare))[0]
	got, err := s.Get(t.Context(), "alice", r.Notifications[0].ID)
	if err != nil || string(got.Payload) != string(sent) {
		t.Fatalf("payload = %q, %v; want %q", got.Payload, err, sent)
	}
	got, err = s.Get(t.Context(), "alice", r.Notifications[1].ID)
	if err != nil || got.Payload != nil || got.Channels != nil {
		t.Fatalf("bare notification = %+v, %v; want nil payload and channels", got, err)
	}
}

// TestUnreadSnapshotAllocatesForWhatItReads: the snapshot every connect reads makes room
// for the notifications the user has, not for a full page: an inbox with nothing unread
// (a user who never had anything, one who read everything) costs a few KiB of garbage
// (pgx's own), where room for a page of 100 was 16 KiB more.
func TestUnreadSnapshotAllocatesForWhatItReads(t *testing.T) {
	s := open(t, 0)
	var three []herald.NewNotification
	for i := range 3 {
		three = append(three, valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x", Object: fmt.Sprint(i)}))
	}
	mustApply(t, s, create(three...))
	mustApply(t, s, create(valid(t, herald.NewNotification{ReceiverID: "carol", Type: "x", Object: "x"})),
		persistence.Op{Kind: persistence.OpReadAll, UserID: "carol"})
	page, err := s.Unread(t.Context(), "alice", 0, 100)
	if err != nil || len(page.Items) != 3 || page.Total != 3 || page.Seq != 3 || page.Items[0].Object != "2" {
		t.Fatalf("alice's snapshot = %+v, %v; want her 3, newest first", page, err)
	}
	if cap(page.Items) != 3 {
		t.Errorf("alice's 3 notifications came in room for %d", cap(page.Items))
	}
	for _, user := range []string{"bob", "carol"} {
		const calls = 50
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range calls {
			page, err := s.Unread(t.Context(), user, 0, 100)
			if err != nil || len(page.Items) != 0 || page.Total != 0 || (user == "carol") != (page.Seq == 2) {
				t.Fatalf("%s's snapshot = %+v, %v; want nothing unread", user, page, err)
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / calls; per > 8<<10 {
			t.Errorf("%s's empty snapshot allocated %d bytes, want at most 8 KiB", user, per)
		}
	}
}

// TestWritePaths: a notification reads back the same whether it was written by COPY or
// by INSERT, whatever its fields and time.
func TestWritePaths(t *testing.T) {
	for _, copyMin := range []int{1, 1 << 30} {
		s := open(t, 0)
		s.copyMin = copyMin
		items := []herald.NewNotification{
			valid(t, herald.NewNotification{ReceiverID: "alice", SenderID: "bob", Type: "t", Object: "o",
				Payload:  json.RawMessage(` {"k": "v é \u0000"} `),
				Channels: []herald.Channel{herald.ChannelWebhook, herald.ChannelEmail, herald.ChannelRealtime}, IdempotencyKey: "key-é"}),
			valid(t, herald.NewNotification{ReceiverID: "alice", Type: "t", Channels: []herald.Channel{herald.ChannelEmail}}),
			{ReceiverID: "bob", SenderID: "s", Type: "t", Object: "t"}, // no payload, no channels
		}
		for _, now := range []time.Time{
			time.Date(1969, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
			time.Date(1999, 12, 31, 23, 59, 59, 1000, time.UTC),
			time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(2126, 11, 27, 10, 0, 0, 123_456_000, time.UTC),
		} {
			for i := range items {
				items[i].IdempotencyKey = ""
			}
			items[0].IdempotencyKey = now.String()
			// bob's notification is read in the batch that creates it.
			res, err := s.Apply(t.Context(), now, []persistence.Op{create(items...), {Kind: persistence.OpReadAll, UserID: "bob"}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("copyMin %d, %s: Apply: %v %v", copyMin, now, err, res[0].Err)
			}
			r2, err := s.Apply(t.Context(), now, []persistence.Op{create(items[0])})
			if err != nil || r2[0].Err != nil || !r2[0].Replayed[0] {
				t.Fatalf("replay: %v %+v", err, r2)
			}
			for i, want := range res[0].Notifications {
				if i == 2 {
					want.ReadAt = &now
				}
				got, err := s.Get(t.Context(), want.ReceiverID, want.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !got.CreatedAt.Equal(now) || (got.ReadAt == nil) != (want.ReadAt == nil) ||
					(got.ReadAt != nil && !got.ReadAt.Equal(now)) || string(got.Payload) != string(want.Payload) ||
					fmt.Sprint(got.Channels) != fmt.Sprint(want.Channels) || got.Seq != want.Seq ||
					got.SenderID != want.SenderID || got.Type != want.Type || got.Object != want.Object {
					t.Errorf("copyMin %d, %s: item %d reads back as\n%+v\nwant\n%+v", copyMin, now, i, got, want)
				}
			}
		}
	}
}

// TestUnstorableText: text PostgreSQL cannot hold fails its own op, not the batch.
// Validation refuses such text before it reaches a store; this is the store's own guard.
func TestUnstorableText(t *testing.T) {
	s := open(t, 0)
	good := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x"})
	unvalidated := func(receiver, payload string) herald.NewNotification {
		return herald.NewNotification{ReceiverID: receiver, SenderID: herald.DefaultSenderID, Type: "x", Object: "x",
			Payload: json.RawMessage(payload), Channels: []herald.Channel{herald.ChannelRealtime}}
	}
	nul := unvalidated("al\x00ice", "{}")
	badUTF := unvalidated("alice", "{\"a\":\"\xff\"}")
	res := mustApply(t, s, create(good), create(nul), create(good, badUTF),
		persistence.Op{Kind: persistence.OpReadAll, UserID: "b\x00b"},
		persistence.Op{Kind: persistence.OpMarkRead, UserID: "b\x00b", ID: uuid.NewString()},
		create(good))
	if res[0].Err != nil || res[5].Err != nil || res[5].Notifications[0].Seq != 2 {
		t.Fatalf("good creates: %+v / %+v", res[0], res[5])
	}
	if e := herald.AsError(res[1].Err); e.Code != herald.CodeValidation || e.Field != "receiverId" {
		t.Errorf("NUL receiver: %v", res[1].Err)
	}
	if e := herald.AsError(res[2].Err); e.Code != herald.CodeValidation || e.Field != "items[1].payload" {
		t.Errorf("invalid UTF-8 payload: %v", res[2].Err)
	}
	if res[3].Err != nil || res[3].ReadAll == nil || res[3].ReadAll.Updated != 0 {
		t.Errorf("read-all of a NUL user: %+v", res[3])
	}
	if herald.ErrorCode(res[4].Err) != herald.CodeNotFound {
		t.Errorf("mark-read of a NUL user: %v", res[4].Err)
	}
	// A batch of nothing but such ops gets its results too, not a failed batch.
	only, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{create(nul), {Kind: persistence.OpReadAll, UserID: "b\x00b"}})
	if err != nil || len(only) != 2 || herald.ErrorCode(only[0].Err) != herald.CodeValidation || only[1].Err != nil {
		t.Fatalf("batch of unstorable ops only: %v %+v", err, only)
	}
	for _, f := range []func() error{
		func() error { _, err := s.Unread(t.Context(), "b\x00b", 0, 10); return err },
		func() error { _, err := s.Events(t.Context(), "b\x00b", 0, 10); return err },
		func() error { _, err := s.Created(t.Context(), "b\x00b", 0, 10); return err },
		func() error { _, err := s.UnreadCount(t.Context(), "b\x00b"); return err },
	} {
		if err := f(); err != nil {
			t.Errorf("read of a NUL user: %v", err)
		}
	}
}

// TestTwoNodes: two stores on one database (two nodes) writing for the same users keep
// every user's seq gapless, and replays of one idempotency key return one notification.
func TestTwoNodes(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Store{openURL(t, url, 0), openURL(t, url, 0)}
	const rounds = 30
	var (
		mu  sync.Mutex
		ids = map[string]bool{}
		wg  sync.WaitGroup
	)
	for w := range 6 {
		s := nodes[w%2]
		wg.Go(func() {
			for r := range rounds {
				ops := []persistence.Op{
					create(valid(t, herald.NewNotification{ReceiverID: "u1", Type: "x"}),
						valid(t, herald.NewNotification{ReceiverID: "u2", Type: "x"})),
					create(valid(t, herald.NewNotification{ReceiverID: "u2", Type: "x", IdempotencyKey: fmt.Sprint("k", r%7)})),
				}
				if w%3 == 0 {
					ops = append(ops, persistence.Op{Kind: persistence.OpReadAll, UserID: "u2"})
				}
				res, err := s.Apply(context.Background(), persistence.Now(), ops)
				if err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				mu.Lock()
				ids[res[1].Notifications[0].ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ids) != 7 {
		t.Errorf("7 idempotency keys made %d notifications", len(ids))
	}
	for _, u := range []string{"u1", "u2"} {
		p, err := nodes[0].Events(t.Context(), u, 0, 10000)
		if err != nil || p.Reset {
			t.Fatalf("Events(%s): %v reset %v", u, err, p.Reset)
		}
		for i, e := range p.Entries {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: entry %d has seq %d", u, i, e.Seq)
			}
		}
		if int64(len(p.Entries)) != p.Seq {
			t.Fatalf("%s: %d entries, latest %d", u, len(p.Entries), p.Seq)
		}
	}
}

// TestNewUsersRace: batches on two nodes that share users, some of them new (no
// user_state row yet) and first written by several batches at once, all commit: the
// inserts of missing rows and the locks that follow, both in the batch's user order,
// neither deadlock nor leave a user out; every user's seq stays gapless.
func TestNewUsersRace(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Store{openURL(t, url, 0), openURL(t, url, 0)}
	const workers, rounds, perRound = 8, 20, 4
	var wg sync.WaitGroup
	for w := range workers {
		s := nodes[w%2]
		wg.Go(func() {
			for r := range rounds {
				// This round's new users, shared by every worker, in an order of the
				// worker's own, and one user every batch has.
				var items []herald.NewNotification
				for k := range perRound {
					u := fmt.Sprintf("r%02d-%d", r, (k+w)%perRound)
					items = append(items, valid(t, herald.NewNotification{ReceiverID: u, Type: "x"}))
				}
				items = append(items, valid(t, herald.NewNotification{ReceiverID: "common", Type: "x"}))
				if _, err := s.Apply(context.Background(), persistence.Now(), []persistence.Op{create(items...)}); err != nil {
					t.Errorf("worker %d round %d: Apply: %v", w, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	check := func(u string, want int64) {
		p, err := nodes[0].Events(t.Context(), u, 0, 10000)
		if err != nil {
			t.Fatalf("Events(%s): %v", u, err)
		}
		for i, e := range p.Entries {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: entry %d has seq %d", u, i, e.Seq)
			}
		}
		if int64(len(p.Entries)) != want || p.Seq != want {
			t.Fatalf("%s: %d entries, latest seq %d; want %d", u, len(p.Entries), p.Seq, want)
		}
	}
	check("common", workers*rounds)
	for r := range rounds {
		for k := range perRound {
			check(fmt.Sprintf("r%02d-%d", r, k), workers)
		}
	}
}

// TestUserRowsLostBehindTheStore: a store that has written for a user, on a database
// that then loses the user's rows (restored from a backup behind the node's back),
// still writes for the user: the lock finds no row, the store forgets the users it
// knew and tries again, inserting the row, and the user starts again at seq 1.
func TestUserRowsLostBehindTheStore(t *testing.T) {
	s := open(t, persistence.DefaultRetention)
	mustApply(t, s, create(valid(t, herald.NewNotification{ReceiverID: "ann", Type: "x"}), valid(t, herald.NewNotification{ReceiverID: "bob", Type: "x"})))
	if _, err := s.pool.Exec(t.Context(), `DELETE FROM notifications WHERE receiver_id = 'ann'; DELETE FROM user_state WHERE user_id = 'ann'`); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, s, create(valid(t, herald.NewNotification{ReceiverID: "ann", Type: "x"}), valid(t, herald.NewNotification{ReceiverID: "bob", Type: "x"})))
	if got := res[0].Entries; len(got) != 2 || got[0].UserID != "ann" || got[0].Seq != 1 || got[1].UserID != "bob" || got[1].Seq != 2 {
		t.Fatalf("entries after the loss: %+v, want ann at seq 1 and bob at seq 2", got)
	}
}

// TestPoolParametersInTheURL: the pool's parameters of a URL (pool_min_conns) are the
// pool's, for the migration as for the store (the migration's connection once sent them
// to the server, which refused to start the node); pool_max_conns, which the store's
// own size would override, is refused with the setting to use instead.
func TestPoolParametersInTheURL(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	s, err := OpenAndMigrate(t.Context(), url+sep+"pool_min_conns=1&pool_max_conn_lifetime=1h", Options{})
	if err != nil {
		t.Fatalf("OpenAndMigrate with pool_min_conns: %v", err)
	}
	defer s.Close()
	mustApply(t, s, create(valid(t, herald.NewNotification{ReceiverID: "ann", Type: "x"})))
	for _, v := range []string{"50", "abc"} {
		_, err = OpenAndMigrate(t.Context(), url+sep+"pool_max_conns="+v, Options{})
		if err == nil || !strings.Contains(err.Error(), "HERALD_DB_MAX_CONNS") {
			t.Fatalf("OpenAndMigrate with pool_max_conns=%s: %v, want a refusal naming HERALD_DB_MAX_CONNS", v, err)
		}
	}
}

// TestKnownUsersAreCommitted: a batch that changes nothing is rolled back, with the
// state row it inserted for a new user: the store does not count that user as known, so
// the user's next batch inserts the row again instead of finding it missing (which
// would make the store forget every user it knew).
func TestKnownUsersAreCommitted(t *testing.T) {
	s := open(t, persistence.DefaultRetention)
	// A read-all of an empty inbox changes nothing.
	mustApply(t, s, persistence.Op{Kind: persistence.OpReadAll, UserID: "newbie"})
	if _, ok := s.known.m.Load("newbie"); ok {
		t.Fatal("a rolled-back batch made its new user known")
	}
	mustApply(t, s, create(valid(t, herald.NewNotification{ReceiverID: "newbie", Type: "x"})))
	if _, ok := s.known.m.Load("newbie"); !ok {
		t.Fatal("a committed create did not make its user known")
	}
}

// TestIdempotencyRace: nodes storing the same keys for different receivers at once (so
// that no user lock orders them) end with one notification per key; the others are
// replays or conflicts.
func TestIdempotencyRace(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	nodes := []*Store{openURL(t, url, 0), openURL(t, url, 0), openURL(t, url, 0)}
	const keys, rounds = 40, 10
	var (
		mu      sync.Mutex
		stored  = map[string]string{} // key -> id
		results = map[herald.Code]int{}
		wg      sync.WaitGroup
	)
	for w := range 6 {
		s := nodes[w%len(nodes)]
		wg.Go(func() {
			// Each round, each worker stores every key of the round, in its own order, for
			// its own receiver, in two batches.
			for r := range rounds {
				var items []herald.NewNotification
				for k := range keys {
					k = (k + w*7) % keys
					items = append(items, valid(t, herald.NewNotification{ReceiverID: fmt.Sprint("r", w), Type: "x",
						IdempotencyKey: fmt.Sprint(r, "-k", k)}))
				}
				for _, half := range [][]herald.NewNotification{items[:keys/2], items[keys/2:]} {
					var ops []persistence.Op
					for _, it := range half {
						ops = append(ops, create(it))
					}
					res, err := s.Apply(context.Background(), persistence.Now(), ops)
					if err != nil {
						t.Errorf("Apply: %v", err)
						return
					}
					mu.Lock()
					for i, r := range res {
						results[herald.ErrorCode(r.Err)]++
						if r.Err == nil && !r.Replayed[0] {
							if prev, ok := stored[half[i].IdempotencyKey]; ok {
								t.Errorf("key %s stored twice: %s and %s", half[i].IdempotencyKey, prev, r.Notifications[0].ID)
							}
							stored[half[i].IdempotencyKey] = r.Notifications[0].ID
						}
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(stored) != keys*rounds || results[""] != keys*rounds || results[herald.CodeIdempotencyConflict] != 5*keys*rounds {
		t.Errorf("%d keys stored, results %v; want %d stored, the rest conflicts", len(stored), results, keys*rounds)
	}
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Migrate(t.Context(), url) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := openURL(t, url, 0)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ms, _ := migrations()
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM herald_schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("%d migrations recorded (%v), want %d", n, err, len(ms))
	}
}

// TestUnavailable: database failures are unavailable errors that keep the SQL out of the
// message, and the store recovers once PostgreSQL is back.
func TestUnavailable(t *testing.T) {
	srv := pgtest.Own(t)
	s := openURL(t, srv.NewDatabase(t), 0)
	alice := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x"})
	mustApply(t, s, create(alice))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{create(alice)})
	var he *herald.Error
	if !errors.As(err, &he) || he.Code != herald.CodeUnavailable {
		t.Fatalf("Apply with PostgreSQL down: %v", err)
	}
	if strings.Contains(he.Message, "INSERT") || strings.Contains(he.Message, "SELECT") {
		t.Errorf("message leaks SQL: %q", he.Message)
	}
	for name, f := range map[string]func() error{
		"Get":         func() error { _, err := s.Get(t.Context(), "alice", uuid.NewString()); return err },
		"Unread":      func() error { _, err := s.Unread(t.Context(), "alice", 0, 10); return err },
		"Created":     func() error { _, err := s.Created(t.Context(), "alice", 0, 10); return err },
		"Events":      func() error { _, err := s.Events(t.Context(), "alice", 0, 10); return err },
		"UnreadCount": func() error { _, err := s.UnreadCount(t.Context(), "alice"); return err },
		"Prune":       func() error { _, err := storetest.Prune(t, s, time.Now()); return err },
		"Ping":        func() error { return s.Ping(t.Context()) },
		"ClaimDeliveries": func() error {
			_, err := s.ClaimDeliveries(t.Context(), time.Now(), time.Minute, 10)
			return err
		},
		"FinishDeliveries": func() error {
			return storetest.FinishDeliveries(t, s, time.Now(), []persistence.Outcome{{ID: uuid.NewString(), Sent: true}})
		},
		"Deliveries": func() error {
			_, err := s.Deliveries(t.Context(), persistence.DeliveryDead, "", 10)
			return err
		},
		"RetryDelivery": func() error { _, err := storetest.RetryDelivery(t, s, time.Now(), uuid.NewString()); return err },
		"OutboxStats":   func() error { _, err := s.OutboxStats(t.Context()); return err },
		"SetContact": func() error {
			return storetest.SetContact(t, s, "alice", persistence.Contact{Email: "a@example.com"})
		},
		"Contact": func() error { _, err := s.Contact(t.Context(), "alice"); return err },
		"SetPreferences": func() error {
			return storetest.SetPreferences(t, s, "alice", persistence.Preferences{Channels: map[herald.Channel]bool{herald.ChannelEmail: false}})
		},
		"Preferences": func() error { _, err := s.Preferences(t.Context(), "alice"); return err },
	} {
		if err := f(); herald.ErrorCode(err) != herald.CodeUnavailable {
			t.Errorf("%s with PostgreSQL down: %v", name, err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{create(alice)})
	if err != nil {
		t.Fatalf("Apply after restart: %v", err)
	}
	if res[0].Notifications[0].Seq != 2 {
		t.Errorf("seq after restart = %d, want 2", res[0].Notifications[0].Seq)
	}
}

// TestSQLErrorIsUnavailable: a failing statement rolls the batch back and reports
// unavailable, with the cause kept for the log.
func TestSQLErrorIsUnavailable(t *testing.T) {
	s := open(t, 0)
	alice := valid(t, herald.NewNotification{ReceiverID: "alice", Type: "x"})
	mustApply(t, s, create(alice))
	if _, err := s.pool.Exec(t.Context(), `ALTER TABLE notifications ADD CONSTRAINT no_bob CHECK (receiver_id <> 'bob')`); err != nil {
		t.Fatal(err)
	}
	bob := valid(t, herald.NewNotification{ReceiverID: "bob", Type: "x"})
	_, err := s.Apply(t.Context(), persistence.Now(), []persistence.Op{create(alice), create(bob)})
	var he *herald.Error
	if !errors.As(err, &he) || he.Code != herald.CodeUnavailable || he.Err == nil || strings.Contains(he.Message, "no_bob") {
		t.Fatalf("Apply: %#v", err)
	}
	if n, _ := s.UnreadCount(t.Context(), "alice"); n != 1 {
		t.Errorf("alice has %d unread after a failed batch, want 1", n)
	}
	if p, _ := s.Events(t.Context(), "alice", 0, 10); p.Seq != 1 {
		t.Errorf("alice at seq %d after a failed batch, want 1", p.Seq)
	}
}
