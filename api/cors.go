package api

import (
	"net/http"

	"github.com/heraldhq/herald"
)

// The CORS answer for an allowed origin: the methods and request headers the REST API
// uses, and the response headers a page may read besides the safelisted ones
// (Retry-After, for 429 and 503). Herald uses no cookies, so credentials are never
// allowed.
const (
	corsMethods = "GET, POST, PUT, PATCH"
	corsHeaders = "Authorization, Content-Type, X-Api-Key"
	corsExpose  = "Retry-After"
	corsMaxAge  = "600"
)

// cors applies HERALD_ALLOWED_ORIGINS to a request that carries an Origin: an allowed
// one gets Access-Control-Allow-Origin with that origin, any other gets no CORS header.
// A preflight (OPTIONS with Access-Control-Request-Method) is answered here, 204 for
// an allowed origin and 403 for another; cors reports whether it answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request, origin string) bool {
	h := w.Header()
	h.Add("Vary", "Origin")
	allowed := s.origins.allow(origin)
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExpose)
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	if !allowed {
		s.metrics.observe("preflight", http.StatusForbidden, 0)
		s.writeError(w, r, originRefused(origin))
		return true
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	s.metrics.observe("preflight", http.StatusNoContent, 0)
	return true
}

// originRefused is the 403 of a browser origin that HERALD_ALLOWED_ORIGINS does not
// allow.
func originRefused(origin string) error {
	return herald.Errorf(herald.CodeForbidden, "origin %q is not allowed (HERALD_ALLOWED_ORIGINS)", herald.Truncate(origin, 100))
}

// refusedOrigin returns the 403 of r's Origin when it is set and not allowed, else nil.
func (s *Server) refusedOrigin(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" && !s.origins.allow(origin) {
		return originRefused(origin)
	}
	return nil
}
