package api

import (
	"net/http"
	"strings"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/auth"
)

// openWebSocket is GET /notifications/ws, the handshake and nothing more: it
// authenticates, checks the origin, the cursor and the upgrade headers, and hands the
// request to the hub, which upgrades it and runs the connection (api/ws). Every refusal
// happens before the upgrade, as JSON.
func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request) error {
	p, err := s.auth.Authenticate(r, true)
	if err != nil {
		return err
	}
	if p.Kind != auth.KindUser {
		return herald.Errorf(herald.CodeForbidden, "the WebSocket is for users (JWT or ws-token), not API keys")
	}
	if full := s.socketsFull.Load(); full != nil && (*full)() {
		w.Header().Set("Retry-After", "1")
		return herald.Errorf(herald.CodeUnavailable, "this node holds as many WebSockets as its connection cap leaves for them (HERALD_MAX_CONNS); retry, or connect to another node")
	}
	// A connect reads the user's snapshot or log: it counts as a read.
	if ok, wait := s.readLimit.allow(p.UserID); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return herald.Errorf(herald.CodeRateLimited, "read rate limit reached; retry after %s s", retryAfter(wait))
	}
	if err := s.refusedOrigin(r); err != nil {
		return err
	}
	hasSince := r.URL.Query().Get("since") != "" // "?since=" is no cursor, as if absent
	since, err := queryInt(r, "since", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		return herald.Errorf(herald.CodeBadRequest, "this endpoint speaks WebSocket: send an upgrade request")
	}
	// What the upgrade itself checks, answered as JSON like every other refusal.
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		return herald.Errorf(herald.CodeBadRequest, "the upgrade request has no Sec-WebSocket-Key")
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return herald.Errorf(herald.CodeBadRequest, "unsupported Sec-WebSocket-Version %q: this server speaks 13", herald.Truncate(v, 100))
	}
	if s.hub.Closing() {
		return herald.Errorf(herald.CodeUnavailable, "the server is shutting down")
	}
	// The connection runs on a goroutine of its own: returning lets net/http drop the
	// request, its headers and its connection state, which an idle socket would
	// otherwise hold for its whole life.
	s.hub.Accept(w, r, p.UserID, since, hasSince)
	return nil
}

// headerHas reports whether header name of h lists token (case-insensitively).
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
