package api

import (
	"bufio"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/ws"
)

// openWebSocket is GET /notifications/ws: it authenticates, checks the origin and the
// cursor, upgrades, and hands the connection to the hub. Every refusal happens before
// the upgrade, as JSON.
func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request) error {
	p, err := s.auth.Authenticate(r, true)
	if err != nil {
		return err
	}
	if p.Kind != auth.KindUser {
		return herald.Errorf(herald.CodeForbidden, "the WebSocket is for users (JWT or ws-token), not API keys")
	}
	// A connect reads the user's snapshot or log: it counts as a read.
	if ok, wait := s.readLimit.allow(p.UserID); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		return herald.Errorf(herald.CodeRateLimited, "read rate limit reached; retry after %s s", retryAfter(wait))
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.origins.allow(origin) {
		return herald.Errorf(herald.CodeForbidden, "origin %q is not allowed (HERALD_ALLOWED_ORIGINS)", truncated(origin))
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
		return herald.Errorf(herald.CodeBadRequest, "unsupported Sec-WebSocket-Version %q: this server speaks 13", truncated(v))
	}
	if s.hub.Closing() {
		return herald.Errorf(herald.CodeUnavailable, "the server is shutting down")
	}
	h := &hijacker{ResponseWriter: w}
	c, err := websocket.Accept(h, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin is checked above, with JSON errors
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return nil // Accept has answered
	}
	// The connection runs on a goroutine of its own: returning lets net/http drop the
	// request, its headers and its connection state, which an idle socket would
	// otherwise hold for its whole life.
	s.hub.Start(c, h.conn, p.UserID, since, hasSince)
	return nil
}

// The buffers of an accepted WebSocket: client frames are small (4 KiB at most) and a
// notification frame is usually under 1 KiB; bigger ones bypass the buffer. net/http's
// 4 KiB pair would be most of an idle connection's memory.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 1024
)

// hijacker hijacks the connection with smaller buffers than net/http's, and with the
// writes going through a ws.NetConn, which the connection's writer batches.
type hijacker struct {
	http.ResponseWriter
	conn *ws.NetConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	r := brw.Reader
	if r.Buffered() == 0 {
		r = bufio.NewReaderSize(conn, wsReadBuffer)
	}
	// Whatever net/http still holds goes first, straight to the connection.
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	h.conn = ws.NewNetConn(conn)
	return h.conn, bufio.NewReadWriter(r, bufio.NewWriterSize(h.conn, wsWriteBuffer)), nil
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

func truncated(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
