package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
)

// request sends method path with the given headers and a user's token (none when
// user is empty).
func (e *env) request(method, path, user string, h map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+userToken(e.t, user))
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// noCORS fails when r carries any Access-Control-* header.
func noCORS(t *testing.T, what string, r response) {
	t.Helper()
	for k := range r.header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("%s: CORS header %s: %q, want none", what, k, r.header.Get(k))
		}
	}
}

// TestCORS: HERALD_ALLOWED_ORIGINS governs CORS on the REST API. A preflight from an
// allowed origin is answered 204 with the methods and headers the API uses; an actual
// request from it gets Access-Control-Allow-Origin with that origin, Vary: Origin and
// Retry-After exposed. Another origin gets no CORS header at all, its preflight a 403
// naming the variable, and a request without Origin none either.
func TestCORS(t *testing.T) {
	const app, evil = "https://app.example.com", "https://evil.example.net"
	e := newEnvWith(t, stores["embedded"](t), api.Options{AllowedOrigins: []string{app}})

	pre := map[string]string{"Origin": app, "Access-Control-Request-Method": "PATCH",
		"Access-Control-Request-Headers": "authorization, content-type"}
	r := e.request("OPTIONS", "/notifications/read-all", "", pre)
	if r.code != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("allowed preflight: %d %s, want 204 and no body", r.code, r.body)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  app,
		"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, X-Api-Key",
		"Access-Control-Max-Age":       "600",
		"Vary":                         "Origin",
	} {
		if got := r.header.Get(k); got != want {
			t.Fatalf("allowed preflight: %s = %q, want %q", k, got, want)
		}
	}
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("preflight allows credentials: Herald uses no cookies")
	}

	pre["Origin"] = evil
	r = e.request("OPTIONS", "/notifications/read-all", "", pre)
	wantError(t, r, http.StatusForbidden, herald.CodeForbidden, "")
	noCORS(t, "refused preflight", r)
	if !strings.Contains(string(r.body), "HERALD_ALLOWED_ORIGINS") {
		t.Fatalf("refused preflight does not name HERALD_ALLOWED_ORIGINS: %s", r.body)
	}

	r = e.request("GET", "/notifications/unread/count", "alice", map[string]string{"Origin": app})
	if r.code != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != app ||
		r.header.Get("Vary") != "Origin" || r.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
		t.Fatalf("allowed GET: %d %v", r.code, r.header)
	}
	// An error answer is readable too (the page learns the status and code).
	r = e.request("GET", "/notifications/unread/count", "", map[string]string{"Origin": app})
	if r.code != http.StatusUnauthorized || r.header.Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("allowed GET without a token: %d %v", r.code, r.header)
	}

	r = e.request("GET", "/notifications/unread/count", "alice", map[string]string{"Origin": evil})
	if r.code != http.StatusOK {
		t.Fatalf("GET from another origin: %d %s", r.code, r.body)
	}
	noCORS(t, "GET from another origin", r)
	r = e.request("GET", "/notifications/unread/count", "alice", nil)
	noCORS(t, "GET without Origin", r)

	// OPTIONS that is no preflight is what it was: a method the route does not have.
	r = e.request("OPTIONS", "/notifications", "", map[string]string{"Origin": app})
	wantError(t, r, http.StatusMethodNotAllowed, herald.CodeMethodNotAllowed, "")

	// With no allow-list, no origin gets CORS.
	none := newEnv(t, stores["embedded"](t))
	pre["Origin"] = app
	r = none.request("OPTIONS", "/notifications", "", pre)
	wantError(t, r, http.StatusForbidden, herald.CodeForbidden, "")
	noCORS(t, "preflight with no allow-list", r)
}

// TestWSTokenOrigin: GET /notifications/ws-token from a browser origin the WebSocket
// would refuse answers 403 naming HERALD_ALLOWED_ORIGINS, and mints nothing; an
// allowed origin and a client without Origin get their token.
func TestWSTokenOrigin(t *testing.T) {
	const app = "http://localhost:3000"
	e := newEnvWith(t, stores["embedded"](t), api.Options{AllowedOrigins: []string{app}})
	r := e.request("GET", "/notifications/ws-token", "alice", map[string]string{"Origin": "http://localhost:3001"})
	wantError(t, r, http.StatusForbidden, herald.CodeForbidden, "")
	if !strings.Contains(string(r.body), "HERALD_ALLOWED_ORIGINS") || strings.Contains(string(r.body), "wsToken") {
		t.Fatalf("refused ws-token: %s", r.body)
	}
	for _, h := range []map[string]string{{"Origin": app}, nil} {
		r = e.request("GET", "/notifications/ws-token", "alice", h)
		var body struct {
			WSToken string `json:"wsToken"`
		}
		if r.code != http.StatusOK || json.Unmarshal(r.body, &body) != nil || body.WSToken == "" {
			t.Fatalf("ws-token with %v: %d %s", h, r.code, r.body)
		}
	}
}
