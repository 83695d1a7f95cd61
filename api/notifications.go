package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence"
)

// Paging limits of the list routes.
const (
	defaultUnreadLimit = 50
	defaultFeedLimit   = 100
	maxListLimit       = 500
	// bodyOverhead is what a create body may hold beyond its payload.
	bodyOverhead = 8 << 10
)

// caller authenticates r and checks the kind the route accepts.
func (s *Server) caller(r *http.Request, userOK, serviceOK bool) (auth.Principal, error) {
	p, err := s.auth.Authenticate(r, false)
	if err != nil {
		return p, err
	}
	switch {
	case p.Kind == auth.KindUser && !userOK:
		return p, herald.Errorf(herald.CodeForbidden, "this route is for services (API key), not users")
	case p.Kind == auth.KindService && !serviceOK:
		return p, herald.Errorf(herald.CodeForbidden, "this route is for users (JWT), not API keys")
	}
	return p, nil
}

// limitWrite applies the caller's write rate limit: per user for user callers (the
// notifications it creates, its REST mark-reads and read-alls, its preferences), per API
// key for services. Over the limit it sets Retry-After and returns rate_limited.
func (s *Server) limitWrite(w http.ResponseWriter, p auth.Principal) error {
	l, key := s.userLimit, p.UserID
	if p.Kind == auth.KindService {
		l, key = s.serviceLimit, p.KeyID
	}
	if ok, wait := l.allow(key); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return herald.Errorf(herald.CodeRateLimited, "rate limit reached; retry after %s s", retryAfter(wait))
	}
	return nil
}

// reader authenticates a user for a read route and applies the user's read rate limit.
func (s *Server) reader(w http.ResponseWriter, r *http.Request) (auth.Principal, error) {
	p, err := s.caller(r, true, false)
	if err != nil {
		return p, err
	}
	if ok, wait := s.readLimit.allow(p.UserID); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return p, herald.Errorf(herald.CodeRateLimited, "read rate limit reached; retry after %s s", retryAfter(wait))
	}
	return p, nil
}

func herCaller(p auth.Principal) herald.Caller {
	return herald.Caller{UserID: p.UserID, Service: p.Kind == auth.KindService}
}

// readCtx is the context of one store read of r: bounded by Options.ReadTimeout, so a
// store that does not answer makes a 503, not a request that waits for ever.
func (s *Server) readCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.readTimeout)
}

func (s *Server) write(r *http.Request, op persistence.Op) (persistence.Result, error) {
	if w, ok := s.writer.(deadlineWriter); ok {
		return w.WriteBy(r.Context(), op, time.Now().Add(s.writeTimeout))
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.writeTimeout)
	defer cancel()
	return s.writer.Write(ctx, op)
}

// deadlineWriter is a writer that takes a deadline besides the context
// (persist.Client): a request's write then needs no context with a timer of its own.
type deadlineWriter interface {
	WriteBy(ctx context.Context, op persistence.Op, deadline time.Time) (persistence.Result, error)
}

func (s *Server) createNotification(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, true, true)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	var n herald.NewNotification
	if err := decodeCreateBody(r, w, int64(s.maxPayload+bodyOverhead), &n); err != nil {
		return err
	}
	if err := n.Validate(herCaller(p), herald.ValidateOptions{MaxPayload: s.maxPayload}); err != nil {
		return err
	}
	res, err := s.write(r, persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}})
	if err != nil {
		return err
	}
	if res.Suppressed != nil && res.Suppressed[0] {
		writeJSON(w, http.StatusAccepted, suppressedBody{Suppressed: true, ReceiverID: n.ReceiverID, Type: n.Type,
			Reason: "the receiver has turned notifications of this type off"})
		return nil
	}
	code := http.StatusCreated
	if res.Replayed[0] {
		code = http.StatusOK
	}
	writeNotification(w, code, &res.Notifications[0])
	return nil
}

// batchBodyLimit is the largest batch body: a thousand items with the largest payload.
func batchBodyLimit(maxPayload int) int64 {
	return int64(herald.MaxBatch*(maxPayload+bodyOverhead/4)) + bodyOverhead
}

// batchBody is either receiverIds plus one notification, or items.
type batchBody struct {
	herald.NewNotification
	ReceiverIDs []string                 `json:"receiverIds"`
	Items       []herald.NewNotification `json:"items"`
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, false, true)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	limit := batchBodyLimit(s.maxPayload)
	held, err := s.holdBody(w, r, limit)
	if err != nil {
		return err
	}
	defer s.bodies.release(held)
	body, err := readBody(r, w, limit)
	if err != nil {
		return err
	}
	b, err := decodeBatch(body.Bytes())
	putBuffer(body)
	if err != nil {
		return err
	}
	items, err := batchItems(b)
	if err != nil {
		return err
	}
	c := herCaller(p)
	for i := range items {
		prefix := ""
		if b.Items != nil {
			prefix = "items[" + strconv.Itoa(i) + "]."
		}
		if err := items[i].Validate(c, herald.ValidateOptions{MaxPayload: s.maxPayload, FieldPrefix: prefix}); err != nil {
			if e := herald.AsError(err); b.Items == nil && e.Field == "receiverId" {
				e.Field = "receiverIds[" + strconv.Itoa(i) + "]"
				e.Message = strings.Replace(e.Message, "receiverId", e.Field, 1)
			}
			return err
		}
	}
	res, err := s.write(r, persistence.Op{Kind: persistence.OpCreate, Creates: items})
	if e := (*herald.Error)(nil); b.Items == nil && errors.As(err, &e) && strings.HasPrefix(e.Field, "items[") {
		// One key for all receivers: name the receiver whose notification conflicts.
		e.Field = "receiverIds" + strings.TrimSuffix(strings.TrimPrefix(e.Field, "items"), ".idempotencyKey")
	}
	if err != nil {
		return err
	}
	if res.Suppressed == nil {
		writeNotifications(w, http.StatusCreated, res.Notifications)
		return nil
	}
	// Some receivers turned the type off: data lists what was stored, in request order,
	// and suppressed the indexes of what was not.
	stored := make([]herald.Notification, 0, len(res.Notifications))
	var suppressed []int
	for i, n := range res.Notifications {
		if res.Suppressed[i] {
			suppressed = append(suppressed, i)
			continue
		}
		stored = append(stored, n)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": stored, "suppressed": suppressed})
	return nil
}

// suppressedBody answers a create its receiver's preferences turned away.
type suppressedBody struct {
	Suppressed bool   `json:"suppressed"`
	ReceiverID string `json:"receiverId"`
	Type       string `json:"type"`
	Reason     string `json:"reason"`
}

// decodeBatch decodes a batch body. The items array is sized from the body first,
// sparing its regrowth while it is decoded: a body of items has one "receiverId" per
// item (or more, when payloads hold some: the count is only a capacity).
func decodeBatch(body []byte) (*batchBody, error) {
	b := &batchBody{}
	n := bytes.Count(body, []byte(`"receiverId"`))
	if n < 2 || !bytes.Contains(body, []byte(`"items"`)) {
		return b, decodeJSON(body, b)
	}
	b.Items = make([]herald.NewNotification, 0, min(n, herald.MaxBatch))
	if err := decodeJSON(body, b); err != nil {
		return nil, err
	}
	if len(b.Items) == 0 {
		// An empty or absent items array must read as it was sent (nil when absent):
		// decode again without the sized array.
		b = &batchBody{}
		return b, decodeJSON(body, b)
	}
	return b, nil
}

// batchItems expands a batch body into one NewNotification per receiver.
func batchItems(b *batchBody) ([]herald.NewNotification, error) {
	switch {
	case b.ReceiverIDs != nil && b.Items != nil:
		return nil, herald.FieldError("items", "send either receiverIds or items, not both")
	case b.Items != nil:
		if len(b.Items) == 0 {
			return nil, herald.FieldError("items", "items must not be empty")
		}
		if len(b.Items) > herald.MaxBatch {
			return nil, herald.FieldError("items", "at most %d items per batch", herald.MaxBatch)
		}
		return b.Items, nil
	case b.ReceiverIDs != nil:
		if len(b.ReceiverIDs) == 0 {
			return nil, herald.FieldError("receiverIds", "receiverIds must not be empty")
		}
		if len(b.ReceiverIDs) > herald.MaxBatch {
			return nil, herald.FieldError("receiverIds", "at most %d receiverIds per batch", herald.MaxBatch)
		}
		if b.ReceiverID != "" {
			return nil, herald.FieldError("receiverId", "a batch with receiverIds takes no receiverId")
		}
		if b.IdempotencyKey != "" {
			// Check the caller's key as sent, before it is derived per receiver.
			probe := herald.NewNotification{ReceiverID: "-", Type: "-", IdempotencyKey: b.IdempotencyKey}
			if err := probe.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
				return nil, err
			}
		}
		items := make([]herald.NewNotification, len(b.ReceiverIDs))
		for i, id := range b.ReceiverIDs {
			it := b.NewNotification
			it.ReceiverID = id
			if it.IdempotencyKey != "" {
				it.IdempotencyKey = receiverKey(b.IdempotencyKey, id)
			}
			it.Channels = append([]herald.Channel(nil), b.Channels...)
			items[i] = it
		}
		return items, nil
	}
	return nil, herald.FieldError("receiverIds", "receiverIds or items is required")
}

// pageQuery is a user's list request: who, from which cursor, how many.
type pageQuery struct {
	user   string
	cursor int64 // since (>= 0) or before (>= 1, 0 when absent)
	limit  int
}

// userPage authenticates a user and reads limit and the cursor parameter named cursor.
func (s *Server) userPage(w http.ResponseWriter, r *http.Request, cursor string, defLimit int64) (pageQuery, error) {
	p, err := s.reader(w, r)
	if err != nil {
		return pageQuery{}, err
	}
	limit, err := queryInt(r, "limit", defLimit, 1, maxListLimit)
	if err != nil {
		return pageQuery{}, err
	}
	min := int64(0)
	if cursor == "before" {
		min = 1
	}
	c, err := queryInt(r, cursor, 0, min, 1<<62)
	if err != nil {
		return pageQuery{}, err
	}
	return pageQuery{user: p.UserID, cursor: c, limit: int(limit)}, nil
}

// trim cuts a page read with limit+1 items back to limit, and further to what fits in
// maxPageBytes, and returns the cursor of the next page, nil when there is none.
func trim[T any](items []T, limit int, seq func(*T) int64, note func(*T) *herald.Notification) ([]T, *int64) {
	n := min(len(items), limit)
	n = fitPage(items[:n], note)
	if n == len(items) {
		return nonNil(items), nil
	}
	items = items[:n]
	next := seq(&items[n-1])
	return items, &next
}

func itself(n *herald.Notification) *herald.Notification { return n }

func entryNote(e *herald.Entry) *herald.Notification { return e.Notification }

func notificationSeq(n *herald.Notification) int64 { return n.Seq }

func (s *Server) listUnread(w http.ResponseWriter, r *http.Request) error {
	q, err := s.userPage(w, r, "before", defaultUnreadLimit)
	if err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	page, err := s.store.Unread(ctx, q.user, q.cursor, q.limit+1)
	if err != nil {
		return err
	}
	items, next := trim(page.Items, q.limit, notificationSeq, itself)
	writeJSON(w, http.StatusOK, map[string]any{
		"data": items, "count": len(items), "total": page.Total, "seq": page.Seq, "next": next,
	})
	return nil
}

func (s *Server) listCreated(w http.ResponseWriter, r *http.Request) error {
	q, err := s.userPage(w, r, "since", defaultFeedLimit)
	if err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	items, err := s.store.Created(ctx, q.user, q.cursor, q.limit+1)
	if err != nil {
		return err
	}
	items, next := trim(items, q.limit, notificationSeq, itself)
	writeJSON(w, http.StatusOK, map[string]any{"data": items, "next": next})
	return nil
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	q, err := s.userPage(w, r, "since", defaultFeedLimit)
	if err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	page, err := s.store.Events(ctx, q.user, q.cursor, q.limit+1)
	if err != nil {
		return err
	}
	entries, next := trim(page.Entries, q.limit, func(e *herald.Entry) int64 { return e.Seq }, entryNote)
	body := map[string]any{"data": entries, "next": next, "seq": page.Seq}
	if page.Reset {
		// The cursor is past retention or beyond the latest seq: instead of entries, a
		// fresh snapshot, as the WebSocket sends unread-notifications.
		ctx, cancel := s.readCtx(r)
		defer cancel()
		snap, err := s.store.Unread(ctx, q.user, 0, wire.SnapshotSize)
		if err != nil {
			return err
		}
		// The snapshot is read after the log: its seq is the one to continue from.
		body["reset"], body["seq"] = true, snap.Seq
		body["snapshot"] = map[string]any{"data": nonNil(snap.Items), "total": snap.Total, "seq": snap.Seq}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// receiverKey derives the idempotency key of one receiver's notification in a batch
// sent with receiverIds and one key: a fixed-length digest of the caller's key and the
// receiver id, so no other (key, receiver) pair and no plausible caller key can meet it.
func receiverKey(key, receiverID string) string {
	h := sha256.New()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(key)))
	h.Write(l[:])
	h.Write([]byte(key))
	h.Write([]byte(receiverID))
	return "batch:" + hex.EncodeToString(h.Sum(nil))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) unreadCount(w http.ResponseWriter, r *http.Request) error {
	p, err := s.reader(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	n, err := s.store.UnreadCount(ctx, p.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"count": n})
	return nil
}

func (s *Server) markRead(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, true, false)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	id := r.PathValue("id")
	res, err := s.write(r, persistence.Op{Kind: persistence.OpMarkRead, UserID: p.UserID, ID: id})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &res.Notifications[0])
	return nil
}

func (s *Server) markAllRead(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, true, false)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	res, err := s.write(r, persistence.Op{Kind: persistence.OpReadAll, UserID: p.UserID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res.ReadAll)
	return nil
}

type wsTokenBody struct {
	WSToken   string `json:"wsToken"`
	ExpiresIn int64  `json:"expiresIn"`
	TokenType string `json:"tokenType"`
}

func (s *Server) wsToken(w http.ResponseWriter, r *http.Request) error {
	p, err := s.reader(w, r)
	if err != nil {
		return err
	}
	// The WebSocket would refuse this origin, and a browser hides a failed handshake's
	// status from the page: the refusal is told here.
	if err := s.refusedOrigin(r); err != nil {
		return err
	}
	tok, ttl, err := s.auth.IssueWSToken(p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wsTokenBody{WSToken: tok, ExpiresIn: int64(ttl / time.Second), TokenType: "Bearer"})
	return nil
}
