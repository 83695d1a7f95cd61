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
}

// Now returns the batch timestamp a store should pass to NewPlan: UTC, at the microsecond
// precision every store keeps, so what is sent live equals what is read back.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

type planner struct {
	now   time.Time
	prior Prior
	plan  Plan
	users map[string]*UserState
	notes map[string]*herald.Notification // existing and created in this batch, by id
	rows  map[string]int                  // index in plan.Created by id
	idem  map[IdemKey]Idempotent          // keys created in this batch
	// fresh lists, per user, the ids created in this batch (for read-all).
	fresh   map[string][]string
	readAll map[string]int // index in plan.ReadAll by user

	// Backing arrays sized for the whole batch, so the hot path allocates per batch
	// rather than per notification. Pointers into notes stay valid: it never grows
	// past its capacity (alloc falls back to the heap instead).
	arena    []herald.Notification
	results  []herald.Notification
	replayed []bool
	random   []byte // unused random bytes for ids

	digests map[DigestKey]*DigestBucket // open digests as this batch has them; nil: deleted
	dirty   map[DigestKey]bool          // the digests this batch changed
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
		p.random = make([]byte, 10*max(64, cap(p.results)))
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
	creates, others := 0, 0
	for i := range ops {
		switch ops[i].Kind {
		case OpCreate:
			creates += len(ops[i].Creates)
		case OpFlushDigest:
			creates++ // one notification at most
		default:
			others++
		}
	}
	p := &planner{
		now:      now,
		prior:    prior,
		users:    make(map[string]*UserState, len(prior.Users)),
		notes:    make(map[string]*herald.Notification, creates+others),
		rows:     make(map[string]int, creates),
		idem:     map[IdemKey]Idempotent{},
		fresh:    make(map[string][]string, len(prior.Users)),
		readAll:  map[string]int{},
		arena:    make([]herald.Notification, 0, 2*(creates+others)),
		results:  make([]herald.Notification, 0, creates),
		replayed: make([]bool, 0, creates),
	}
	p.plan.Created = make([]StoredNotification, 0, creates)
	p.plan.Entries = make([]herald.Entry, 0, creates+others)
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
		default:
			results[i] = Result{Err: herald.Errorf(herald.CodeInternal, "unknown operation %d", ops[i].Kind)}
		}
	}
	for _, u := range p.users {
		p.plan.Users = append(p.plan.Users, *u)
	}
	for k := range p.dirty {
		if b := p.digests[k]; b == nil {
			p.plan.DigestDeletes = append(p.plan.DigestDeletes, k)
		} else {
			p.plan.Digests = append(p.plan.Digests, *b)
		}
	}
	slices.SortFunc(p.plan.Digests, func(a, b DigestBucket) int { return compareDigestKeys(a.Key, b.Key) })
	slices.SortFunc(p.plan.DigestDeletes, compareDigestKeys)
	slices.SortFunc(p.plan.Users, func(a, b UserState) int {
		switch {
		case a.UserID < b.UserID:
			return -1
		case a.UserID > b.UserID:
			return 1
		}
		return 0
	})
	return p.plan, results
}

func (p *planner) user(id string) *UserState {
	if u, ok := p.users[id]; ok {
		return u
	}
	u := p.prior.Users[id]
	u.UserID = id
	p.users[id] = &u
	return &u
}

func (p *planner) lookupIdem(k IdemKey) (Idempotent, bool) {
	if v, ok := p.idem[k]; ok {
		return v, true
	}
	v, ok := p.prior.Idempotent[k]
	return v, ok
}

func (p *planner) create(items []herald.NewNotification) Result {
	// First pass: decide replays and conflicts, so a failing op changes nothing.
	var fps [][]byte
	var local map[IdemKey]int // key -> item index within this op
	for i := range items {
		it := &items[i]
		if it.IdempotencyKey == "" {
			continue
		}
		if fps == nil {
			fps, local = make([][]byte, len(items)), map[IdemKey]int{}
		}
		fps[i] = it.Fingerprint()
		k := idemKeyOf(it)
		if j, ok := local[k]; ok {
			if !bytes.Equal(fps[j], fps[i]) {
				return Result{Err: conflict(i, len(items))}
			}
			continue
		}
		if prev, ok := p.lookupIdem(k); ok && !bytes.Equal(prev.Fingerprint, fps[i]) {
			return Result{Err: conflict(i, len(items))}
		}
		local[k] = i
	}
	// Second pass: store or replay.
	start := len(p.results)
	p.results = p.results[:start+len(items)]
	p.replayed = p.replayed[:start+len(items)]
	res := Result{
		Notifications: p.results[start : start+len(items) : start+len(items)],
		Replayed:      p.replayed[start : start+len(items) : start+len(items)],
	}
	firstEntry := len(p.plan.Entries)
	for i := range items {
		it := &items[i]
		if it.IdempotencyKey != "" {
			if prev, ok := p.lookupIdem(idemKeyOf(it)); ok {
				res.Notifications[i] = p.current(prev.Notification)
				res.Replayed[i] = true
				continue
			}
		}
		prefs := p.prior.Preferences[it.ReceiverID]
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
			k := idemKeyOf(it)
			row.IdempotencyKey, row.Fingerprint = k.Key, fps[i]
			p.idem[k] = Idempotent{Notification: n, Fingerprint: fps[i]}
		}
		p.rows[n.ID] = len(p.plan.Created)
		p.plan.Created = append(p.plan.Created, row)
		p.notes[n.ID] = p.alloc(&n)
		p.fresh[n.ReceiverID] = append(p.fresh[n.ReceiverID], n.ID)
		e := herald.Entry{UserID: n.ReceiverID, Seq: u.Seq, Event: herald.EventCreated, Unread: u.Unread, At: p.now, Notification: p.alloc(&n)}
		p.plan.Entries = append(p.plan.Entries, e)
		res.Notifications[i] = n
		p.deliveries(&n, it.Escalate, &prefs)
	}
	if n := len(p.plan.Entries); n > firstEntry {
		// The plan's entries are only ever appended to, so this view stays as it is.
		res.Entries = p.plan.Entries[firstEntry:n:n]
	}
	return res
}

// deliveries adds the outbox rows of a created notification: one per channel beyond
// realtime that the receiver allows, due now, and the escalation, due later and only
// if the notification is still unread then.
func (p *planner) deliveries(n *herald.Notification, esc *herald.Escalation, prefs *Preferences) {
	add := func(c herald.Channel, due time.Time, unreadOnly bool) {
		p.plan.Deliveries = append(p.plan.Deliveries, Delivery{
			ID: p.newID(), NotificationID: n.ID, UserID: n.ReceiverID, Channel: c,
			State: DeliveryPending, DueAt: due, UnreadOnly: unreadOnly, CreatedAt: p.now, UpdatedAt: p.now,
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
	n := herald.NewNotification{ReceiverID: k.UserID, SenderID: b.SenderID, Type: k.Type, Object: b.Object,
		Channels: b.Channels, Payload: digestPayload(b)}
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

func (p *planner) note(id string) *herald.Notification {
	if n, ok := p.notes[id]; ok {
		return n
	}
	n, ok := p.prior.Notifications[id]
	if !ok {
		return nil
	}
	n = p.current(n)
	p.notes[id] = &n
	return &n
}

// current returns n, as loaded or created, as the ops so far in this batch left it.
func (p *planner) current(n herald.Notification) herald.Notification {
	if live, ok := p.notes[n.ID]; ok {
		return *live
	}
	if n.ReadAt == nil {
		// A read-all earlier in this batch already covered every existing row of its user.
		if ra, ok := p.readAll[n.ReceiverID]; ok && n.Seq < p.plan.ReadAll[ra].BeforeSeq {
			at := p.plan.ReadAll[ra].ReadAt
			n.ReadAt = &at
		}
	}
	return n
}

func (p *planner) markRead(userID, id string) Result {
	var n *herald.Notification
	if _, ok := ParseID(id); ok {
		n = p.note(id)
	}
	if n == nil || n.ReceiverID != userID {
		return Result{Err: &herald.Error{Code: herald.CodeNotFound, Message: "no notification " + id + " for this user", Field: "id"}}
	}
	if n.ReadAt != nil {
		return Result{Notifications: []herald.Notification{*n}}
	}
	at := p.now
	n.ReadAt = &at
	if i, ok := p.rows[id]; ok {
		p.plan.Created[i].ReadAt = &at
	} else {
		p.plan.Read = append(p.plan.Read, ReadRow{ID: id, ReadAt: at})
	}
	u := p.user(userID)
	u.Seq++
	u.Unread--
	snapshot := *n
	e := herald.Entry{UserID: userID, Seq: u.Seq, Event: herald.EventRead, Unread: u.Unread, At: at, Notification: &snapshot}
	p.plan.Log = append(p.plan.Log, e)
	p.plan.Entries = append(p.plan.Entries, e)
	return Result{Notifications: []herald.Notification{*n}, Entries: []herald.Entry{e}}
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
	for _, id := range p.fresh[userID] {
		if n := p.notes[id]; n.ReadAt == nil {
			n.ReadAt = &at
			p.plan.Created[p.rows[id]].ReadAt = &at
		}
	}
	for _, n := range p.notes { // existing rows already loaded for this batch
		if n.ReceiverID == userID && n.ReadAt == nil {
			n.ReadAt = &at
		}
	}
	row := ReadAllRow{UserID: userID, ReadAt: at, BeforeSeq: u.Seq}
	if i, ok := p.readAll[userID]; ok {
		p.plan.ReadAll[i] = row
	} else {
		p.readAll[userID] = len(p.plan.ReadAll)
		p.plan.ReadAll = append(p.plan.ReadAll, row)
	}
	e := herald.Entry{UserID: userID, Seq: u.Seq, Event: herald.EventReadAll, Unread: 0, At: at, ReadAll: ra}
	p.plan.Log = append(p.plan.Log, e)
	p.plan.Entries = append(p.plan.Entries, e)
	return Result{ReadAll: ra, Entries: []herald.Entry{e}}
}
