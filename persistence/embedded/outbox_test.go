package embedded

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/storetest"
)

// dropBuckets removes names, as in a file of a version from before they were added:
// outboxBuckets (version 3), digestBuckets (version 4).
func dropBuckets(tx *bolt.Tx, names [][]byte) error {
	for _, name := range names {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// checkIndexes checks that the due index holds exactly the pending deliveries, each at
// its due time, and the state index every delivery in its state.
func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b := open(tx)
		var wantDue, wantState [][]byte
		err := b.deliveries.ForEach(func(k, v []byte) error {
			d, err := decodeDelivery(k, v)
			if err != nil {
				return err
			}
			wantState = append(wantState, stateKey(d.state, d.key))
			if d.state == statePending {
				wantDue = append(wantDue, dueKey(d.DueAt, d.key))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := checkIndex(t, "due", b.due, wantDue, "one per pending delivery"); err != nil {
			return err
		}
		return checkIndex(t, "bystate", b.byState, wantState, "one per delivery")
	})
	if err != nil {
		t.Fatal(err)
	}
}

func withChannels(n herald.NewNotification, cs ...herald.Channel) herald.NewNotification {
	n.Channels = cs
	return n
}

func escalated(n herald.NewNotification, after time.Duration) herald.NewNotification {
	n.Escalate = &herald.Escalation{After: after, Channel: herald.ChannelEmail}
	return n
}

func claimAt(t *testing.T, s *Store, now time.Time, limit int) []persistence.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), now, time.Minute, limit)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func list(t *testing.T, s *Store, state persistence.DeliveryState, after string, limit int) []persistence.Delivery {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), state, after, limit)
	if err != nil {
		t.Fatalf("Deliveries(%s, %q): %v", state, after, err)
	}
	return ds
}

func ids(ds []persistence.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// checkOutboxWorks writes, claims and finishes a delivery, and sets a contact and
// preferences, checking the indexes along the way.
func checkOutboxWorks(t *testing.T, s *Store) {
	t.Helper()
	now := persistence.Now()
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		withChannels(newNote(t, "zoe", 1), herald.ChannelRealtime, herald.ChannelEmail)}})
	ds := claimAt(t, s, now, 10)
	if len(ds) != 1 || ds[0].UserID != "zoe" || ds[0].Channel != herald.ChannelEmail {
		t.Fatalf("claim: %+v", ds)
	}
	if err := storetest.FinishDeliveries(t, s, now, []persistence.Outcome{{ID: ds[0].ID, Sent: true}}); err != nil {
		t.Fatal(err)
	}
	if sent := list(t, s, persistence.DeliverySent, "", 10); !slices.Equal(ids(sent), ids(ds)) {
		t.Errorf("sent: %+v", sent)
	}
	if err := storetest.SetContact(t, s, "zoe", persistence.Contact{Email: "zoe@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SetPreferences(t, s, "zoe", persistence.Preferences{Channels: map[herald.Channel]bool{herald.ChannelEmail: false}}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Contact(t.Context(), "zoe"); err != nil || c.Email != "zoe@example.com" {
		t.Errorf("contact: %+v %v", c, err)
	}
	checkIndexes(t, s)
}

// TestOpenUpgradesVersion2: a version 2 file, from before the outbox, opens and gets the
// outbox, contact and preferences buckets; its notifications and log stay as they were.
func TestOpenUpgradesVersion2(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logAtHours(t, s, persistence.Now().Add(-10*time.Hour))
	s.Close()
	tamper(t, dir, func(tx *bolt.Tx) error {
		if err := toVersion(tx, versionNoOutbox); err != nil {
			return err
		}
		if err := dropBuckets(tx, outboxBuckets); err != nil {
			return err
		}
		return dropBuckets(tx, digestBuckets) // version 2 had none
	})

	s = openStore(t, dir)
	if got, want := logKeys(t, s), []string{"alice:4", "alice:5", "alice:6", "bob:4", "bob:5"}; !slices.Equal(got, want) {
		t.Fatalf("log after upgrade = %v, want %v", got, want)
	}
	if p, err := s.Unread(t.Context(), "alice", 0, 10); err != nil || p.Seq != 6 || p.Total != 0 {
		t.Errorf("alice after upgrade: %+v %v", p, err)
	}
	if ds := claimAt(t, s, time.Now(), 10); len(ds) != 0 {
		t.Errorf("claimed %d deliveries of an upgraded file", len(ds))
	}
	checkOutboxWorks(t, s)
	checkDigestsWork(t, s)
	s.Close()
	if v := fileVersion(t, dir); !bytes.Equal(v, []byte{formatVersion}) {
		t.Errorf("version after upgrade = %x, want %d", v, formatVersion)
	}
	s = openStore(t, dir)
	if sent := list(t, s, persistence.DeliverySent, "", 10); len(sent) != 1 {
		t.Errorf("after reopen: %d sent deliveries, want 1", len(sent))
	}
	if p, err := s.Preferences(t.Context(), "zoe"); err != nil || p.Allows("t", herald.ChannelEmail) {
		t.Errorf("after reopen: preferences %+v %v", p, err)
	}
}

// TestOpenUpgradesVersion2Leftovers: should a version 2 file hold outbox buckets (no
// build writes that), their rows are kept and the delivery indexes rebuilt.
func TestOpenUpgradesVersion2Leftovers(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := persistence.Now()
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		withChannels(newNote(t, "ann", 1), herald.ChannelEmail, herald.ChannelWebhook)}})
	ds := claimAt(t, s, now, 1)
	if err := storetest.FinishDeliveries(t, s, now, []persistence.Outcome{{ID: ds[0].ID, Dead: true, Error: "no"}}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SetContact(t, s, "ann", persistence.Contact{Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	tamper(t, dir, func(tx *bolt.Tx) error {
		if err := toVersion(tx, versionNoOutbox); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketDue); err != nil {
			return err
		}
		// A stale key for a delivery that does not exist.
		return tx.Bucket(bucketByState).Put(stateKey(stateSent, make([]byte, 16)), nil)
	})

	s = openStore(t, dir)
	checkIndexes(t, s)
	if dead := list(t, s, persistence.DeliveryDead, "", 10); !slices.Equal(ids(dead), ids(ds)) {
		t.Errorf("dead after upgrade: %+v, want %v", dead, ids(ds))
	}
	if got := claimAt(t, s, now, 10); len(got) != 1 || got[0].ID == ds[0].ID {
		t.Errorf("claim after upgrade: %+v, want the other delivery", got)
	}
	if c, err := s.Contact(t.Context(), "ann"); err != nil || c.Email != "ann@example.com" {
		t.Errorf("contact after upgrade: %+v %v", c, err)
	}
}

// TestOutboxNoOpsWriteNothing: the dispatcher's idle polls and outcomes that change
// nothing commit no transaction, so they cost no fsync.
func TestOutboxNoOpsWriteNothing(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	id := txID(t, s)
	if ds := claimAt(t, s, now, 10); len(ds) != 0 {
		t.Fatalf("claimed %+v from an empty store", ds)
	}
	res := apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		escalated(newNote(t, "bo", 1), time.Hour)}})
	id++
	if got := txID(t, s); got != id {
		t.Fatalf("a create committed %d transactions", got-id+1)
	}
	if ds := claimAt(t, s, now.Add(time.Hour-time.Microsecond), 10); len(ds) != 0 {
		t.Fatalf("claimed %+v before its due time", ds)
	}
	unknown := "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b"
	if err := storetest.FinishDeliveries(t, s, now, []persistence.Outcome{{ID: unknown, Sent: true}, {ID: "nope", Dead: true}}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.FinishDeliveries(t, s, now, nil); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SetContact(t, s, "bo", persistence.Contact{}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SetPreferences(t, s, "bo", persistence.Preferences{Types: map[string]map[herald.Channel]bool{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := storetest.RetryDelivery(t, s, now, unknown); herald.ErrorCode(err) != herald.CodeNotFound {
		t.Fatalf("RetryDelivery of an unknown id: %v", err)
	}
	if got := txID(t, s); got != id {
		t.Errorf("calls that change nothing committed %d transactions", got-id)
	}
	// Setting the same contact twice writes once.
	for range 2 {
		if err := storetest.SetContact(t, s, "bo", persistence.Contact{Email: "bo@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := txID(t, s); got != id+1 {
		t.Errorf("setting one contact twice committed %d transactions, want 1", got-id)
	}
	// The escalation is claimed when due and read back as it was stored.
	ds := claimAt(t, s, now.Add(time.Hour), 10)
	if len(ds) != 1 || !ds[0].UnreadOnly || ds[0].NotificationID != res[0].Notifications[0].ID ||
		!ds[0].DueAt.Equal(now.Add(time.Hour+time.Minute)) || !ds[0].CreatedAt.Equal(now) || ds[0].Notification.Seq != 1 {
		t.Errorf("escalation: %+v", ds)
	}
	checkIndexes(t, s)
}

// TestFinishOutcomes: a delivery named twice takes the last outcome as one attempt; a
// retry at the zero time is due at once; a success keeps the last failure's error.
func TestFinishOutcomes(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{
		withChannels(newNote(t, "hal", 1), herald.ChannelEmail)}})
	d := claimAt(t, s, now, 10)[0]
	later := now.Add(time.Second)
	if err := storetest.FinishDeliveries(t, s, later, []persistence.Outcome{
		{ID: d.ID, Sent: true}, {ID: d.ID, Error: "timeout"}}); err != nil {
		t.Fatal(err)
	}
	got := list(t, s, persistence.DeliveryPending, "", 10)
	if len(got) != 1 || got[0].Attempts != 1 || got[0].LastError != "timeout" || !got[0].DueAt.Equal(later) || !got[0].UpdatedAt.Equal(later) {
		t.Fatalf("after a zero retry: %+v", got)
	}
	if ds := claimAt(t, s, later, 10); len(ds) != 1 {
		t.Fatalf("claim after a zero retry: %+v", ds)
	}
	if err := storetest.FinishDeliveries(t, s, later, []persistence.Outcome{{ID: d.ID, Sent: true}}); err != nil {
		t.Fatal(err)
	}
	if got := list(t, s, persistence.DeliverySent, "", 10); len(got) != 1 || got[0].Attempts != 2 || got[0].LastError != "timeout" {
		t.Errorf("sent: %+v", got)
	}
	if ds, err := s.ClaimDeliveries(t.Context(), later, time.Minute, 0); err != nil || ds != nil {
		t.Errorf("claim of 0: %+v %v", ds, err)
	}
	checkIndexes(t, s)
}

// TestClaimCancelsInChunks: a claim cancels read escalations a chunk per transaction
// and goes on until it has its limit or nothing is due.
func TestClaimCancelsInChunks(t *testing.T) {
	s := openStore(t, t.TempDir())
	s.cancelChunk = 2
	now := persistence.Now()
	var items []herald.NewNotification
	for i := range 5 { // cancelled 2, 2, then 1 with the claim: 3 transactions whatever the order
		items = append(items, escalated(newNote(t, "cy", i), time.Hour))
	}
	res := apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: items}, readAllOp("cy"),
		persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{escalated(newNote(t, "cy", 7), time.Hour)}})
	unread := res[2].Notifications[0].ID
	id := txID(t, s)
	ds := claimAt(t, s, now.Add(time.Hour), 10)
	if len(ds) != 1 || ds[0].NotificationID != unread {
		t.Fatalf("claim: %+v, want the escalation of the unread notification", ds)
	}
	if got := txID(t, s) - id; got != 3 {
		t.Errorf("cancelling 5 in chunks of 2 took %d transactions, want 3", got)
	}
	if c := list(t, s, persistence.DeliveryCancelled, "", 100); len(c) != 5 {
		t.Errorf("%d cancelled, want 5", len(c))
	}
	checkIndexes(t, s)
}

// TestClaimOrderAndLimit: claims come earliest due first, up to the limit.
func TestClaimOrderAndLimit(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	var ops []persistence.Op
	for i, after := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		ops = append(ops, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{escalated(newNote(t, "di", i), after)}})
	}
	res := apply(t, s, now, ops...)
	later := now.Add(4 * time.Hour)
	first := claimAt(t, s, later, 2)
	second := claimAt(t, s, later, 2)
	if len(first) != 2 || len(second) != 1 {
		t.Fatalf("claims of 2: %d then %d", len(first), len(second))
	}
	got := []string{first[0].NotificationID, first[1].NotificationID, second[0].NotificationID}
	want := []string{res[1].Notifications[0].ID, res[2].Notifications[0].ID, res[0].Notifications[0].ID}
	if !slices.Equal(got, want) {
		t.Errorf("claim order %v, want %v", got, want)
	}
	stats, err := s.OutboxStats(t.Context())
	if err != nil || len(stats) != 1 || stats[0].Pending != 3 || !stats[0].OldestDue.Equal(later.Add(time.Minute)) {
		t.Errorf("stats: %+v %v", stats, err)
	}
}

// TestDeliveriesPaging: listings page in id order; a cursor that is not a canonical id
// compares as a string.
func TestDeliveriesPaging(t *testing.T) {
	s := openStore(t, t.TempDir())
	now := persistence.Now()
	var items []herald.NewNotification
	for i := range 5 {
		items = append(items, withChannels(newNote(t, "ed", i), herald.ChannelEmail, herald.ChannelWebhook))
	}
	apply(t, s, now, persistence.Op{Kind: persistence.OpCreate, Creates: items})
	all := ids(list(t, s, persistence.DeliveryPending, "", 100))
	if len(all) != 10 || !slices.IsSorted(all) {
		t.Fatalf("pending: %v, want 10 in id order", all)
	}
	var paged []string
	for after := ""; ; {
		page := ids(list(t, s, persistence.DeliveryPending, after, 3))
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged %v, want %v", paged, all)
	}
	if got := ids(list(t, s, persistence.DeliveryPending, "00000000-0000-0000-0000-000000000000", 100)); !slices.Equal(got, all) {
		t.Errorf("after the nil UUID: %v, want %v", got, all)
	}
	if got := list(t, s, persistence.DeliveryPending, "ffffffff-ffff-ffff-ffff-ffffffffffff", 100); len(got) != 0 {
		t.Errorf("after the max UUID: %v", got)
	}
	if got := list(t, s, persistence.DeliveryPending, "", 0); len(got) != 0 {
		t.Errorf("limit 0: %v", got)
	}
	for _, after := range []string{"0", strings.ToUpper(all[4]), all[4][:35], all[4] + "x"} {
		_, err := s.Deliveries(t.Context(), persistence.DeliveryPending, after, 10)
		var he *herald.Error
		if !errors.As(err, &he) || he.Code != herald.CodeValidation || he.Field != "after" {
			t.Errorf("after %q: %v, want a validation error of after", after, err)
		}
	}
	if got := list(t, s, persistence.DeliverySent, "", 100); len(got) != 0 {
		t.Errorf("sent: %+v", got)
	}
	if _, err := s.Deliveries(t.Context(), "bogus", "", 10); herald.ErrorCode(err) != herald.CodeValidation {
		t.Errorf("Deliveries of an unknown state: %v", err)
	}
}

// TestPriorPreferences: the planner gets the preferences of the batch's users that
// have any, and no map at all when none has.
func TestPriorPreferences(t *testing.T) {
	s := openStore(t, t.TempDir())
	prefs := persistence.Preferences{Channels: map[herald.Channel]bool{herald.ChannelWebhook: false}}
	if err := storetest.SetPreferences(t, s, "fay", prefs); err != nil {
		t.Fatal(err)
	}
	prior := func(users ...string) persistence.Prior {
		var p persistence.Prior
		if err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			p, err = open(tx).prior(persistence.Keys{Users: users})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := prior("fay", "gus")
	if fay := p.Preferences["fay"]; len(p.Preferences) != 1 || fay.Allows("t", herald.ChannelWebhook) {
		t.Errorf("prior preferences: %+v", p.Preferences)
	}
	if p := prior("gus"); p.Preferences != nil {
		t.Errorf("prior preferences of a user without any: %+v", p.Preferences)
	}
}

// TestDeliveryRecordByService: the flag round-trips through the record codec, and a
// record from before it (flag bit 1 never set: an escalation has flags 1) reads
// ByService false, so its payload's "email" is not honoured.
func TestDeliveryRecordByService(t *testing.T) {
	id := bytes.Repeat([]byte{7}, 16)
	note := bytes.Repeat([]byte{9}, 16)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, d := range []persistence.Delivery{
		{ID: "x", UserID: "dora", Channel: herald.ChannelEmail, State: persistence.DeliveryPending, DueAt: at, CreatedAt: at, UpdatedAt: at, ByService: true},
		{ID: "x", UserID: "dora", Channel: herald.ChannelEmail, State: persistence.DeliveryDead, DueAt: at, CreatedAt: at, UpdatedAt: at, UnreadOnly: true},
	} {
		v, err := encodeDelivery(&d, note)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeDelivery(id, v)
		if err != nil || got.ByService != d.ByService || got.UnreadOnly != d.UnreadOnly {
			t.Fatalf("decoded %+v (%v), want ByService %v UnreadOnly %v", got.Delivery, err, d.ByService, d.UnreadOnly)
		}
	}
	// As the encoder before the flag wrote an escalation: version 1, pending, flags 1.
	old := make([]byte, deliveryHeader)
	old[0], old[1], old[2] = 1, statePending, 1
	copy(old[35:], note)
	old = appendString(appendString(appendString(old, "dora"), "email"), "")
	got, err := decodeDelivery(id, old)
	if err != nil || got.ByService || !got.UnreadOnly || got.UserID != "dora" {
		t.Fatalf("an old record decoded as %+v (%v), want ByService false", got.Delivery, err)
	}
}
