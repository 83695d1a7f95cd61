package persistence

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhq/herald"
)

// IdemKey is an idempotency key as stored: unique per sender and per kind of caller
// (herald.NewNotification.IdempotencyScope).
type IdemKey struct {
	SenderID string
	Key      string
}

func idemKeyOf(n *herald.NewNotification) IdemKey {
	return IdemKey{n.SenderID, n.IdempotencyScope()}
}

// Keys lists what a store must load (and, for a shared database, lock) before planning.
type Keys struct {
	Users           []string    // sorted and unique: lock user rows in this order
	NotificationIDs []string    // mark-read targets, unique
	Idempotency     []IdemKey   // unique
	Digests         []DigestKey // unique: open digests to load (their users are in Users)
}

// KeysOf returns what planning ops needs.
func KeysOf(ops []Op) Keys {
	var k Keys
	users := 0 // with repeats: one per created notification and per other op
	for i := range ops {
		switch ops[i].Kind {
		case OpCreate:
			users += len(ops[i].Creates)
		case OpMarkRead, OpReadAll, OpFlushDigest, OpSetPreferences:
			users++
		}
	}
	if users > 0 {
		k.Users = make([]string, 0, users)
	}
	seenID := map[string]bool{}
	seenKey := map[IdemKey]bool{}
	seenDigest := map[DigestKey]bool{}
	digest := func(dk DigestKey) {
		if !seenDigest[dk] {
			seenDigest[dk] = true
			k.Digests = append(k.Digests, dk)
		}
	}
	for i := range ops {
		op := &ops[i]
		switch op.Kind {
		case OpCreate:
			for j := range op.Creates {
				c := &op.Creates[j]
				k.Users = append(k.Users, c.ReceiverID)
				if c.Digest != nil {
					digest(DigestKey{UserID: c.ReceiverID, Type: c.Type, Rule: c.Digest.Rule})
				}
				if c.IdempotencyKey != "" {
					ik := idemKeyOf(c)
					if !seenKey[ik] {
						seenKey[ik] = true
						k.Idempotency = append(k.Idempotency, ik)
					}
				}
			}
		case OpMarkRead:
			k.Users = append(k.Users, op.UserID)
			if !seenID[op.ID] {
				seenID[op.ID] = true
				k.NotificationIDs = append(k.NotificationIDs, op.ID)
			}
		case OpReadAll:
			k.Users = append(k.Users, op.UserID)
		case OpSetPreferences:
			// Under the user's lock, like the creates that read them (PostgreSQL).
			k.Users = append(k.Users, op.UserID)
		case OpFlushDigest:
			k.Users = append(k.Users, op.Digest.UserID)
			digest(op.Digest)
		}
	}
	slices.Sort(k.Users)
	k.Users = slices.Compact(k.Users)
	return k
}

// UserState is a user's log position and unread total.
type UserState struct {
	UserID string
	Seq    int64
	Unread int64
}

// Idempotent is a stored notification created with an idempotency key.
type Idempotent struct {
	Notification herald.Notification
	Fingerprint  []byte
}

// Prior is the stored state a plan starts from. Missing users are at seq 0 with nothing
// unread; missing notifications do not exist.
type Prior struct {
	Users         map[string]UserState
	Notifications map[string]herald.Notification // by id, any receiver
	Idempotent    map[IdemKey]Idempotent
	Preferences   map[string]Preferences     // by user, of the Keys.Users that have any
	Digests       map[DigestKey]DigestBucket // the open ones among Keys.Digests
}

// StoredNotification is a notification row to insert.
type StoredNotification struct {
	herald.Notification
	UnreadAfter    int64  // the receiver's unread total right after the creation
	IdempotencyKey string // as stored (IdemKey.Key); empty when none
	Fingerprint    []byte // set with IdempotencyKey
}

// ReadRow marks one existing notification read.
type ReadRow struct {
	ID     string
	ReadAt time.Time
}

// ReadAllRow marks read every existing unread notification of UserID with seq < BeforeSeq.
type ReadAllRow struct {
	UserID    string
	ReadAt    time.Time
	BeforeSeq int64
}

// ContactRow is a user's contact as a batch leaves it; the zero Contact removes it.
type ContactRow struct {
	UserID  string
	Contact Contact
}

// PreferencesRow is a user's preferences as a batch leaves them; the zero value (no
// channel and no type entries) removes them.
type PreferencesRow struct {
	UserID      string
	Preferences Preferences
}

// Planned reports whether NewPlan decides ops of kind k. The others (OpFinishDeliveries,
// OpRetryDelivery, OpPrune) get an empty Result from NewPlan, and the store applies them
// in the batch's transaction, in op order, and fills their Result in.
func (k OpKind) Planned() bool { return k >= OpCreate && k <= OpSetPreferences }

// Plan is everything one batch writes. A store writes all of it in one transaction;
// the order of the parts does not matter.
type Plan struct {
	Created []StoredNotification // new rows, ReadAt already final for this batch
	Read    []ReadRow            // existing rows marked read
	ReadAll []ReadAllRow         // at most one per user
	Log     []herald.Entry       // read and read-all entries (creations live in their rows)
	Users   []UserState          // final state of each user that changed
	Entries []herald.Entry       // every appended entry in order, for delivery after commit
	// Deliveries are new outbox rows (email, webhook, escalations) of the created
	// notifications; Notification is left empty.
	Deliveries []Delivery
	// Digests are the open digests to write (insert or replace) as they end the batch;
	// DigestDeletes the ones to delete (flushed). A key is in at most one of the two.
	Digests       []DigestBucket
	DigestDeletes []DigestKey
	// Contacts and Preferences are the rows to write (upsert, or delete for the zero
	// value), one per user, as the batch's last op for that user left them, sorted by
	// user.
	Contacts    []ContactRow
	Preferences []PreferencesRow
}

// Now returns the batch timestamp a store should pass to NewPlan: UTC, at the microsecond
// precision every store keeps, so what is sent live equals what is read back.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// planner applies one batch. A notification created in this batch lives in its row of
// plan.Created, which mark-read and read-all change in place; an existing one that an
// op looked at lives in loaded. Both stay as the ops so far left them.
//
// Most batches only create, and never look a notification up: the maps used to find
// one (loaded, rows, readAll, idem) are built only when an op needs them.
type planner struct {
	now   time.Time
	prior Prior
	plan  Plan
	users map[string]int // index in plan.Users by user; nil until the first

	// idem maps the idempotency keys created in this batch to their row in plan.Created;
	// nil when no create of the batch has a key.
	idem map[IdemKey]int
	// loaded holds the existing notifications (of prior.Notifications) the batch has
	// looked at, by id, with what the batch did to them; nil until the first.
	loaded map[string]*herald.Notification
	// rows indexes plan.Created[:indexed] by id, for a mark-read of a notification
	// created in this batch. It is brought up to date (index) only on such a lookup,
	// so a batch without one never builds it.
	rows    map[string]int
	indexed int
	readAll map[string]int // index in plan.ReadAll by user; nil until the first
	marks   int            // mark-read ops in the batch, to size loaded and plan.Read
	readAt  *time.Time     // the batch time, as the ReadAt of whatever the batch reads

	// Backing arrays sized for the whole batch, so the hot path allocates per batch
	// rather than per notification. Pointers into the arena stay valid: it never grows
	// past its capacity (alloc falls back to the heap instead).
	arena    []herald.Notification // entries' snapshots and loaded notifications
	results  []herald.Notification // Result.Notifications of creates and mark-reads
	replayed []bool
	random   []byte // unused random bytes for ids

	digests map[DigestKey]*DigestBucket // open digests as this batch has them; nil: deleted
	dirty   map[DigestKey]bool          // the digests this batch changed

	// prefs holds the preferences this batch set, by user, over prior.Preferences;
	// contacts the contacts it set. Nil until the first.
	prefs    map[string]Preferences
	contacts map[string]Contact
}

// preferences returns user's preferences as the ops so far left them.
func (p *planner) preferences(user string) Preferences {
	if v, ok := p.prefs[user]; ok {
		return v
	}
	return p.prior.Preferences[user]
}

// alloc returns a pointer to a copy of *n.
func (p *planner) alloc(n *herald.Notification) *herald.Notification {
	if len(p.arena) == cap(p.arena) {
		c := *n
		return &c
	}
	p.arena = append(p.arena, *n)
	return &p.arena[len(p.arena)-1]
}

// newID returns a UUIDv7 (48-bit Unix milliseconds, then random bits) drawing its
// randomness from one read per batch.
func (p *planner) newID() string {
	if len(p.random) < 10 {
		p.random = make([]byte, 10*max(64, cap(p.plan.Created)))
		if _, err := rand.Read(p.random); err != nil {
			panic("crypto/rand failed: " + err.Error()) // never returns an error on Linux
		}
	}
	var u uuid.UUID
	ms := uint64(p.now.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(u[6:], p.random[:10])
	p.random = p.random[10:]
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u.String()
}

// NewPlan applies ops, in order, to prior and returns what to write and one Result per op.
func NewPlan(now time.Time, ops []Op, prior Prior) (Plan, []Result) {
	now = now.UTC().Truncate(time.Microsecond)
	// Upper bounds of what the batch makes, to size its backing arrays.
	creates, keyed, marks, others := 0, 0, 0, 0
	for i := range ops {
		switch ops[i].Kind {
		case OpCreate:
			creates += len(ops[i].Creates)
			for j := range ops[i].Creates {
				if ops[i].Creates[j].IdempotencyKey != "" {
					keyed++
				}
			}
		case OpFlushDigest:
			creates++ // one notification at most
		case OpMarkRead:
			marks++
		case OpReadAll:
			others++
		}
	}
	p := &planner{
		now:   now,
		prior: prior,
		marks: marks,
		// Per created notification, its entry's snapshot; per mark-read, the existing
		// notification it loads and its entry's snapshot.
		arena:    make([]herald.Notification, 0, creates+2*marks),
		results:  make([]herald.Notification, 0, creates+marks),
		replayed: make([]bool, 0, creates),
	}
	if keyed > 0 {
		p.idem = make(map[IdemKey]int, keyed)
	}
	p.plan.Created = make([]StoredNotification, 0, creates)
	p.plan.Entries = make([]herald.Entry, 0, creates+marks+others)
	if marks+others > 0 {
		p.plan.Log = make([]herald.Entry, 0, marks+others)
	}
	results := make([]Result, len(ops))
	for i := range ops {
		switch ops[i].Kind {
		case OpCreate:
			results[i] = p.create(ops[i].Creates)
		case OpMarkRead:
			results[i] = p.markRead(ops[i].UserID, ops[i].ID)
		case OpReadAll:
			results[i] = p.markAllRead(ops[i].UserID)
		case OpFlushDigest:
			results[i] = p.flushDigest(ops[i].Digest)
		case OpSetContact:
			if p.contacts == nil {
				p.contacts = map[string]Contact{}
			}
			p.contacts[ops[i].UserID] = ops[i].Contact
		case OpSetPreferences:
			if p.prefs == nil {
				p.prefs = map[string]Preferences{}
			}
			p.prefs[ops[i].UserID] = ops[i].Preferences
		case OpFinishDeliveries, OpRetryDelivery, OpPrune:
			// Applied by the store (OpKind.Planned).
		default:
			results[i] = Result{Err: herald.Errorf(herald.CodeInternal, "unknown operation %d", ops[i].Kind)}
		}
	}
	for u, c := range p.contacts {
		p.plan.Contacts = append(p.plan.Contacts, ContactRow{UserID: u, Contact: c})
	}
	for u, v := range p.prefs {
		p.plan.Preferences = append(p.plan.Preferences, PreferencesRow{UserID: u, Preferences: v})
	}
	slices.SortFunc(p.plan.Contacts, func(a, b ContactRow) int { return strings.Compare(a.UserID, b.UserID) })
	slices.SortFunc(p.plan.Preferences, func(a, b PreferencesRow) int { return strings.Compare(a.UserID, b.UserID) })
	for k := range p.dirty {
		if b := p.digests[k]; b == nil {
			p.plan.DigestDeletes = append(p.plan.DigestDeletes, k)
		} else {
			p.plan.Digests = append(p.plan.Digests, *b)
		}
	}
	slices.SortFunc(p.plan.Digests, func(a, b DigestBucket) int { return compareDigestKeys(a.Key, b.Key) })
	slices.SortFunc(p.plan.DigestDeletes, compareDigestKeys)
	slices.SortFunc(p.plan.Users, func(a, b UserState) int { return strings.Compare(a.UserID, b.UserID) })
	return p.plan, results
}

// user returns the state of user id as the batch has it so far, adding it to plan.Users
// on first use. The pointer is into plan.Users: it is only valid until the next call.
func (p *planner) user(id string) *UserState {
	if i, ok := p.users[id]; ok {
		return &p.plan.Users[i]
	}
	if p.users == nil {
		// PostgreSQL loads every user of the batch (the embedded store only those it
		// has): usually the batch's users, or close.
		p.users = make(map[string]int, len(p.prior.Users))
		p.plan.Users = make([]UserState, 0, len(p.prior.Users))
	}
	u := p.prior.Users[id]
	u.UserID = id
	p.users[id] = len(p.plan.Users)
	p.plan.Users = append(p.plan.Users, u)
	return &p.plan.Users[len(p.plan.Users)-1]
}

// at returns the batch time as a ReadAt. Every notification the batch marks read shares
// it: a ReadAt is only ever set, never changed in place.
func (p *planner) at() *time.Time {
	if p.readAt == nil {
		at := p.now
		p.readAt = &at
	}
	return p.readAt
}

// lookupIdem returns the fingerprint of the notification stored under k, by this
// batch or before it.
func (p *planner) lookupIdem(k IdemKey) ([]byte, bool) {
	if row, ok := p.idem[k]; ok {
		return p.plan.Created[row].Fingerprint, true
	}
	v, ok := p.prior.Idempotent[k]
	return v.Fingerprint, ok
}

// replay returns the notification stored under k, by this batch or before it, as the
// ops so far left it.
func (p *planner) replay(k IdemKey) (herald.Notification, bool) {
	if row, ok := p.idem[k]; ok {
		return p.plan.Created[row].Notification, true // the row is kept current
	}
	if v, ok := p.prior.Idempotent[k]; ok {
		return p.current(v.Notification), true
	}
	return herald.Notification{}, false
}

func (p *planner) create(items []herald.NewNotification) Result {
	// First pass: decide replays and conflicts, so a failing op changes nothing.
	type keyed struct {
		key IdemKey
		fp  []byte
	}
	var keys []keyed          // by item, for the items with an idempotency key
	var local map[IdemKey]int // key -> item index within this op, when it has several items
	for i := range items {
		it := &items[i]
		if it.IdempotencyKey == "" {
			continue
		}
		if keys == nil {
			keys = make([]keyed, len(items))
		}
		k, fp := idemKeyOf(it), it.Fingerprint()
		keys[i] = keyed{k, fp}
		if j, ok := local[k]; ok {
			if !bytes.Equal(keys[j].fp, fp) {
				return Result{Err: conflict(i, len(items))}
			}
			continue
		}
		if prev, ok := p.lookupIdem(k); ok && !bytes.Equal(prev, fp) {
			return Result{Err: conflict(i, len(items))}
		}
		if len(items) > 1 {
			if local == nil {
				local = map[IdemKey]int{}
			}
			local[k] = i
		}
	}
	// Second pass: store or replay.
	res := Result{Notifications: take(&p.results, len(items)), Replayed: take(&p.replayed, len(items))}
	firstEntry := len(p.plan.Entries)
	for i := range items {
		it := &items[i]
		if it.IdempotencyKey != "" {
			if prev, ok := p.replay(keys[i].key); ok {
				res.Notifications[i] = prev
				res.Replayed[i] = true
				continue
			}
		}
		prefs := p.preferences(it.ReceiverID)
		if !prefs.Allows(it.Type, herald.ChannelRealtime) {
			// The receiver turned this type off: nothing is stored, no channel sees it.
			if res.Suppressed == nil {
				res.Suppressed = make([]bool, len(items))
			}
			res.Suppressed[i] = true
			continue
		}
		if it.Digest != nil {
			p.addToDigest(it)
			if res.Digested == nil {
				res.Digested = make([]bool, len(items))
			}
			res.Digested[i] = true
			continue
		}
		u := p.user(it.ReceiverID)
		u.Seq++
		u.Unread++
		n := herald.Notification{
			ID:         p.newID(),
			Object:     it.Object,
			ReceiverID: it.ReceiverID,
			SenderID:   it.SenderID,
			Type:       it.Type,
			Payload:    it.Payload,
			Channels:   it.Channels,
			CreatedAt:  p.now,
			Seq:        u.Seq,
		}
		row := StoredNotification{Notification: n, UnreadAfter: u.Unread}
		if it.IdempotencyKey != "" {
			row.IdempotencyKey, row.Fingerprint = keys[i].key.Key, keys[i].fp
			p.idem[keys[i].key] = len(p.plan.Created)
		}
		p.plan.Created = append(p.plan.Created, row)
		// The entry gets its own copy: it shows the notification as created (unread)
		// even when a later op of the batch marks the row read.
		e := herald.Entry{UserID: n.ReceiverID, Seq: u.Seq, Event: herald.EventCreated, Unread: u.Unread, At: p.now, Notification: p.alloc(&n)}
		p.plan.Entries = append(p.plan.Entries, e)
		res.Notifications[i] = n
		p.deliveries(&n, it.ByService, it.Escalate, &prefs)
	}
	if n := len(p.plan.Entries); n > firstEntry {
		// The plan's entries are only ever appended to, so this view stays as it is.
		res.Entries = p.plan.Entries[firstEntry:n:n]
	}
	return res
}

// deliveries adds the outbox rows of a created notification: one per channel beyond
// realtime that the receiver allows, due now, and the escalation, due later and only
// if the notification is still unread then. Each row records byService, whether a
// service created the notification.
func (p *planner) deliveries(n *herald.Notification, byService bool, esc *herald.Escalation, prefs *Preferences) {
	add := func(c herald.Channel, due time.Time, unreadOnly bool) {
		p.plan.Deliveries = append(p.plan.Deliveries, Delivery{
			ID: p.newID(), NotificationID: n.ID, UserID: n.ReceiverID, Channel: c,
			State: DeliveryPending, DueAt: due, UnreadOnly: unreadOnly, ByService: byService,
			CreatedAt: p.now, UpdatedAt: p.now,
		})
	}
	for _, c := range n.Channels {
		if c != herald.ChannelRealtime && prefs.Allows(n.Type, c) {
			add(c, p.now, false)
		}
	}
	if esc != nil && esc.Channel != herald.ChannelRealtime && !slices.Contains(n.Channels, esc.Channel) && prefs.Allows(n.Type, esc.Channel) {
		add(esc.Channel, p.now.Add(esc.After).Truncate(time.Microsecond), true)
	}
}

// digest returns the open digest k as this batch has it, nil when there is none.
func (p *planner) digest(k DigestKey) *DigestBucket {
	if b, ok := p.digests[k]; ok {
		return b
	}
	b, ok := p.prior.Digests[k]
	if !ok {
		return nil
	}
	b.Items = slices.Clone(b.Items)
	p.setDigest(k, &b)
	return &b
}

func (p *planner) setDigest(k DigestKey, b *DigestBucket) {
	if p.digests == nil {
		p.digests = map[DigestKey]*DigestBucket{}
	}
	p.digests[k] = b
}

func (p *planner) changed(k DigestKey) {
	if p.dirty == nil {
		p.dirty = map[DigestKey]bool{}
	}
	p.dirty[k] = true
}

func compareDigestKeys(a, b DigestKey) int {
	if c := strings.Compare(a.UserID, b.UserID); c != 0 {
		return c
	}
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.Rule, b.Rule)
}

// addToDigest holds it back in its digest, opening one when there is none. A replay of
// an idempotency key the digest already holds adds nothing.
func (p *planner) addToDigest(it *herald.NewNotification) {
	k := DigestKey{UserID: it.ReceiverID, Type: it.Type, Rule: it.Digest.Rule}
	b := p.digest(k)
	if b == nil {
		b = &DigestBucket{Key: k, OpenedAt: p.now, DueAt: p.now.Add(it.Digest.Window).Truncate(time.Microsecond),
			SenderID: it.SenderID, Object: it.Object, Channels: it.Channels}
		p.setDigest(k, b)
	}
	// Keys are the sender's: the same key from two senders is two items.
	key := ""
	if it.IdempotencyKey != "" {
		key = it.SenderID + "\x00" + it.IdempotencyScope()
		for _, item := range b.Items {
			if item.IdempotencyKey == key {
				return
			}
		}
	}
	p.changed(k)
	b.Count++
	if len(b.Items) < MaxDigestItems {
		b.Items = append(b.Items, DigestItem{IdempotencyKey: key, Payload: it.Payload})
	}
}

// flushDigest stores digest k as one notification and closes it. A digest of one item
// is that item's notification; of more, its payload is
// {"count": n, "items": [payloads], "message": "<first message> (and n-1 more)"}.
func (p *planner) flushDigest(k DigestKey) Result {
	b := p.digest(k)
	if b == nil || b.DueAt.After(p.now) {
		return Result{} // flushed already (and maybe opened again since: not due yet)
	}
	// Only routing rules hold notifications back (Digest is not part of the wire format,
	// and rules validate as a service), so a digest is a service's notification.
	n := herald.NewNotification{ReceiverID: k.UserID, SenderID: b.SenderID, Type: k.Type, Object: b.Object,
		Channels: b.Channels, Payload: digestPayload(b), ByService: true}
	if n.Object == "" {
		n.Object = k.Type
	}
	p.setDigest(k, nil)
	p.changed(k)
	return p.create([]herald.NewNotification{n})
}

func digestPayload(b *DigestBucket) json.RawMessage {
	if b.Count == 1 && len(b.Items) == 1 {
		return b.Items[0].Payload
	}
	items := make([]json.RawMessage, len(b.Items))
	for i := range b.Items {
		items[i] = b.Items[i].Payload
	}
	var first struct {
		Message string `json:"message"`
	}
	if len(items) > 0 {
		_ = json.Unmarshal(items[0], &first)
	}
	msg := strconv.Itoa(b.Count) + " new notifications"
	if first.Message != "" {
		msg = first.Message + " (and " + strconv.Itoa(b.Count-1) + " more)"
	}
	out, _ := json.Marshal(struct {
		Count   int               `json:"count"`
		Items   []json.RawMessage `json:"items"`
		Message string            `json:"message"`
	}{b.Count, items, msg})
	return out
}

// conflict is the error of item i of a create op of n items: the field names the item
// when the op is a batch.
func conflict(i, n int) *herald.Error {
	field := "idempotencyKey"
	if n > 1 {
		field = "items[" + strconv.Itoa(i) + "].idempotencyKey"
	}
	return &herald.Error{Code: herald.CodeIdempotencyConflict, Field: field,
		Message: "this idempotencyKey was already used with a different body"}
}

// note returns notification id, existing or created in this batch, as the ops so far
// left it, to be changed in place; created says which. It returns nil when there is
// no such notification.
func (p *planner) note(id string) (n *herald.Notification, created bool) {
	if n, ok := p.loaded[id]; ok {
		return n, false
	}
	if n, ok := p.prior.Notifications[id]; ok {
		n = p.current(n)
		if p.loaded == nil {
			p.loaded = make(map[string]*herald.Notification, p.marks)
		}
		live := p.alloc(&n)
		p.loaded[id] = live
		return live, false
	}
	// Not an existing notification (the ids this batch creates are new UUIDs, never
	// among them): maybe one created earlier in this batch.
	p.index()
	if i, ok := p.rows[id]; ok {
		return &p.plan.Created[i].Notification, true
	}
	return nil, false
}

// index brings rows up to date with plan.Created.
func (p *planner) index() {
	if p.indexed == len(p.plan.Created) {
		return
	}
	if p.rows == nil {
		p.rows = make(map[string]int, cap(p.plan.Created))
	}
	for i := p.indexed; i < len(p.plan.Created); i++ {
		p.rows[p.plan.Created[i].ID] = i
	}
	p.indexed = len(p.plan.Created)
}

// current returns n, an existing notification as loaded, as the ops so far in this batch
// left it.
func (p *planner) current(n herald.Notification) herald.Notification {
	if live, ok := p.loaded[n.ID]; ok {
		return *live
	}
	if n.ReadAt == nil {
		// A read-all earlier in this batch already covered every existing row of its user.
		if ra, ok := p.readAll[n.ReceiverID]; ok && n.Seq < p.plan.ReadAll[ra].BeforeSeq {
			n.ReadAt = p.at() // the read-all's ReadAt
		}
	}
	return n
}

// take returns the next n elements of *backing, a batch's backing array, and moves past
// them. The arrays are sized for the whole batch; should one be short, take still works
// (the next views go to a new array).
func take[T any](backing *[]T, n int) []T {
	b := *backing
	if len(b)+n > cap(b) {
		b = slices.Grow(b, n)
	}
	*backing = b[:len(b)+n]
	return b[len(b) : len(b)+n : len(b)+n]
}

// result returns n as the one notification of a result, in the batch's backing array.
func (p *planner) result(n *herald.Notification) []herald.Notification {
	r := take(&p.results, 1)
	r[0] = *n
	return r
}

// logEntry appends e, a read or read-all entry, to the plan and returns it as the
// entries of its op's result.
func (p *planner) logEntry(e herald.Entry) []herald.Entry {
	p.plan.Log = append(p.plan.Log, e)
	p.plan.Entries = append(p.plan.Entries, e)
	k := len(p.plan.Entries)
	return p.plan.Entries[k-1 : k : k] // only ever appended to: this view stays as it is
}

func (p *planner) markRead(userID, id string) Result {
	var n *herald.Notification
	var created bool
	if _, ok := ParseID(id); ok {
		n, created = p.note(id)
	}
	if n == nil || n.ReceiverID != userID {
		return Result{Err: NotFound(id)}
	}
	if n.ReadAt != nil {
		return Result{Notifications: p.result(n)}
	}
	n.ReadAt = p.at() // for a notification created in this batch, n is its row
	if !created {
		if p.plan.Read == nil {
			p.plan.Read = make([]ReadRow, 0, p.marks)
		}
		p.plan.Read = append(p.plan.Read, ReadRow{ID: id, ReadAt: p.now})
	}
	u := p.user(userID)
	u.Seq++
	u.Unread--
	e := herald.Entry{UserID: userID, Seq: u.Seq, Event: herald.EventRead, Unread: u.Unread, At: p.now, Notification: p.alloc(n)}
	return Result{Notifications: p.result(n), Entries: p.logEntry(e)}
}

func (p *planner) markAllRead(userID string) Result {
	u := p.user(userID)
	at := p.now
	ra := &herald.ReadAll{ReadAt: at, Updated: u.Unread}
	if u.Unread == 0 {
		return Result{ReadAll: ra}
	}
	u.Seq++
	u.Unread = 0
	row := ReadAllRow{UserID: userID, ReadAt: at, BeforeSeq: u.Seq}
	e := herald.Entry{UserID: userID, Seq: u.Seq, Event: herald.EventReadAll, Unread: 0, At: at, ReadAll: ra}
	// The rows created in this batch: a scan rather than an index by user, which every
	// batch would have to build for the rare read-all.
	for i := range p.plan.Created {
		if n := &p.plan.Created[i]; n.ReceiverID == userID && n.ReadAt == nil {
			n.ReadAt = p.at()
		}
	}
	for _, n := range p.loaded { // existing rows already loaded for this batch
		if n.ReceiverID == userID && n.ReadAt == nil {
			n.ReadAt = p.at()
		}
	}
	if i, ok := p.readAll[userID]; ok {
		p.plan.ReadAll[i] = row
	} else {
		if p.readAll == nil {
			p.readAll = map[string]int{}
		}
		p.readAll[userID] = len(p.plan.ReadAll)
		p.plan.ReadAll = append(p.plan.ReadAll, row)
	}
	return Result{ReadAll: ra, Entries: p.logEntry(e)}
}
