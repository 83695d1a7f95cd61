package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/web"
)

// devCredentials are the secret and API key that --dev makes when none are configured.
// They are kept in the data directory, so tokens stay valid across restarts.
type devCredentials struct {
	JWTSecret string `json:"jwtSecret"`
	APIKey    string `json:"apiKey"`
}

const devFile = "dev-credentials.json"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loadDevCredentials reads the credentials --dev keeps in dir, if any.
func loadDevCredentials(dir string) (*devCredentials, error) {
	b, err := os.ReadFile(filepath.Join(dir, devFile))
	if err != nil {
		return nil, err
	}
	var c devCredentials
	if err := json.Unmarshal(b, &c); err != nil || c.JWTSecret == "" || c.APIKey == "" {
		return nil, fmt.Errorf("%s is damaged; delete it to make new credentials", filepath.Join(dir, devFile))
	}
	return &c, nil
}

// devSetup fills the secret and an API key for --dev from the environment, or from the
// data directory, or makes new ones there.
func devSetup(cfg *config) (*devCredentials, error) {
	c, err := loadDevCredentials(cfg.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		c = &devCredentials{JWTSecret: randomHex(32), APIKey: "dev-" + randomHex(16)}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(filepath.Join(cfg.DataDir, devFile), b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if cfg.JWTSecret == "" && cfg.JWKS == "" {
		cfg.JWTSecret = c.JWTSecret
	} else {
		c.JWTSecret = cfg.JWTSecret
	}
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = []string{c.APIKey}
	} else {
		c.APIKey = cfg.APIKeys[0]
	}
	if cfg.Rules == "" {
		if _, err := os.Stat(devRules); err == nil {
			cfg.Rules = devRules
		}
	}
	return c, nil
}

// devRules is the example rules file, loaded by --dev from the working directory (the
// repository root with make run) when HERALD_RULES is not set.
const devRules = "rules.example"

func printDev(w io.Writer, base, demo string, c *devCredentials) {
	tok := "<set HERALD_JWT_SECRET to print a sample token>"
	if c.JWTSecret != "" {
		if t, err := auth.SignUserToken([]byte(c.JWTSecret), "alice", "", 24*time.Hour); err == nil {
			tok = t
		}
	}
	fmt.Fprintf(w, `
development mode (credentials in the data directory, not for production)
  demo inbox:        %[4]s/demo/   (open it in a browser)
  API key:           %[2]s
  token for "alice": %[3]s   (24h; more with: herald token --user ID)

try it:
  curl -s -X POST %[1]s/notifications -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"receiverId":"alice","type":"project.created","payload":{"message":"Atlas was created"}}'
  curl -s %[1]s/notifications/unread -H 'Authorization: Bearer %[3]s'
  curl -s -X POST %[1]s/events -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"name":"project.role.application.created","data":{"projectOwnerId":"alice","applicantId":"ada","applicantName":"Ada","projectTitle":"Atlas","roleName":"Backend","applicationId":"a1"}}'

`, base, c.APIKey, tok, demo)
}

// devOrigins are the browser origins of a --dev server listening on addr: the demo's
// own, http://127.0.0.1:PORT and http://localhost:PORT, and http://HOST:PORT when it
// listens on one address of another name.
func devOrigins(addr net.Addr) []string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil
	}
	list := []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		list = append(list, "http://"+net.JoinHostPort(host, port))
	}
	return list
}

// demoBase is the address a browser on this machine opens the demo at: the listen
// address, with 127.0.0.1 for one that listens on every address.
func demoBase(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// devTokenTTL is the lifetime of the demo's user tokens (shorter when
// HERALD_JWT_MAX_TTL says so).
const devTokenTTL = 24 * time.Hour

// devHandler serves, besides next, what only --dev has: the demo inbox at /demo/ and
// GET /dev/token?user=ID, which gives the demo a user JWT (signed with the dev secret)
// without one pasted by hand. The token endpoint answers only a client on this machine
// that names this machine in its Host header (a page of another site that rebinds its
// name to 127.0.0.1 is refused), and its answer has no CORS header but for the
// server's own origins (HERALD_ALLOWED_ORIGINS of next).
func devHandler(next http.Handler, c *devCredentials, maxTTL time.Duration) http.Handler {
	ttl := devTokenTTL
	if maxTTL > 0 && maxTTL < ttl {
		ttl = maxTTL
	}
	demo := web.Demo("/demo/")
	mux := http.NewServeMux()
	mux.Handle("GET /demo/", demo)
	mux.Handle("GET /demo", http.RedirectHandler("/demo/", http.StatusFound))
	mux.HandleFunc("GET /dev/token", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackRequest(r) {
			writeDevError(w, http.StatusForbidden, "forbidden", "the dev token endpoint answers only requests from this machine to 127.0.0.1 or localhost")
			return
		}
		user := r.URL.Query().Get("user")
		if user == "" {
			user = "alice"
		}
		if strings.TrimSpace(user) == "" || len(user) > 256 {
			writeDevError(w, http.StatusUnprocessableEntity, "validation_failed", "user must be a non-blank id of at most 256 bytes")
			return
		}
		if c.JWTSecret == "" {
			writeDevError(w, http.StatusServiceUnavailable, "unavailable", "no HS256 secret to sign with (HERALD_JWKS is set): set HERALD_JWT_SECRET for the demo")
			return
		}
		tok, err := auth.SignUserToken([]byte(c.JWTSecret), user, "", ttl)
		if err != nil {
			writeDevError(w, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		b, _ := json.Marshal(map[string]any{"token": tok, "userId": user, "expiresIn": int64(ttl / time.Second)})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := mux.Handler(r); pattern != "" {
			// Through next's CORS: only the server's own origins may read these.
			if o := r.Header.Get("Origin"); o != "" && !slices.Contains(devOrigins(localAddr(r)), o) {
				writeDevError(w, http.StatusForbidden, "forbidden", "origin not allowed for the dev endpoints")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// localAddr is the address r came in on.
func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}

// loopbackRequest reports whether r comes from this machine and names it (127.0.0.1,
// ::1 or localhost) in its Host header.
func loopbackRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return false
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

func writeDevError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
