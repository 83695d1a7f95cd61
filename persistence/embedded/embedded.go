// Package embedded is the store Herald uses when no PostgreSQL URL is configured: one
// file, herald.db, in the data directory, kept with bbolt (go.etcd.io/bbolt).
//
// # Why bbolt
//
// bbolt is a single-file B+tree in pure Go: no cgo, nothing to run beside Herald. Each
// write transaction is ACID and durable when it returns (the file is fsynced on commit),
// which is exactly the contract's "every acknowledged change survives a crash". It allows
// one write transaction at a time, which matches how Herald writes: every change (the
// notifications and their log, contacts, preferences, delivery outcomes and retries,
// digest flushes, pruning) is an op that the persistence actor batches into one Apply, so
// one fsync covers a whole batch. The only other write transactions are the dispatcher's
// lease claims (ClaimDeliveries), which bbolt runs one at a time with the batches, and
// which are opened only when a read transaction found a delivery due. Keys are ordered, so the
// per-user seq scans (unread newest first, the event log after a cursor) are cheap range
// scans. SQLite through modernc.org/sqlite would work too, but brings a C-to-Go translated
// engine, much slower builds and a SQL layer this store does not need.
//
// # Layout
//
// Keys of a user start with uvarint(len(user)) | user, which is prefix-free: one user's
// range never runs into another's. seq is a big-endian uint64, so a user's keys sort by
// seq. Buckets:
//
//	meta    "version" -> format version (4)
//	users   user                 -> seq (8) | unread total (8)
//	notes   id (16-byte UUID)    -> notification record (see codec.go): seq, createdAt,
//	                                readAt, unread_after, receiver, sender, type, object,
//	                                payload, idempotency key, channels
//	byseq   user | seq           -> id: the user's creation entries, for Created and Events
//	unread  user | seq           -> id: the unread index, deleted on read
//	log     user | seq           -> read or read-all entry: kind, at, unread after, and the
//	                                notification id (read) or the updated count (read-all)
//	logtime at | user | seq      -> empty: the log in time order, for pruning
//	idem    sender | key         -> id (16) | fingerprint
//
// A creation entry is rebuilt from the notification record (its unread_after is the
// entry's unread total, its readAt left out); a read entry from the log record and the
// notification. Pruning (OpPrune) deletes old rows of log only: byseq stays because Created pages by
// it, and Events tells an expired cursor by the time of its next entry, whichever bucket
// holds it.
//
// Every log row has exactly one logtime key, written and deleted in the same
// transaction. Its at is the entry's time in Unix microseconds, big-endian with the sign
// bit flipped so keys sort by time; the rest of the key is the log row's key. A prune walks
// logtime from its start and stops at the first key not older than the cutoff, so its
// cost follows what it deletes, not the size of the log.
//
// # Outbox
//
// The outbox (persistence.OutboxReader, Claimer and the delivery ops) and what decides
// it have buckets of their own, since version 3:
//
//	deliveries  id (16-byte UUID) -> delivery record (see codec.go): state, flags
//	                                 (unread-only), attempts, dueAt, createdAt,
//	                                 updatedAt, notification id, user, channel,
//	                                 last error
//	due         dueAt | id        -> empty: the pending deliveries in due order, for
//	                                 claims and OutboxStats
//	bystate     state (1) | id    -> empty: every delivery by state, in id order, for
//	                                 listing (1 pending, 2 sent, 3 dead, 4 cancelled)
//	contacts    user              -> Contact as JSON; no row for the zero Contact
//	prefs       user              -> Preferences as JSON; no row for the zero value
//
// Apply writes a batch's deliveries with its notifications, in the same transaction,
// loads the prefs rows of the batch's users for the planner, and writes the contacts and
// preferences the plan sets; it applies the batch's outcomes (OpFinishDeliveries) and
// retries (OpRetryDelivery) itself, after the plan, in op order. A delivery has exactly
// one bystate key, and a due key exactly while it is pending, at its dueAt (Unix
// microseconds with the sign bit flipped, like logtime's); both move in the transaction
// that changes the record. A claim walks due from its start up to now: it leases a
// delivery by moving its due key to the lease's end, so that no claim sees it again
// before the lease runs out unless an OpFinishDeliveries first takes it out of due (sent,
// dead) or moves it (a retry); an unread-only delivery whose notification was read is
// cancelled on the way instead, at most cancelChunk per transaction. A claim first looks
// at due in a read transaction and opens a write transaction only when something is
// due; a claim, or a batch, that changes nothing (outcomes of deliveries no longer
// pending, a retry of an id that is not dead, a setting left as it was) is rolled back,
// so an idle dispatcher's polls cost no fsync.
//
// # Digests
//
// Open digests (persistence.DigestReader, OpFlushDigest) have two buckets, since
// version 4:
//
//	digests    user | uvarint(len(type)) | type | rule -> digest record (see codec.go):
//	                                        openedAt, dueAt, count, sender, object,
//	                                        channels, items (idempotency key, payload)
//	digestdue  dueAt | digest key                      -> empty: the open digests in
//	                                                      due order, for DueDigests
//
// The digest key decodes back into user, type and rule (the user and the type are
// length-prefixed, the rule runs to the end). Apply loads the batch's digests for the
// planner and writes the ones the plan changes, each as a whole record, and deletes the
// flushed ones, in the batch's transaction. A digest has exactly one digestdue key, at
// its dueAt (Unix microseconds with the sign bit flipped, like logtime's), written,
// moved and deleted with its record. DueDigests walks digestdue from its start up to
// now in a read transaction. A batch that only adds to digests has no entries but is
// committed all the same; one that leaves every digest as it is stored (replays of held
// items, flushes of digests flushed already) is rolled back.
//
// # Format versions
//
// Version 1 had no logtime bucket, version 2 none of the outbox buckets (deliveries,
// due, bystate, contacts, prefs), version 3 none of the digest buckets (digests,
// digestdue). Open upgrades an older file in one transaction: for version 1 it builds
// logtime from every log row, for versions 1 and 2 it creates the outbox buckets (no
// build writes them into an older file; should some be there, their rows are kept and
// due and bystate rebuilt from deliveries), for versions 1 to 3 it creates the digest
// buckets (likewise, should some be there, the digests are kept and digestdue rebuilt
// from them), and then it records version 4, so a crash during the upgrade leaves the
// file as it was and the next Open starts over. A file with a newer version, or any
// other version this build does not know, fails Open with an error wrapping ErrFormat
// and is left as it was; so a version 4 file does not open in an older build, which
// would never flush its open digests (and a version 3 file not in a build before the
// outbox, which would store notifications without their deliveries and ignore
// preferences).
//
// # Closing
//
// Close waits for the transactions in flight, closes the file and releases the data
// directory's lock, so another process may open it; close the store after the persistence
// actor and the dispatcher have stopped.
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// FileName is the name of the database file inside the data directory.
const FileName = "herald.db"

// ErrInUse is returned by Open when another process (or another Store in this process)
// holds the data directory.
var ErrInUse = errors.New("data dir is in use")

// lockTimeout is how long Open waits for the file lock before reporting ErrInUse.
const lockTimeout = time.Second

// pruneChunk is how many log rows one OpPrune deletes at most, so that a large prune
// does not hold its batch, and the writer, for long: the op reports More, and the prune
// loop sends the next.
const pruneChunk = 10_000

// cancelChunk is how many escalations one claim transaction cancels at most, so that a
// burst of read escalations does not hold the writer for long; a claim goes on in
// further transactions.
const cancelChunk = 10_000

const (
	// formatVersion is the format this build writes.
	formatVersion = 4
	// versionNoLogTime is the format before the logtime index; Open upgrades it.
	versionNoLogTime = 1
	// versionNoOutbox is the format before the outbox, contacts and preferences; Open
	// upgrades it.
	versionNoOutbox = 2
	// versionNoDigests is the format before digests; Open upgrades it.
	versionNoDigests = 3
)

// logTimeFill is the fill percent of logtime pages. Its keys arrive almost always in
// increasing order (each batch at a later time), so a split page is not written again
// and can be filled further than bbolt's default of half.
const logTimeFill = 0.9

var (
	bucketMeta    = []byte("meta")
	bucketUsers   = []byte("users")
	bucketNotes   = []byte("notes")
	bucketBySeq   = []byte("byseq")
	bucketUnread  = []byte("unread")
	bucketLog     = []byte("log")
	bucketLogTime = []byte("logtime")
	bucketIdem    = []byte("idem")
	// Since version 3.
	bucketDeliveries = []byte("deliveries")
	bucketDue        = []byte("due")
	bucketByState    = []byte("bystate")
	bucketContacts   = []byte("contacts")
	bucketPrefs      = []byte("prefs")
	// Since version 4.
	bucketDigests   = []byte("digests")
	bucketDigestDue = []byte("digestdue")

	keyVersion = []byte("version")
)

var (
	// v1Buckets are the buckets of a version 1 file.
	v1Buckets = [][]byte{bucketMeta, bucketUsers, bucketNotes, bucketBySeq, bucketUnread, bucketLog, bucketIdem}
	// v2Buckets are the buckets of a version 2 file: version 1 and logtime.
	v2Buckets = append(slices.Clip(v1Buckets), bucketLogTime)
	// outboxBuckets are the buckets version 3 added.
	outboxBuckets = [][]byte{bucketDeliveries, bucketDue, bucketByState, bucketContacts, bucketPrefs}
	// v3Buckets are the buckets of a version 3 file: version 2 and the outbox.
	v3Buckets = append(slices.Clip(v2Buckets), outboxBuckets...)
	// digestBuckets are the buckets version 4 added.
	digestBuckets = [][]byte{bucketDigests, bucketDigestDue}
	// allBuckets are the buckets of the current format.
	allBuckets = append(slices.Clip(v3Buckets), digestBuckets...)
)

// ErrFormat is returned by Open when the file is not in a format this build reads: a
// newer version, an unknown one, or not a Herald store at all.
var ErrFormat = errors.New("unsupported file format")

// Options configures the store.
type Options struct {
	// Retention is how long the event log serves catching up; 0 means
	// persistence.DefaultRetention.
	Retention time.Duration
}

// Store is a persistence.Store in one bbolt file.
type Store struct {
	db          *bolt.DB
	retention   time.Duration
	pruneChunk  int // log rows per OpPrune
	cancelChunk int // escalations cancelled per claim transaction
}

var _ persistence.Store = (*Store)(nil)

// initialMmapSize is the address space reserved for the database file: 1 GiB.
const initialMmapSize = 1 << 30

// Open opens (creating when needed) the store in dir. A dir held by another open Store
// gives an error wrapping ErrInUse after about a second.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Retention <= 0 {
		opts.Retention = persistence.DefaultRetention
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
		// bbolt remaps the file each time it outgrows the mapping, and a remap waits
		// for every reader and blocks every writer: a store growing from 16 to 100 MB
		// stalled writes for a second or more. Reserving address space up front
		// (virtual memory only; pages count once touched) makes remaps rare.
		InitialMmapSize: initialMmapSize,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded store: %s: %w (another herald process has %s open)", dir, ErrInUse, FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded store: open %s: %w", path, err)
	}
	if err := db.Update(prepare); err != nil && !errors.Is(err, errNothingChanged) {
		db.Close()
		return nil, fmt.Errorf("embedded store: %s: %w", path, err)
	}
	return &Store{db: db, retention: opts.Retention, pruneChunk: pruneChunk, cancelChunk: cancelChunk}, nil
}

// prepare readies the file for this build: a new file gets every bucket and the current
// version, a version 1, 2 or 3 file is upgraded, and anything else it does not know is
// refused. A file already at the current version needs nothing and gets
// errNothingChanged.
func prepare(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return fmt.Errorf("%w: the file has buckets but no %s bucket, so it is not a Herald store", ErrFormat, bucketMeta)
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{formatVersion})
	}
	v := meta.Get(keyVersion)
	switch {
	case v == nil:
		return fmt.Errorf("%w: the file has no format version", ErrFormat)
	case len(v) != 1:
		return fmt.Errorf("%w: format version %x is not one byte", ErrFormat, v)
	case v[0] == formatVersion:
		if err := requireBuckets(tx, allBuckets); err != nil {
			return err
		}
		return errNothingChanged
	case v[0] == versionNoLogTime, v[0] == versionNoOutbox, v[0] == versionNoDigests:
		from := v[0] // read before the upgrades write
		if from <= versionNoLogTime {
			if err := upgradeNoLogTime(tx); err != nil {
				return err
			}
		}
		if from <= versionNoOutbox {
			if err := upgradeNoOutbox(tx); err != nil {
				return err
			}
		}
		if err := upgradeNoDigests(tx); err != nil {
			return err
		}
		return meta.Put(keyVersion, []byte{formatVersion})
	case v[0] > formatVersion:
		return fmt.Errorf("%w: format version %d is newer than this build reads (%d); it was written by a newer herald",
			ErrFormat, v[0], formatVersion)
	default:
		return fmt.Errorf("%w: unknown format version %d, this build reads %d", ErrFormat, v[0], formatVersion)
	}
}

// requireBuckets reports a missing bucket as corruption.
func requireBuckets(tx *bolt.Tx, names [][]byte) error {
	for _, name := range names {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %s is missing", errCorrupt, name)
		}
	}
	return nil
}

// upgradeNoLogTime moves a version 1 file to version 2: it builds logtime from every log
// row. It runs inside Open's one transaction, with the later upgrades and the version
// record, so the upgrade is all or nothing.
func upgradeNoLogTime(tx *bolt.Tx) error {
	if err := requireBuckets(tx, v1Buckets); err != nil {
		return err
	}
	// Version 1 never had logtime; should one be there, it is rebuilt all the same.
	if tx.Bucket(bucketLogTime) != nil {
		if err := tx.DeleteBucket(bucketLogTime); err != nil {
			return err
		}
	}
	idx, err := tx.CreateBucket(bucketLogTime)
	if err != nil {
		return err
	}
	var keys [][]byte
	err = tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
		at, err := logAt(v)
		if err != nil {
			return err
		}
		keys = append(keys, timeKey(at, k))
		return nil
	})
	if err != nil {
		return err
	}
	idx.FillPercent = logTimeFill
	return putSorted(idx, keys)
}

// putSorted puts keys, sorted, with empty values into idx. bbolt splits pages only on
// commit, so keys put in one transaction out of order would each be inserted into the
// middle of one ever larger node.
func putSorted(idx *bolt.Bucket, keys [][]byte) error {
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// upgradeNoOutbox moves a version 2 file to version 3: it creates the outbox, contacts
// and preferences buckets. Version 2 never had them; should any be there, their rows
// are kept and the two delivery indexes are rebuilt from the deliveries. It runs inside
// Open's one transaction, so the upgrade is all or nothing.
func upgradeNoOutbox(tx *bolt.Tx) error {
	if err := requireBuckets(tx, v2Buckets); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketDue, bucketByState} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
	}
	for _, name := range outboxBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	var due, byState [][]byte
	err := tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
		d, err := decodeDelivery(k, v)
		if err != nil {
			return err
		}
		byState = append(byState, stateKey(d.state, d.key))
		if d.state == statePending {
			due = append(due, dueKey(d.DueAt, d.key))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := putSorted(tx.Bucket(bucketDue), due); err != nil {
		return err
	}
	return putSorted(tx.Bucket(bucketByState), byState)
}

// upgradeNoDigests moves a version 3 file to version 4: it creates the digest buckets.
// Version 3 never had them; should any be there, the digests are kept and their due
// index is rebuilt from them. It runs inside Open's one transaction, so the upgrade is
// all or nothing.
func upgradeNoDigests(tx *bolt.Tx) error {
	if err := requireBuckets(tx, v3Buckets); err != nil {
		return err
	}
	if tx.Bucket(bucketDigestDue) != nil {
		if err := tx.DeleteBucket(bucketDigestDue); err != nil {
			return err
		}
	}
	for _, name := range digestBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	var due [][]byte
	err := tx.Bucket(bucketDigests).ForEach(func(k, v []byte) error {
		d, err := decodeDigest(k, v)
		if err != nil {
			return err
		}
		due = append(due, digestDueKey(d.DueAt, bytes.Clone(k)))
		return nil
	})
	if err != nil {
		return err
	}
	return putSorted(tx.Bucket(bucketDigestDue), due)
}

// Close closes the file. Closing twice is harmless.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*buckets) error { return nil })
}

// buckets are the buckets of one transaction.
type buckets struct {
	users, notes, bySeq, unread, log, logTime, idem *bolt.Bucket
	deliveries, due, byState, contacts, prefs       *bolt.Bucket
	digests, digestDue                              *bolt.Bucket
}

func open(tx *bolt.Tx) *buckets {
	return &buckets{
		users:   tx.Bucket(bucketUsers),
		notes:   tx.Bucket(bucketNotes),
		bySeq:   tx.Bucket(bucketBySeq),
		unread:  tx.Bucket(bucketUnread),
		log:     tx.Bucket(bucketLog),
		logTime: tx.Bucket(bucketLogTime),
		idem:    tx.Bucket(bucketIdem),

		deliveries: tx.Bucket(bucketDeliveries),
		due:        tx.Bucket(bucketDue),
		byState:    tx.Bucket(bucketByState),
		contacts:   tx.Bucket(bucketContacts),
		prefs:      tx.Bucket(bucketPrefs),

		digests:   tx.Bucket(bucketDigests),
		digestDue: tx.Bucket(bucketDigestDue),
	}
}

// storeErr turns a failure into the error a caller sees: an *herald.Error as it is, a
// corrupt record as internal, anything else (bbolt, the disk, a closed store) as
// unavailable.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var he *herald.Error
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, errCorrupt):
		return &herald.Error{Code: herald.CodeInternal, Message: "stored data is corrupt", Err: err}
	}
	return herald.Unavailable(err)
}

func (s *Store) view(ctx context.Context, fn func(*buckets) error) error {
	if err := ctx.Err(); err != nil {
		return herald.Unavailable(err)
	}
	return storeErr(s.db.View(func(tx *bolt.Tx) error { return fn(open(tx)) }))
}

// user returns the seq and unread total of user (zero when unknown).
func (b *buckets) user(user string) (seq, unread int64, err error) {
	v := b.users.Get(userPrefix(user))
	if v == nil {
		return 0, 0, nil
	}
	return decodeUser(v)
}

// note returns the notification with key id, or false when there is none.
func (b *buckets) note(id []byte) (storedNote, bool, error) {
	v := b.notes.Get(id)
	if v == nil {
		return storedNote{}, false, nil
	}
	n, err := decodeNote(id, v)
	return n, err == nil, err
}

// mustNote returns the notification an index points at; its absence is corruption.
func (b *buckets) mustNote(id []byte) (storedNote, error) {
	n, ok, err := b.note(id)
	if err == nil && !ok {
		err = fmt.Errorf("%w: index points at a missing notification", errCorrupt)
	}
	return n, err
}

// ---- writes ----

// Apply performs ops in one bbolt transaction: one fsync for the whole batch. The
// planner decides the planned ops; the others (delivery outcomes, retries, pruning) are
// applied here, after the plan is written, in op order.
func (s *Store) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, herald.Unavailable(err)
	}
	var results []persistence.Result
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := open(tx)
		prior, err := b.prior(persistence.KeysOf(ops))
		if err != nil {
			return err
		}
		plan, res := persistence.NewPlan(now, ops, prior)
		results = res
		changed, err := b.write(&plan)
		if err != nil {
			return err
		}
		for i := range ops {
			if ops[i].Kind.Planned() {
				continue
			}
			c, err := s.applyOwn(b, now, &ops[i], &results[i])
			if err != nil {
				return err
			}
			changed = changed || c
		}
		if !changed {
			return errNothingChanged // roll back: no write, no fsync
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingChanged) {
		return nil, storeErr(err)
	}
	return results, nil
}

// applyOwn applies one op the planner leaves to the store, filling in its result, and
// reports whether it changed anything.
func (s *Store) applyOwn(b *buckets, now time.Time, op *persistence.Op, r *persistence.Result) (bool, error) {
	switch op.Kind {
	case persistence.OpFinishDeliveries:
		return b.finish(stamp(now), op.Outcomes)
	case persistence.OpRetryDelivery:
		d, ok, err := b.retry(stamp(now), op.ID)
		if err != nil || !ok {
			if err == nil {
				r.Err = &herald.Error{Code: herald.CodeNotFound, Message: "no dead delivery " + op.ID, Field: "id"}
			}
			return false, err
		}
		r.Delivery = &d
		return true, nil
	case persistence.OpPrune:
		n, changed, more, err := b.prune(op.Cutoff, s.pruneChunk)
		r.Pruned, r.More = n, more
		return changed, err
	}
	r.Err = herald.Errorf(herald.CodeInternal, "unknown operation %d", op.Kind)
	return false, nil
}

// errNothingChanged rolls back a transaction that changed nothing: a batch whose
// operations all changed nothing (replays, repeated mark-reads, read-all with nothing
// unread, replays of held items, flushes of digests flushed already, settings left as
// they were, outcomes of deliveries no longer pending, prunes with nothing to delete,
// failed ops), a claim that found nothing left to claim, or Open of a file that needs
// no upgrade.
var errNothingChanged = errors.New("nothing changed")

// prior loads what the planner needs.
func (b *buckets) prior(keys persistence.Keys) (persistence.Prior, error) {
	p := persistence.Prior{
		Users:         make(map[string]persistence.UserState, len(keys.Users)),
		Notifications: make(map[string]herald.Notification, len(keys.NotificationIDs)),
		Idempotent:    make(map[persistence.IdemKey]persistence.Idempotent, len(keys.Idempotency)),
	}
	for _, u := range keys.Users {
		v := b.users.Get(userPrefix(u))
		if v == nil {
			continue
		}
		seq, unread, err := decodeUser(v)
		if err != nil {
			return p, err
		}
		p.Users[u] = persistence.UserState{UserID: u, Seq: seq, Unread: unread}
	}
	for _, u := range keys.Users {
		prefs, ok, err := b.preferences(u)
		if err != nil {
			return p, err
		}
		if ok {
			if p.Preferences == nil {
				p.Preferences = map[string]persistence.Preferences{}
			}
			p.Preferences[u] = prefs
		}
	}
	for _, id := range keys.NotificationIDs {
		k, ok := noteKey(id)
		if !ok {
			continue
		}
		n, ok, err := b.note(k)
		if err != nil {
			return p, err
		}
		if ok {
			p.Notifications[id] = n.Notification
		}
	}
	for _, ik := range keys.Idempotency {
		v := b.idem.Get(idemKey(ik.SenderID, ik.Key))
		if v == nil {
			continue
		}
		id, fp, err := decodeIdem(v)
		if err != nil {
			return p, err
		}
		n, err := b.mustNote(id)
		if err != nil {
			return p, err
		}
		p.Idempotent[ik] = persistence.Idempotent{Notification: n.Notification, Fingerprint: fp}
	}
	for _, k := range keys.Digests {
		d, ok, err := b.digest(k)
		if err != nil {
			return p, err
		}
		if ok {
			if p.Digests == nil {
				p.Digests = map[persistence.DigestKey]persistence.DigestBucket{}
			}
			p.Digests[k] = d
		}
	}
	return p, nil
}

// write stores plan and reports whether that changed anything: a plan without entries
// may only rewrite digests as they are stored. bbolt keeps the slices given to Put until
// commit, so every key and value here is freshly allocated.
func (b *buckets) write(plan *persistence.Plan) (bool, error) {
	changed := len(plan.Entries) > 0
	for i := range plan.Created {
		c := &plan.Created[i]
		id, ok := noteKey(c.ID)
		if !ok {
			return false, herald.Errorf(herald.CodeInternal, "planned notification id %q is not a UUID", c.ID)
		}
		if err := b.notes.Put(id, encodeNote(&c.Notification, c.UnreadAfter, c.IdempotencyKey)); err != nil {
			return false, err
		}
		k := seqKey(c.ReceiverID, c.Seq)
		if err := b.bySeq.Put(k, id); err != nil {
			return false, err
		}
		if c.ReadAt == nil {
			if err := b.unread.Put(k, id); err != nil {
				return false, err
			}
		}
		if c.IdempotencyKey != "" {
			if err := b.idem.Put(idemKey(c.SenderID, c.IdempotencyKey), encodeIdem(id, c.Fingerprint)); err != nil {
				return false, err
			}
		}
	}
	for _, r := range plan.Read {
		id, ok := noteKey(r.ID)
		if !ok {
			return false, herald.Errorf(herald.CodeInternal, "planned read of %q, not a UUID", r.ID)
		}
		n, err := b.mustNote(id)
		if err != nil {
			return false, err
		}
		if err := b.markRead(id, seqKey(n.ReceiverID, n.Seq), r.ReadAt); err != nil {
			return false, err
		}
	}
	for _, ra := range plan.ReadAll {
		if err := b.readAll(ra); err != nil {
			return false, err
		}
	}
	b.logTime.FillPercent = logTimeFill
	for i := range plan.Log {
		e := &plan.Log[i]
		v, err := encodeLog(e)
		if err != nil {
			return false, err
		}
		k := seqKey(e.UserID, e.Seq)
		if err := b.log.Put(k, v); err != nil {
			return false, err
		}
		if err := b.logTime.Put(timeKey(e.At, k), nil); err != nil {
			return false, err
		}
	}
	for _, u := range plan.Users {
		if err := b.users.Put(userPrefix(u.UserID), encodeUser(u.Seq, u.Unread)); err != nil {
			return false, err
		}
	}
	for i := range plan.Deliveries {
		if err := b.insertDelivery(&plan.Deliveries[i]); err != nil {
			return false, err
		}
	}
	for i := range plan.Digests {
		put, err := b.putDigest(&plan.Digests[i])
		if err != nil {
			return false, err
		}
		changed = changed || put
	}
	for _, k := range plan.DigestDeletes {
		deleted, err := b.deleteDigest(k)
		if err != nil {
			return false, err
		}
		changed = changed || deleted
	}
	for _, c := range plan.Contacts {
		put, err := putUserJSON(b.contacts, c.UserID, c.Contact, c.Contact == persistence.Contact{})
		if err != nil {
			return false, err
		}
		changed = changed || put
	}
	for _, p := range plan.Preferences {
		put, err := putUserJSON(b.prefs, p.UserID, p.Preferences, len(p.Preferences.Channels) == 0 && len(p.Preferences.Types) == 0)
		if err != nil {
			return false, err
		}
		changed = changed || put
	}
	return changed, nil
}

// markRead sets the readAt of notification id and drops it from the unread index.
func (b *buckets) markRead(id, indexKey []byte, at time.Time) error {
	v := b.notes.Get(id)
	if v == nil {
		return fmt.Errorf("%w: read of a missing notification", errCorrupt)
	}
	nv, err := markNoteRead(v, at)
	if err != nil {
		return err
	}
	if err := b.notes.Put(id, nv); err != nil {
		return err
	}
	return b.unread.Delete(indexKey)
}

// readAll marks read every notification in the user's unread index before ra.BeforeSeq.
func (b *buckets) readAll(ra persistence.ReadAllRow) error {
	prefix := userPrefix(ra.UserID)
	type hit struct{ key, id []byte }
	var hits []hit
	c := b.unread.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
		if keySeq(k) >= ra.BeforeSeq {
			break
		}
		hits = append(hits, hit{bytes.Clone(k), bytes.Clone(v)})
	}
	for _, h := range hits {
		if err := b.markRead(h.id, h.key, ra.ReadAt); err != nil {
			return err
		}
	}
	return nil
}

// prune deletes read and read-all entries recorded before cutoff, oldest first, up to
// chunk of them, and reports how many went, whether it deleted any key, and whether
// older ones are left. It walks
// logtime from its start and stops at the first entry not older than cutoff, so its cost
// follows what it deletes. Creation entries stay with their notifications.
func (b *buckets) prune(cutoff time.Time, chunk int) (n int64, changed, more bool, err error) {
	end := timeBound(cutoff)
	var old [][]byte
	c := b.logTime.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) <= timeKeyLen {
			return 0, false, false, fmt.Errorf("%w: logtime key of %d bytes", errCorrupt, len(k))
		}
		if bytes.Compare(k[:timeKeyLen], end) >= 0 {
			break
		}
		if len(old) == chunk {
			more = true
			break
		}
		old = append(old, bytes.Clone(k))
	}
	lc := b.log.Cursor()
	for _, k := range old {
		if err := b.logTime.Delete(k); err != nil {
			return 0, false, false, err
		}
		// A key without its log row is dropped all the same, but not counted.
		lk := k[timeKeyLen:]
		if got, _ := lc.Seek(lk); bytes.Equal(got, lk) {
			if err := lc.Delete(); err != nil {
				return 0, false, false, err
			}
			n++
		}
	}
	return n, len(old) > 0, more, nil
}

// ---- reads ----

// Get returns notification id of user.
func (s *Store) Get(ctx context.Context, userID, id string) (herald.Notification, error) {
	var n storedNote
	err := s.view(ctx, func(b *buckets) error {
		k, ok := noteKey(id)
		if ok {
			var err error
			if n, ok, err = b.note(k); err != nil {
				return err
			}
		}
		if !ok || n.ReceiverID != userID {
			return persistence.NotFound(id)
		}
		return nil
	})
	return n.Notification, err
}

// bound returns limit, or no bound for limit <= 0.
func bound(limit int) int {
	if limit <= 0 {
		return math.MaxInt
	}
	return limit
}

// Unread returns up to limit unread notifications of user with seq < before (before <= 0:
// no bound), newest first; limit <= 0 means no limit.
func (s *Store) Unread(ctx context.Context, userID string, before int64, limit int) (persistence.UnreadPage, error) {
	var p persistence.UnreadPage
	limit = bound(limit)
	err := s.view(ctx, func(b *buckets) error {
		var err error
		if p.Seq, p.Total, err = b.user(userID); err != nil {
			return err
		}
		if p.Total == 0 {
			return nil
		}
		if before <= 0 {
			before = math.MaxInt64
		}
		prefix := userPrefix(userID)
		c := b.unread.Cursor()
		var k, v []byte
		if k, _ = c.Seek(withSeq(prefix, before)); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(p.Items) < limit; k, v = c.Prev() {
			n, err := b.mustNote(v)
			if err != nil {
				return err
			}
			p.Items = append(p.Items, n.Notification)
		}
		return nil
	})
	return p, err
}

// Created returns up to limit notifications of user created after log position since,
// oldest first; limit <= 0 means no limit.
func (s *Store) Created(ctx context.Context, userID string, since int64, limit int) ([]herald.Notification, error) {
	var out []herald.Notification
	limit = bound(limit)
	since = max(since, 0)
	err := s.view(ctx, func(b *buckets) error {
		prefix := userPrefix(userID)
		c := b.bySeq.Cursor()
		for k, v := c.Seek(withSeq(prefix, since+1)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Next() {
			n, err := b.mustNote(v)
			if err != nil {
				return err
			}
			out = append(out, n.Notification)
		}
		return nil
	})
	return out, err
}

// UnreadCount returns the user's unread total.
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.view(ctx, func(b *buckets) error {
		var err error
		_, n, err = b.user(userID)
		return err
	})
	return n, err
}

// Heads sets seqs[i] to the latest seq of users[i], 0 when the user has no log, in one
// read transaction.
func (s *Store) Heads(ctx context.Context, users []string, seqs []int64) error {
	return s.view(ctx, func(b *buckets) error {
		for i, u := range users {
			seq, _, err := b.user(u)
			if err != nil {
				return err
			}
			seqs[i] = seq
		}
		return nil
	})
}

// Events returns up to limit entries of user's log after since, oldest first, merging the
// creation entries (byseq) with the read and read-all entries (log); limit <= 0 means no
// limit. A cursor beyond the latest seq, or whose next entry is gone or older than the
// retention, gets Reset.
func (s *Store) Events(ctx context.Context, userID string, since int64, limit int) (persistence.EventsPage, error) {
	var p persistence.EventsPage
	limit = bound(limit)
	since = max(since, 0)
	horizon := time.Now().Add(-s.retention)
	err := s.view(ctx, func(b *buckets) error {
		var err error
		if p.Seq, _, err = b.user(userID); err != nil {
			return err
		}
		switch {
		case since > p.Seq:
			p.Reset = true
			return nil
		case since == p.Seq:
			return nil
		}
		prefix := userPrefix(userID)
		created := newStream(b.bySeq.Cursor(), prefix, since+1)
		logged := newStream(b.log.Cursor(), prefix, since+1)
		for next := since + 1; next <= p.Seq && len(p.Entries) < limit; next++ {
			var e herald.Entry
			var err error
			switch {
			case created.seq == next:
				e, err = b.createdEntry(userID, created.v)
				created.next()
			case logged.seq == next:
				e, err = b.loggedEntry(userID, next, logged.v)
				logged.next()
			default: // pruned: the cursor is past the retention
				p.Entries, p.Reset = nil, true
				return nil
			}
			if err != nil {
				return err
			}
			if next == since+1 && e.At.Before(horizon) {
				p.Reset = true
				return nil
			}
			p.Entries = append(p.Entries, e)
		}
		return nil
	})
	if err != nil {
		return persistence.EventsPage{}, err
	}
	return p, nil
}

// stream walks one user's keys of a bucket in seq order; seq is 0 at the end.
type stream struct {
	c      *bolt.Cursor
	prefix []byte
	seq    int64
	v      []byte
}

func newStream(c *bolt.Cursor, prefix []byte, from int64) *stream {
	s := &stream{c: c, prefix: prefix}
	s.at(c.Seek(withSeq(prefix, from)))
	return s
}

func (s *stream) next() { s.at(s.c.Next()) }

func (s *stream) at(k, v []byte) {
	if k == nil || !bytes.HasPrefix(k, s.prefix) || len(k) != len(s.prefix)+8 {
		s.seq, s.v = 0, nil
		return
	}
	s.seq, s.v = keySeq(k), v
}

// createdEntry rebuilds the creation entry of notification id: as it was created, unread.
func (b *buckets) createdEntry(userID string, id []byte) (herald.Entry, error) {
	n, err := b.mustNote(id)
	if err != nil {
		return herald.Entry{}, err
	}
	note := n.Notification
	note.ReadAt = nil
	return herald.Entry{UserID: userID, Seq: note.Seq, Event: herald.EventCreated, Unread: n.UnreadAfter,
		At: note.CreatedAt, Notification: &note}, nil
}

// loggedEntry rebuilds a read or read-all entry from its log record.
func (b *buckets) loggedEntry(userID string, seq int64, v []byte) (herald.Entry, error) {
	l, err := decodeLog(v)
	if err != nil {
		return herald.Entry{}, err
	}
	e := herald.Entry{UserID: userID, Seq: seq, Unread: l.Unread, At: l.At}
	switch l.Kind {
	case logRead:
		n, err := b.mustNote(l.ID)
		if err != nil {
			return herald.Entry{}, err
		}
		note := n.Notification
		at := l.At
		note.ReadAt = &at
		e.Event, e.Notification = herald.EventRead, &note
	default:
		e.Event, e.ReadAll = herald.EventReadAll, &herald.ReadAll{ReadAt: l.At, Updated: l.Updated}
	}
	return e, nil
}
