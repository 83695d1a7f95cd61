package api

import (
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// deliveryJSON is a delivery as the API shows it.
type deliveryJSON struct {
	ID             string                    `json:"id"`
	NotificationID string                    `json:"notificationId"`
	UserID         string                    `json:"userId"`
	Channel        herald.Channel            `json:"channel"`
	State          persistence.DeliveryState `json:"state"`
	Attempts       int                       `json:"attempts"`
	DueAt          time.Time                 `json:"dueAt"`
	UnreadOnly     bool                      `json:"unreadOnly"`
	LastError      string                    `json:"lastError,omitempty"`
	CreatedAt      time.Time                 `json:"createdAt"`
	UpdatedAt      time.Time                 `json:"updatedAt"`
	Notification   *herald.Notification      `json:"notification,omitempty"`
}

func toDeliveryJSON(d *persistence.Delivery) deliveryJSON {
	j := deliveryJSON{ID: d.ID, NotificationID: d.NotificationID, UserID: d.UserID, Channel: d.Channel, State: d.State,
		Attempts: d.Attempts, DueAt: d.DueAt, UnreadOnly: d.UnreadOnly, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Notification.ID != "" {
		j.Notification = &d.Notification
	}
	return j
}

// listDeliveries is GET /deliveries?state=dead&after=<id>&limit=100 (service): the
// outbox by state, oldest first; dead letters by default.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.caller(r, false, true); err != nil {
		return err
	}
	state := persistence.DeliveryState(r.URL.Query().Get("state"))
	if state == "" {
		state = persistence.DeliveryDead
	}
	if !state.Valid() {
		return herald.FieldError("state", "state must be pending, sent, dead or cancelled")
	}
	limit, err := queryInt(r, "limit", defaultFeedLimit, 1, maxListLimit)
	if err != nil {
		return err
	}
	after := r.URL.Query().Get("after")
	ctx, cancel := s.readCtx(r)
	defer cancel()
	ds, err := s.store.Deliveries(ctx, state, after, int(limit)+1)
	if err != nil {
		return err
	}
	var next *string
	if len(ds) > int(limit) {
		ds = ds[:limit]
		next = &ds[len(ds)-1].ID
	}
	out := make([]deliveryJSON, len(ds))
	for i := range ds {
		out[i] = toDeliveryJSON(&ds[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out, "next": next})
	return nil
}

// retryDelivery is POST /deliveries/{id}/retry (service): a dead letter goes back to the
// outbox, due now, its attempts reset.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.caller(r, false, true); err != nil {
		return err
	}
	res, err := s.write(r, persistence.Op{Kind: persistence.OpRetryDelivery, ID: r.PathValue("id")})
	if err != nil {
		return err
	}
	if res.Delivery == nil {
		return herald.Errorf(herald.CodeInternal, "the store retried delivery %s without returning it", r.PathValue("id"))
	}
	if s.wake != nil {
		s.wake()
	}
	writeJSON(w, http.StatusOK, toDeliveryJSON(res.Delivery))
	return nil
}

// putContact is PUT /contacts/{userId} (service): how the user is reached by email.
// {"email": ""} removes it.
func (s *Server) putContact(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.caller(r, false, true); err != nil {
		return err
	}
	user := r.PathValue("userId")
	if err := checkUserID(user); err != nil {
		return err
	}
	var c persistence.Contact
	if err := decodeBody(r, w, 4<<10, &c); err != nil {
		return err
	}
	c.Email = strings.TrimSpace(c.Email)
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			return herald.FieldError("email", "email must be a plain address like ada@example.com")
		}
	}
	if _, err := s.write(r, persistence.Op{Kind: persistence.OpSetContact, UserID: user, Contact: c}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// getContact is GET /contacts/{userId} (service); 404 when none is set.
func (s *Server) getContact(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.caller(r, false, true); err != nil {
		return err
	}
	user := r.PathValue("userId")
	if err := checkUserID(user); err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	c, err := s.store.Contact(ctx, user)
	if err != nil {
		return err
	}
	if c.Email == "" {
		return herald.Errorf(herald.CodeNotFound, "no contact for user %q", user)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func checkUserID(id string) error {
	if strings.TrimSpace(id) == "" || len(id) > herald.MaxIDBytes {
		return herald.FieldError("userId", "userId must be non-blank and at most %d bytes", herald.MaxIDBytes)
	}
	if !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
		return herald.FieldError("userId", "userId must be valid UTF-8 without NUL characters")
	}
	return nil
}

// preferencesJSON is the user's opt-outs as the API shows them: every key present.
type preferencesJSON struct {
	Channels map[herald.Channel]bool            `json:"channels"`
	Types    map[string]map[herald.Channel]bool `json:"types"`
}

func toPreferencesJSON(p persistence.Preferences) preferencesJSON {
	j := preferencesJSON{Channels: p.Channels, Types: p.Types}
	if j.Channels == nil {
		j.Channels = map[herald.Channel]bool{}
	}
	if j.Types == nil {
		j.Types = map[string]map[herald.Channel]bool{}
	}
	return j
}

// getPreferences is GET /preferences (user).
func (s *Server) getPreferences(w http.ResponseWriter, r *http.Request) error {
	p, err := s.reader(w, r)
	if err != nil {
		return err
	}
	ctx, cancel := s.readCtx(r)
	defer cancel()
	prefs, err := s.store.Preferences(ctx, p.UserID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPreferencesJSON(prefs))
	return nil
}

// maxPreferenceTypes bounds the types one user may set preferences for.
const maxPreferenceTypes = 200

// putPreferences is PUT /preferences (user): replaces the caller's opt-outs.
// {"channels": {"email": false}, "types": {"project.updated": {"realtime": false}}}:
// false turns a channel off (for every type, or for one); realtime off for a type
// means its notifications are not stored at all.
func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request) error {
	p, err := s.caller(r, true, false)
	if err != nil {
		return err
	}
	if err := s.limitWrite(w, p); err != nil {
		return err
	}
	var body preferencesJSON
	if err := decodeBody(r, w, 64<<10, &body); err != nil {
		return err
	}
	prefs := persistence.Preferences{}
	for c, on := range body.Channels {
		if !c.Valid() {
			return &herald.Error{Code: herald.CodeBadRequest, Message: "unknown channel " + string(c), Field: "channels." + string(c)}
		}
		if prefs.Channels == nil {
			prefs.Channels = map[herald.Channel]bool{}
		}
		prefs.Channels[c] = on
	}
	if len(body.Types) > maxPreferenceTypes {
		return herald.FieldError("types", "at most %d types", maxPreferenceTypes)
	}
	for typ, cs := range body.Types {
		if strings.TrimSpace(typ) == "" || len(typ) > herald.MaxIDBytes {
			return herald.FieldError("types", "a type must be non-blank and at most %d bytes", herald.MaxIDBytes)
		}
		for c, on := range cs {
			if !c.Valid() {
				return &herald.Error{Code: herald.CodeBadRequest, Message: "unknown channel " + string(c), Field: "types." + typ + "." + string(c)}
			}
			if prefs.Types == nil {
				prefs.Types = map[string]map[herald.Channel]bool{}
			}
			if prefs.Types[typ] == nil {
				prefs.Types[typ] = map[herald.Channel]bool{}
			}
			prefs.Types[typ][c] = on
		}
	}
	if _, err := s.write(r, persistence.Op{Kind: persistence.OpSetPreferences, UserID: p.UserID, Preferences: prefs}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toPreferencesJSON(prefs))
	return nil
}
