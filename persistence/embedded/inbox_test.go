package embedded

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// toVersion makes a current file look like one of version v (versionNoLogTime ..
// versionNoInbox) as far as its users' keys go: it records v and splits inbox into the
// users, byseq and unread buckets versions 1 to 4 kept. The caller drops the other
// buckets v did not have.
func toVersion(tx *bolt.Tx, v byte) error {
	if err := tx.Bucket(bucketMeta).Put(keyVersion, []byte{v}); err != nil {
		return err
	}
	users, err := tx.CreateBucket(bucketUsers)
	if err != nil {
		return err
	}
	bySeq, err := tx.CreateBucket(bucketBySeq)
	if err != nil {
		return err
	}
	unread, err := tx.CreateBucket(bucketUnread)
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
		switch {
		case k[len(k)-1] == partRow:
			return users.Put(bytes.Clone(k[:len(k)-1]), bytes.Clone(v))
		default:
			part := k[len(k)-9]
			old := append(bytes.Clone(k[:len(k)-9]), k[len(k)-8:]...)
			if err := bySeq.Put(old, bytes.Clone(v)); err != nil {
				return err
			}
			if part == partUnread {
				return unread.Put(bytes.Clone(old), bytes.Clone(v))
			}
			return nil
		}
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bucketInbox)
}

// TestOpenUpgradesVersion4: a version 4 file, with a user's row, creation index and
// unread index in three buckets, opens with them merged into inbox and nothing lost:
// unread pages, created pages, the event log and the unread totals are as before, and
// reads and writes go on. A stale inbox bucket in the old file is rebuilt.
func TestOpenUpgradesVersion4(t *testing.T) {
	for _, stale := range []bool{false, true} {
		name := "no inbox"
		if stale {
			name = "stale inbox"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir)
			now := persistence.Now()
			res := apply(t, s, now, createOp(t, "alice", 5), createOp(t, "bob", 3), createOp(t, "al", 2))
			alice := res[0].Notifications
			apply(t, s, now, markReadOp("alice", alice[1].ID), markReadOp("alice", alice[3].ID), readAllOp("al"))
			type view struct {
				unread  persistence.UnreadPage
				created []herald.Notification
				events  persistence.EventsPage
			}
			look := func(s *Store, user string) view {
				t.Helper()
				var v view
				var err error
				if v.unread, err = s.Unread(t.Context(), user, 0, 0); err != nil {
					t.Fatal(err)
				}
				if v.created, err = s.Created(t.Context(), user, 0, 0); err != nil {
					t.Fatal(err)
				}
				if v.events, err = s.Events(t.Context(), user, 0, 0); err != nil {
					t.Fatal(err)
				}
				return v
			}
			users := []string{"alice", "bob", "al", "nobody"}
			var before []view
			for _, u := range users {
				before = append(before, look(s, u))
			}
			s.Close()
			tamper(t, dir, func(tx *bolt.Tx) error {
				if err := toVersion(tx, versionNoInbox); err != nil {
					return err
				}
				if !stale {
					return nil
				}
				inbox, err := tx.CreateBucket(bucketInbox)
				if err != nil {
					return err
				}
				id, _ := noteKey(alice[0].ID)
				if err := inbox.Put(rowKey("carol"), encodeUser(1, 1)); err != nil {
					return err
				}
				return inbox.Put(inboxKey("carol", partUnread, 1), id)
			})

			s = openStore(t, dir)
			for i, u := range users {
				got := look(s, u)
				if !sameView(got.unread.Items, before[i].unread.Items) || got.unread.Total != before[i].unread.Total ||
					got.unread.Seq != before[i].unread.Seq {
					t.Errorf("%s: Unread after upgrade = %+v, want %+v", u, got.unread, before[i].unread)
				}
				if !sameView(got.created, before[i].created) {
					t.Errorf("%s: Created after upgrade = %+v, want %+v", u, got.created, before[i].created)
				}
				if len(got.events.Entries) != len(before[i].events.Entries) || got.events.Seq != before[i].events.Seq {
					t.Errorf("%s: Events after upgrade = %+v, want %+v", u, got.events, before[i].events)
				}
				for j := range got.events.Entries {
					if g, w := got.events.Entries[j], before[i].events.Entries[j]; g.Seq != w.Seq || g.Event != w.Event || g.Unread != w.Unread {
						t.Errorf("%s: entry %d after upgrade = %+v, want %+v", u, j, g, w)
					}
				}
			}
			if p, _ := s.Unread(t.Context(), "carol", 0, 0); len(p.Items) != 0 || p.Total != 0 {
				t.Errorf("carol, only in the stale inbox: %+v", p)
			}
			// Reads and writes go on: alice reads all, then gets one more.
			apply(t, s, time.Now(), readAllOp("alice"), createOp(t, "alice", 1))
			p, err := s.Unread(t.Context(), "alice", 0, 0)
			if err != nil || p.Total != 1 || len(p.Items) != 1 || p.Items[0].Seq != 9 {
				t.Errorf("alice after a read-all and a create: %+v %v, want seq 9 alone unread", p, err)
			}
			created, _ := s.Created(t.Context(), "alice", 0, 0)
			var seqs []int64
			for _, n := range created {
				seqs = append(seqs, n.Seq)
			}
			if want := []int64{1, 2, 3, 4, 5, 9}; !slices.Equal(seqs, want) {
				t.Errorf("alice's created seqs = %v, want %v", seqs, want)
			}
			s.Close()
			if v := fileVersion(t, dir); !bytes.Equal(v, []byte{formatVersion}) {
				t.Errorf("version after upgrade = %x, want %d", v, formatVersion)
			}
			tamper(t, dir, func(tx *bolt.Tx) error {
				for _, name := range inboxBuckets {
					if tx.Bucket(name) != nil {
						t.Errorf("bucket %s is still there after the upgrade", name)
					}
				}
				return nil
			})
		})
	}
}

// sameView reports whether two lists name the same notifications in the same order,
// read or not alike.
func sameView(a, b []herald.Notification) bool {
	return slices.EqualFunc(a, b, func(x, y herald.Notification) bool {
		return x.ID == y.ID && x.Seq == y.Seq && (x.ReadAt == nil) == (y.ReadAt == nil)
	})
}

// TestCommitPagesAtALargeLog: once every receiver has a long history, a commit of one
// notification each for 8 receivers far apart writes about a page of inbox per
// receiver and its branch page, not a page and a branch page in each of three buckets
// (users, byseq, unread, as up to version 4): the pages a commit writes are what its
// cost grows with as the log grows.
func TestCommitPagesAtALargeLog(t *testing.T) {
	const receivers, history, perCommit, commits = 500, 80, 8, 50
	s := openStore(t, t.TempDir())
	user := func(i int) string { return fmt.Sprintf("user-%05d", i%receivers) }
	next := 0
	for next < receivers*history {
		ops := make([]persistence.Op, 0, 1000)
		for ; len(ops) < cap(ops); next++ {
			ops = append(ops, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, user(next), next)}})
		}
		apply(t, s, persistence.Now(), ops...)
	}
	before := s.db.Stats()
	for range commits {
		ops := make([]persistence.Op, 0, perCommit)
		for ; len(ops) < cap(ops); next++ {
			ops = append(ops, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{newNote(t, user(next*61), next)}})
		}
		apply(t, s, persistence.Now(), ops...)
	}
	after := s.db.Stats()
	d := after.Sub(&before)
	pages := float64(d.TxStats.GetWrite()) / commits
	t.Logf("%.1f pages per commit of %d notifications for %d receivers with %d each", pages, perCommit, perCommit, history)
	// Measured: 24 pages; 49.5 with the version 4 layout.
	if limit := 3.5 * perCommit; pages > limit {
		t.Errorf("a commit of %d notifications writes %.1f pages, want at most %.0f", perCommit, pages, limit)
	}
}
