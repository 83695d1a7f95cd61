package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Keys are generated once: RSA key generation is slow under the race detector.
var testKeys = sync.OnceValue(func() (k struct {
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	ec1                  *ecdsa.PrivateKey
}) {
	var err error
	for _, p := range []**rsa.PrivateKey{&k.rsa1, &k.rsa2, &k.rsaOther} {
		if *p, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	if k.ec1, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

func newAuth(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sign signs claims with method and key, with kid in the header when non-empty.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userClaims are valid claims for user sub at now.
func userClaims(now time.Time, sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
}

func bearer(cred string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/notifications/unread", nil)
	r.Header.Set("Authorization", "Bearer "+cred)
	return r
}

// wantUnauthorized fails unless err is a 401 *herald.Error whose message contains msg.
func wantUnauthorized(t testing.TB, err error, msg string) {
	t.Helper()
	var he *herald.Error
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T), want a *herald.Error", err, err)
	}
	if he.Code != herald.CodeUnauthorized {
		t.Fatalf("code %q, want %q (%v)", he.Code, herald.CodeUnauthorized, err)
	}
	if !strings.Contains(he.Message, msg) {
		t.Fatalf("message %q, want it to contain %q", he.Message, msg)
	}
}

func wantUser(t testing.TB, p Principal, err error, user, tenant string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindUser || p.UserID != user || p.TenantID != tenant || p.KeyID != "" {
		t.Fatalf("principal %+v, want user %q tenant %q", p, user, tenant)
	}
}

func TestNewNeedsAKey(t *testing.T) {
	if _, err := New(Config{APIKeys: []string{"k"}}); err == nil {
		t.Fatal("New without JWT secret or JWKS succeeded")
	}
}

func TestHS256(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	now := clk.Now()

	c := userClaims(now, "u1")
	c["tid"] = "t1"
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, secret, "", c)), false)
	wantUser(t, p, err, "u1", "t1")
	if !p.IsUser() || p.IsService() || p.WS {
		t.Fatalf("principal %+v", p)
	}

	// Also on the WebSocket, and with a lower-case scheme.
	r := bearer(sign(t, jwt.SigningMethodHS256, secret, "", userClaims(now, "u2")))
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "Bearer", "bearer", 1))
	p, err = a.Authenticate(r, true)
	wantUser(t, p, err, "u2", "")
	if p.WS {
		t.Fatal("a user JWT is not a ws-token")
	}
}

func TestUserJWTRefused(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	now := clk.Now()
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	with := func(k string, v any) jwt.MapClaims {
		c := userClaims(now, "u1")
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, userClaims(now, "u1")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	valid := hs(userClaims(now, "u1"))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`)) + "." + parts[2]
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, userClaims(now, "u1"))
	crit.Header["crit"] = []string{"exp"}
	critTok, err := crit.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, token, msg string
	}{
		{"expired", hs(with("exp", now.Add(-time.Minute).Unix())), "token expired"},
		{"no exp", hs(with("exp", nil)), "token has no exp"},
		{"exp not a number", hs(with("exp", "tomorrow")), "malformed token"},
		{"alg none", none, "unexpected signing algorithm"},
		{"unknown alg", "eyJhbGciOiJYWDk5In0.e30.c2ln", "unexpected signing algorithm"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another secret, also 32 bytes!!"), "", userClaims(now, "u1")), "invalid token signature"},
		{"tampered", tampered, "invalid token signature"},
		{"HS384", sign(t, jwt.SigningMethodHS384, secret, "", userClaims(now, "u1")), "unexpected signing algorithm"},
		{"RS256 without JWKS", sign(t, jwt.SigningMethodRS256, testKeys().rsa1, "k1", userClaims(now, "u1")), "unexpected signing algorithm"},
		{"nbf in the future", hs(with("nbf", now.Add(time.Minute).Unix())), "token not valid yet"},
		{"iat in the future", hs(with("iat", now.Add(time.Minute).Unix())), "token iat is in the future"},
		{"iat a million years ahead", hs(with("iat", now.AddDate(1_000_000, 0, 0).Unix())), "token iat is in the future"},
		{"no sub", hs(with("sub", nil)), "token has no sub"},
		{"empty sub", hs(with("sub", "")), "token has no sub"},
		{"blank sub", hs(with("sub", "  ")), "token has no sub"},
		{"NUL in sub", hs(with("sub", "a\x00b")), "token sub must be valid UTF-8 without NUL characters"},
		{"sub too long", hs(with("sub", strings.Repeat("x", 257))), "sub longer than 256 bytes"},
		{"sub not a string", hs(with("sub", 42)), "malformed token"},
		{"crit", critTok, "unsupported critical header"},
		{"not a JWT", "not-a-known-api-key", "neither an API key nor a well-formed JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(bearer(tc.token), false)
			wantUnauthorized(t, err, tc.msg)
		})
	}
}

func TestLeeway(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	now := clk.Now()
	c := userClaims(now, "u1")
	c["exp"] = now.Add(-2 * time.Second).Unix()
	c["nbf"] = now.Add(2 * time.Second).Unix()
	c["iat"] = now.Add(2 * time.Second).Unix()
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, secret, "", c)), false)
	wantUser(t, p, err, "u1", "")
}

func TestMaxTTL(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	a := newAuth(t, Config{JWTSecret: secret, MaxTTL: 24 * time.Hour, Now: clk.Now})
	tok := func(exp time.Time) string {
		c := userClaims(now, "u1")
		c["exp"] = exp.Unix()
		return sign(t, jwt.SigningMethodHS256, secret, "", c)
	}
	for _, exp := range []time.Time{now.Add(time.Hour), now.Add(24 * time.Hour), now.Add(24*time.Hour + leeway)} {
		p, err := a.Authenticate(bearer(tok(exp)), false)
		wantUser(t, p, err, "u1", "")
	}
	for _, exp := range []time.Time{now.Add(24*time.Hour + leeway + time.Second), now.AddDate(1_000_000, 0, 0)} {
		_, err := a.Authenticate(bearer(tok(exp)), false)
		wantUnauthorized(t, err, "token exp is more than 24h0m0s ahead")
		_, err = a.Authenticate(bearer(tok(exp)), true) // the WebSocket too
		wantUnauthorized(t, err, "token exp is more than 24h0m0s ahead")
	}
	// A ws-token is bound by its own lifetime only.
	b := newAuth(t, Config{JWTSecret: secret, MaxTTL: time.Second, Now: clk.Now})
	ws, _, err := b.IssueWSToken(Principal{Kind: KindUser, UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Authenticate(bearer(ws), true)
	wantUser(t, p, err, "u1", "")

	// Unset: not checked.
	c := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	p, err = c.Authenticate(bearer(tok(now.AddDate(1_000_000, 0, 0))), false)
	wantUser(t, p, err, "u1", "")
}

func TestAudience(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	a := newAuth(t, Config{JWTSecret: secret, Audience: "herald-api", Now: clk.Now})
	tok := func(aud any) string {
		c := userClaims(now, "u1")
		if aud != nil {
			c["aud"] = aud
		}
		return sign(t, jwt.SigningMethodHS256, secret, "", c)
	}
	for _, aud := range []any{"herald-api", []string{"other", "herald-api"}} {
		p, err := a.Authenticate(bearer(tok(aud)), false)
		wantUser(t, p, err, "u1", "")
	}
	for _, aud := range []any{"other", []string{"a", "b"}, nil} {
		_, err := a.Authenticate(bearer(tok(aud)), false)
		wantUnauthorized(t, err, "wrong audience")
	}

	// Without a configured audience, aud is not checked.
	b := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	p, err := b.Authenticate(bearer(tok("anything")), false)
	wantUser(t, p, err, "u1", "")
}

func TestAPIKeys(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: secret, APIKeys: []string{"first-key", "", "second-key-is-longer"}})

	p, err := a.Authenticate(bearer("first-key"), false)
	if err != nil || p.Kind != KindService || p.KeyID != "key-1" || p.UserID != "" || !p.IsService() {
		t.Fatalf("Bearer: %+v, %v", p, err)
	}
	r := httptest.NewRequest(http.MethodPost, "/notifications", nil)
	r.Header.Set("X-Api-Key", "second-key-is-longer")
	p, err = a.Authenticate(r, false)
	if err != nil || p.Kind != KindService || p.KeyID != "key-2" {
		t.Fatalf("X-Api-Key: %+v, %v", p, err)
	}
	// An API key is recognised on the WebSocket too; refusing it (403) is the caller's job.
	p, err = a.Authenticate(bearer("first-key"), true)
	if err != nil || p.Kind != KindService {
		t.Fatalf("ws: %+v, %v", p, err)
	}

	for _, cred := range []string{"first-ke", "first-key2", "unknown"} {
		_, err := a.Authenticate(bearer(cred), false)
		wantUnauthorized(t, err, "neither an API key nor a well-formed JWT")
	}
	// A key longer than the stack buffer it is hashed from is recognised all the same.
	long := strings.Repeat("k", 300)
	c := newAuth(t, Config{JWTSecret: secret, APIKeys: []string{"first-key", long}})
	if p, err := c.Authenticate(bearer(long), false); err != nil || p.KeyID != "key-2" {
		t.Fatalf("300-byte key: %+v, %v", p, err)
	}
	if _, err := c.Authenticate(bearer(long[:299]), false); err == nil {
		t.Fatal("a 299-byte prefix of the key was accepted")
	}
	// Every service request checks a key: it allocates nothing.
	r = bearer("second-key-is-longer")
	if n := testing.AllocsPerRun(100, func() { _, _ = a.Authenticate(r, false) }); n != 0 {
		t.Errorf("an API key check allocates %v times", n)
	}
}

func TestCredentialSources(t *testing.T) {
	a := newAuth(t, Config{JWTSecret: secret, APIKeys: []string{"key"}})

	r := httptest.NewRequest(http.MethodGet, "/notifications/unread", nil)
	_, err := a.Authenticate(r, false)
	wantUnauthorized(t, err, "missing credential")

	r.Header.Set("Authorization", "Bearer ")
	_, err = a.Authenticate(r, false)
	wantUnauthorized(t, err, "missing credential")

	r.Header.Set("Authorization", "Basic a2V5Og==")
	_, err = a.Authenticate(r, false)
	wantUnauthorized(t, err, "unsupported authorization scheme")

	// The query parameter counts on the WebSocket only.
	r = httptest.NewRequest(http.MethodGet, "/notifications/unread?token=key", nil)
	_, err = a.Authenticate(r, false)
	wantUnauthorized(t, err, "missing credential")
	if p, err := a.Authenticate(r, true); err != nil || p.Kind != KindService {
		t.Fatalf("query token on ws: %+v, %v", p, err)
	}

	_, err = a.Authenticate(bearer(strings.Repeat("a", maxCredential+1)), false)
	wantUnauthorized(t, err, "credential too long")
}

func TestWSToken(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})

	tok, ttl, err := a.IssueWSToken(Principal{Kind: KindUser, UserID: "u1", TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if ttl != DefaultWSTokenTTL {
		t.Fatalf("ttl %v", ttl)
	}
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if aud, _ := json.Marshal(claims["aud"]); string(aud) != `["ws"]` || claims["iss"] != "herald" || claims["sub"] != "u1" || claims["tid"] != "t1" {
		t.Fatalf("claims %v", claims)
	}

	wsReq := func() *http.Request {
		return httptest.NewRequest(http.MethodGet, "/notifications/ws?token="+tok, nil)
	}
	for i := range 2 { // usable more than once
		p, err := a.Authenticate(wsReq(), true)
		wantUser(t, p, err, "u1", "t1")
		if !p.WS {
			t.Fatalf("use %d: WS not set", i)
		}
	}
	p, err := a.Authenticate(bearer(tok), true) // in the header too
	wantUser(t, p, err, "u1", "t1")

	_, err = a.Authenticate(bearer(tok), false)
	wantUnauthorized(t, err, "ws-token is only valid for the WebSocket")

	// Only users get one.
	if _, _, err := a.IssueWSToken(Principal{Kind: KindService, KeyID: "key-1"}); herald.ErrorCode(err) != herald.CodeForbidden {
		t.Fatalf("service ws-token: %v", err)
	}

	// Another secret does not verify it.
	b := newAuth(t, Config{JWTSecret: secret, WSTokenSecret: []byte("a separate ws-token secret......"), Now: clk.Now})
	_, err = b.Authenticate(wsReq(), true)
	wantUnauthorized(t, err, "invalid token signature")

	clk.Add(DefaultWSTokenTTL + leeway + time.Second)
	_, err = a.Authenticate(wsReq(), true)
	wantUnauthorized(t, err, "token expired")
}

func TestWSTokenSecrets(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	jwks := writeJWKS(t, dir, rsaJWK("k1", &testKeys().rsa1.PublicKey))

	// JWKS only: a random ws-token secret, and a custom lifetime.
	a := newAuth(t, Config{JWKS: jwks, WSTokenTTL: 10 * time.Second, Now: clk.Now})
	tok, ttl, err := a.IssueWSToken(Principal{Kind: KindUser, UserID: "u1"})
	if err != nil || ttl != 10*time.Second {
		t.Fatal(ttl, err)
	}
	p, err := a.Authenticate(bearer(tok), true)
	wantUser(t, p, err, "u1", "")
	clk.Add(10*time.Second + leeway + time.Second)
	_, err = a.Authenticate(bearer(tok), true)
	wantUnauthorized(t, err, "token expired")

	// A separate ws-token secret: a ws-token signed with the JWT secret is refused.
	b := newAuth(t, Config{JWTSecret: secret, WSTokenSecret: []byte("ws secret"), Now: clk.Now})
	forged := sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{
		"sub": "u1", "iss": "herald", "aud": []string{"ws"}, "exp": clk.Now().Add(time.Minute).Unix(),
	})
	_, err = b.Authenticate(bearer(forged), true)
	wantUnauthorized(t, err, "invalid token signature")
}

func TestSignUserToken(t *testing.T) {
	tok, err := SignUserToken(secret, "u1", "t1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, Config{JWTSecret: secret})
	p, err := a.Authenticate(bearer(tok), false)
	wantUser(t, p, err, "u1", "t1")

	for _, bad := range []func() (string, error){
		func() (string, error) { return SignUserToken(nil, "u1", "", time.Minute) },
		func() (string, error) { return SignUserToken(secret, "", "", time.Minute) },
		func() (string, error) { return SignUserToken(secret, "u1", "", 0) },
	} {
		if _, err := bad(); err == nil {
			t.Fatal("SignUserToken accepted bad arguments")
		}
	}
}

// JWKS helpers.

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	point, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(point) - 1) / 2
	return map[string]any{
		"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": b64(point[1 : 1+size]), "y": b64(point[1+size:]),
	}
}

func jwksJSON(keys ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

func writeJWKS(t testing.TB, dir string, keys ...map[string]any) string {
	t.Helper()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, jwksJSON(keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwksServer serves a replaceable JWKS and counts the fetches.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
	fail bool
	gate chan struct{} // when set, a fetch is counted, then answered once gate is closed
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{doc: jwksJSON(keys...)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		s.mu.Lock()
		doc, fail := s.doc, s.fail
		s.mu.Unlock()
		if fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(fail bool, keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
	if keys != nil {
		s.doc = jwksJSON(keys...)
	}
}

func TestJWKSFile(t *testing.T) {
	k := testKeys()
	clk := newClock()
	now := clk.Now()
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := writeJWKS(t, t.TempDir(),
		rsaJWK("r1", &k.rsa1.PublicKey),
		ecJWK("e1", &k.ec1.PublicKey),
		ecJWK("e384", &ec384.PublicKey),
		map[string]any{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},                  // skipped
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": "x", "e": "y"}, // skipped
	)
	a := newAuth(t, Config{JWKS: path, Now: clk.Now})

	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, k.rsa1, "r1"},
		{"RS512", jwt.SigningMethodRS512, k.rsa1, "r1"},
		{"PS256", jwt.SigningMethodPS256, k.rsa1, "r1"},
		{"ES256", jwt.SigningMethodES256, k.ec1, "e1"},
		{"ES384", jwt.SigningMethodES384, ec384, "e384"},
		{"RS256 without kid: the only RSA key", jwt.SigningMethodRS256, k.rsa1, ""},
		{"ES256 without kid: the only P-256 key", jwt.SigningMethodES256, k.ec1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(bearer(sign(t, tc.method, tc.key, tc.kid, userClaims(now, "u1"))), false)
			wantUser(t, p, err, "u1", "")
		})
	}

	for _, tc := range []struct {
		name, token, msg string
	}{
		{"HS256 without secret", sign(t, jwt.SigningMethodHS256, secret, "", userClaims(now, "u1")), "unexpected signing algorithm"},
		{"key not in JWKS, known kid", sign(t, jwt.SigningMethodRS256, k.rsaOther, "r1", userClaims(now, "u1")), "invalid token signature"},
		{"key not in JWKS, unknown kid", sign(t, jwt.SigningMethodRS256, k.rsaOther, "other", userClaims(now, "u1")), "unknown signing key"},
		{"key not in JWKS, no kid", sign(t, jwt.SigningMethodRS256, k.rsaOther, "", userClaims(now, "u1")), "invalid token signature"},
		{"kid of another key type", sign(t, jwt.SigningMethodES256, k.ec1, "r1", userClaims(now, "u1")), "unknown signing key"},
		{"expired", sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", jwt.MapClaims{"sub": "u1", "exp": now.Add(-time.Hour).Unix()}), "token expired"},
		{"no exp", sign(t, jwt.SigningMethodES256, k.ec1, "e1", jwt.MapClaims{"sub": "u1"}), "token has no exp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(bearer(tc.token), false)
			wantUnauthorized(t, err, tc.msg)
		})
	}
}

func TestJWKSNoKidAmbiguous(t *testing.T) {
	k := testKeys()
	now := time.Now()
	path := writeJWKS(t, t.TempDir(), rsaJWK("r1", &k.rsa1.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey))
	a := newAuth(t, Config{JWKS: path})
	_, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "", userClaims(now, "u1"))), false)
	wantUnauthorized(t, err, "token has no kid")
}

func TestJWKSKeyAlg(t *testing.T) {
	k := testKeys()
	now := time.Now()
	key := rsaJWK("r1", &k.rsa1.PublicKey)
	key["alg"] = "RS256"
	a := newAuth(t, Config{JWKS: writeJWKS(t, t.TempDir(), key)})
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(now, "u1"))), false)
	wantUser(t, p, err, "u1", "")
	_, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodPS256, k.rsa1, "r1", userClaims(now, "u1"))), false)
	wantUnauthorized(t, err, "unknown signing key")
}

func TestJWKSFileReread(t *testing.T) {
	k := testKeys()
	clk := newClock()
	dir := t.TempDir()
	path := writeJWKS(t, dir, rsaJWK("r1", &k.rsa1.PublicKey))
	a := newAuth(t, Config{JWKS: path, Now: clk.Now})
	writeJWKS(t, dir, rsaJWK("r2", &k.rsa2.PublicKey))
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", userClaims(clk.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")
}

func TestNewJWKSErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	bad := newJWKSServer(t)
	bad.set(true)
	for name, source := range map[string]string{
		"missing file":  filepath.Join(dir, "nope.json"),
		"not JSON":      write("a.json", "not json"),
		"no keys":       write("b.json", `{"keys":[]}`),
		"only weak key": write("c.json", string(jwksJSON(rsaJWK("s", &small.PublicKey)))),
		"bad EC point":  write("d.json", `{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`),
		"bad RSA e":     write("e.json", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AA"}]}`),
		"alg mismatch":  write("f.json", string(jwksJSON(map[string]any{"kty": "EC", "alg": "RS256", "crv": "P-256", "x": ecJWK("", &testKeys().ec1.PublicKey)["x"], "y": ecJWK("", &testKeys().ec1.PublicKey)["y"]}))),
		"HTTP 500":      bad.URL,
	} {
		if _, err := New(Config{JWKS: source}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// recordingTransport answers every request with doc and records the URLs asked for.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
	doc  []byte
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(rt.doc)), Request: r,
	}, nil
}

func TestJWKSURLMustBeHTTPS(t *testing.T) {
	doc := jwksJSON(rsaJWK("r1", &testKeys().rsa1.PublicKey))
	for _, source := range []string{
		"http://example.com/.well-known/jwks.json",
		"http://10.0.0.7/jwks.json",
		"http://169.254.169.254/latest/meta-data",
		"http://[fd00::1]:8080/jwks.json",
		"http://localhost.example.com/jwks.json",
		"http://127.0.0.1.nip.io/jwks.json",
	} {
		rt := &recordingTransport{doc: doc}
		_, err := New(Config{JWKS: source, HTTPClient: &http.Client{Transport: rt}})
		if err == nil || !strings.Contains(err.Error(), "https") {
			t.Errorf("%s: New: %v, want a refusal asking for https", source, err)
		}
		if len(rt.urls) != 0 {
			t.Errorf("%s: fetched %v", source, rt.urls)
		}
	}
	// https anywhere, http on a loopback host only.
	for _, source := range []string{
		"https://issuer.example/.well-known/jwks.json",
		"http://localhost:8081/jwks.json",
		"http://LOCALHOST/jwks.json",
		"http://127.0.0.1:8081/jwks.json",
		"http://127.9.8.7/jwks.json",
		"http://[::1]:8081/jwks.json",
	} {
		rt := &recordingTransport{doc: doc}
		if _, err := New(Config{JWKS: source, HTTPClient: &http.Client{Transport: rt}}); err != nil {
			t.Errorf("%s: %v", source, err)
		}
		if len(rt.urls) != 1 {
			t.Errorf("%s: fetched %v, want it once", source, rt.urls)
		}
	}
	if err := CheckJWKS("http://example.com/jwks.json"); err == nil {
		t.Error("CheckJWKS accepted a plain http URL")
	}
	if err := CheckJWKS("/etc/herald/jwks.json"); err != nil {
		t.Errorf("CheckJWKS refused a file: %v", err)
	}
}

func TestJWKSHTTPS(t *testing.T) {
	k := testKeys()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwksJSON(rsaJWK("r1", &k.rsa1.PublicKey)))
	}))
	defer srv.Close()
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client()})
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(time.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")
}

// The JWKS client does not follow redirects: a JWKS URL that redirects, say to an
// internal address, fails at start and on every refresh, and the target is never asked.
func TestJWKSRedirectRefused(t *testing.T) {
	k := testKeys()
	internal := newJWKSServer(t, rsaJWK("evil", &k.rsaOther.PublicKey))
	var redirect atomic.Bool
	redirect.Store(true)
	good := jwksJSON(rsaJWK("r1", &k.rsa1.PublicKey))
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() {
			http.Redirect(w, r, internal.URL+"/jwks.json", http.StatusFound)
			return
		}
		w.Write(good)
	}))
	defer front.Close()

	for name, client := range map[string]*http.Client{"default client": nil, "configured client": front.Client()} {
		_, err := New(Config{JWKS: front.URL, HTTPClient: client})
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("%s: New with a redirecting JWKS URL: %v", name, err)
		}
	}
	wantHits(t, internal, 0, "at New")

	// A later refresh that meets a redirect keeps the keys it has.
	redirect.Store(false)
	clk := newClock()
	a := newAuth(t, Config{JWKS: front.URL, HTTPClient: front.Client(), Now: clk.Now})
	redirect.Store(true)
	clk.Add(time.Minute)
	_, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsaOther, "evil", userClaims(clk.Now(), "u1"))), false)
	wantUnauthorized(t, err, "unknown signing key")
	if he := err.(*herald.Error); he.Err == nil || !strings.Contains(he.Err.Error(), "redirect") {
		t.Fatalf("refresh error %v, want the refused redirect", he.Err)
	}
	wantHits(t, internal, 0, "after a refresh")
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")
}

func TestJWKSURLRotation(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now})
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches at New, want 1", n)
	}
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches after a known kid, want 1", n)
	}

	// The host rotates to r2 (and EC e1): the first token with r2 refetches once.
	srv.set(false, rsaJWK("r2", &k.rsa2.PublicKey), ecJWK("e1", &k.ec1.PublicKey))
	for range 3 {
		p, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", userClaims(clk.Now(), "u2"))), false)
		wantUser(t, p, err, "u2", "")
	}
	p, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodES256, k.ec1, "e1", userClaims(clk.Now(), "u3"))), false)
	wantUser(t, p, err, "u3", "")
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after rotation, want 2", n)
	}
	// r1 was removed from the JWKS and the refresh dropped it.
	_, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUnauthorized(t, err, "unknown signing key")
}

func TestJWKSRefreshRateLimit(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now})

	flood := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				jt := jwt.NewWithClaims(jwt.SigningMethodRS256, userClaims(clk.Now(), "u1"))
				jt.Header["kid"] = fmt.Sprintf("garbage-%d", i)
				tok, err := jt.SignedString(k.rsaOther)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = a.Authenticate(bearer(tok), false)
				if he, ok := errors.AsType[*herald.Error](err); !ok || he.Code != herald.CodeUnauthorized || he.Message != "unknown signing key" {
					t.Errorf("garbage kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	flood(50)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after the first flood, want 2 (New and one refresh)", n)
	}
	clk.Add(29 * time.Second)
	flood(20)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches 29 s later, want 2", n)
	}
	// Known kids keep working meanwhile, without fetching.
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")

	clk.Add(time.Second)
	flood(20)
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches 30 s later, want 3", n)
	}

	// A failed refresh keeps the old keys.
	srv.set(true)
	clk.Add(time.Minute)
	flood(5)
	if n := srv.hits.Load(); n != 4 {
		t.Fatalf("%d fetches after the failing refresh, want 4", n)
	}
	p, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUser(t, p, err, "u1", "")
}

func FuzzAuthenticate(f *testing.F) {
	k := testKeys()
	now := time.Now()
	path := writeJWKS(f, f.TempDir(), rsaJWK("r1", &k.rsa1.PublicKey), ecJWK("e1", &k.ec1.PublicKey))
	a := newAuth(f, Config{JWTSecret: secret, JWKS: path, Audience: "herald-api", APIKeys: []string{"api-key"}})
	ws, _, err := a.IssueWSToken(Principal{Kind: KindUser, UserID: "u1"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer api-key", "Basic x", "bearer a.b.c", "Bearer ...",
		"Bearer " + ws,
		"Bearer " + sign(f, jwt.SigningMethodHS256, secret, "", userClaims(now, "u1")),
		"Bearer " + sign(f, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(now, "u1")),
		"Bearer " + sign(f, jwt.SigningMethodES256, k.ec1, "", userClaims(now, "u1")),
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.",
		"Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.AA",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, header string, ws bool) {
		r := httptest.NewRequest(http.MethodGet, "/notifications/ws", nil)
		r.Header.Set("Authorization", header)
		p, err := a.Authenticate(r, ws)
		if err == nil {
			if p.Kind != KindUser && p.Kind != KindService {
				t.Fatalf("no error and principal %+v", p)
			}
			return
		}
		var he *herald.Error
		if !errors.As(err, &he) || he.Code != herald.CodeUnauthorized {
			t.Fatalf("error %v (%T), want a 401 *herald.Error", err, err)
		}
	})
}

// waitRefresh returns once no JWKS refresh of a is running. A background refresh takes
// refreshMu before the request that starts it returns and keeps it until the new keys
// are in place, so after a request waitRefresh sees the effect of any refresh it began.
func waitRefresh(a *Authenticator) {
	a.jwks.refreshMu.Lock()
	defer a.jwks.refreshMu.Unlock()
}

// wantHits fails unless srv has served n fetches.
func wantHits(t *testing.T, srv *jwksServer, n int64, when string) {
	t.Helper()
	if got := srv.hits.Load(); got != n {
		t.Fatalf("%d fetches %s, want %d", got, when, n)
	}
}

func TestJWKSMaxAgeRemovedKey(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey))
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now}) // default max age
	r1 := func() (Principal, error) {
		return a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	}
	r2 := func() (Principal, error) {
		return a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", userClaims(clk.Now(), "u2"))), false)
	}

	// The host removes r1, say after a compromise. Until the keys are
	// DefaultJWKSMaxAge old, nothing is fetched and r1 still verifies.
	srv.set(false, rsaJWK("r2", &k.rsa2.PublicKey))
	clk.Add(DefaultJWKSMaxAge - time.Second)
	p, err := r1()
	wantUser(t, p, err, "u1", "")
	waitRefresh(a)
	wantHits(t, srv, 1, "before the max age")

	// The first request after the max age starts a refresh and is verified with the
	// keys it found; once the refresh is done, r1 is refused.
	clk.Add(time.Second)
	p, err = r1()
	wantUser(t, p, err, "u1", "")
	waitRefresh(a)
	wantHits(t, srv, 2, "after the max age")
	_, err = r1()
	wantUnauthorized(t, err, "unknown signing key")
	p, err = r2()
	wantUser(t, p, err, "u2", "")
	wantHits(t, srv, 2, "after r1 was dropped") // the unknown kid was rate limited

	// The new keys are good for another max age.
	clk.Add(DefaultJWKSMaxAge - time.Second)
	p, err = r2()
	wantUser(t, p, err, "u2", "")
	waitRefresh(a)
	wantHits(t, srv, 2, "within the max age of the refreshed keys")
}

func TestJWKSMaxAgeNoEarlyRefresh(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	tok := func() string {
		return sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))
	}

	// A max age of 2 minutes: none of many requests before it fetches.
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now, JWKSMaxAge: 2 * time.Minute})
	for i := range 12 {
		p, err := a.Authenticate(bearer(tok()), false)
		wantUser(t, p, err, "u1", "")
		waitRefresh(a)
		wantHits(t, srv, 1, fmt.Sprintf("%d s after New", 10*i))
		clk.Add(10 * time.Second)
	}
	// Now exactly 2 minutes.
	p, err := a.Authenticate(bearer(tok()), false)
	wantUser(t, p, err, "u1", "")
	waitRefresh(a)
	wantHits(t, srv, 2, "at the max age")

	// A max age below the 30 s rate limit counts as 30 s.
	clk = newClock()
	srv = newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	b := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now, JWKSMaxAge: time.Second})
	clk.Add(29 * time.Second)
	p, err = b.Authenticate(bearer(tok()), false)
	wantUser(t, p, err, "u1", "")
	waitRefresh(b)
	wantHits(t, srv, 1, "29 s after New with a 1 s max age")
	clk.Add(time.Second)
	p, err = b.Authenticate(bearer(tok()), false)
	wantUser(t, p, err, "u1", "")
	waitRefresh(b)
	wantHits(t, srv, 2, "30 s after New with a 1 s max age")
}

func TestJWKSMaxAgeFailingServer(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	maxAge := 5 * time.Minute
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now, JWKSMaxAge: maxAge})
	r1 := func() {
		t.Helper()
		p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
		wantUser(t, p, err, "u1", "")
		waitRefresh(a)
	}

	srv.set(true)
	clk.Add(maxAge)
	r1()
	wantHits(t, srv, 2, "after the max age")
	// The refresh failed: the old keys stay, and the next attempt waits 30 s.
	r1()
	clk.Add(29 * time.Second)
	r1()
	wantHits(t, srv, 2, "29 s after the failed refresh")
	clk.Add(time.Second)
	r1()
	wantHits(t, srv, 3, "30 s after the failed refresh")

	// The JWKS comes back without r1: the next attempt drops it.
	srv.set(false, rsaJWK("r2", &k.rsa2.PublicKey))
	clk.Add(30 * time.Second)
	r1()
	wantHits(t, srv, 4, "after the JWKS came back")
	_, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))), false)
	wantUnauthorized(t, err, "unknown signing key")
}

func TestJWKSMaxAgeConcurrent(t *testing.T) {
	k := testKeys()
	clk := newClock()
	srv := newJWKSServer(t, rsaJWK("r1", &k.rsa1.PublicKey))
	a := newAuth(t, Config{JWKS: srv.URL, HTTPClient: srv.Client(), Now: clk.Now})

	// Hold the next fetch at the server until the known-kid requests are done.
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // before the server closes: Close waits for the held fetch
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	srv.set(false, rsaJWK("r1", &k.rsa1.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey))
	clk.Add(DefaultJWKSMaxAge)

	// Signed beforehand, so that the requests below are quick.
	knownTok := sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1"))
	var garbage []string
	for i := range 10 {
		garbage = append(garbage, sign(t, jwt.SigningMethodRS256, k.rsaOther, fmt.Sprintf("garbage-%d", i), userClaims(clk.Now(), "u1")))
	}

	var known, unknown sync.WaitGroup
	for range 50 {
		known.Go(func() {
			p, err := a.Authenticate(bearer(knownTok), false)
			if err != nil || p.UserID != "u1" {
				t.Errorf("known kid: %+v, %v", p, err)
			}
		})
	}
	// Unknown kids wait for the refresh in flight rather than starting another.
	for _, tok := range garbage {
		unknown.Go(func() {
			_, err := a.Authenticate(bearer(tok), false)
			if he, ok := errors.AsType[*herald.Error](err); !ok || he.Message != "unknown signing key" {
				t.Errorf("garbage kid: %v", err)
			}
		})
	}
	// The known-kid requests finish while the fetch is held: none waits on the network.
	// (Had one waited, the fetch would time out and r2 below would be unknown.)
	done := make(chan struct{})
	go func() { known.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(fetchTimeout):
		t.Fatal("requests with a known kid waited for the background refresh")
	}
	release()
	unknown.Wait()
	waitRefresh(a)
	wantHits(t, srv, 2, "after concurrent requests at the max age")

	// The one refresh brought r2.
	p, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", userClaims(clk.Now(), "u2"))), false)
	wantUser(t, p, err, "u2", "")
	wantHits(t, srv, 2, "after r2")
}

func TestJWKSMaxAgeFile(t *testing.T) {
	k := testKeys()
	clk := newClock()
	dir := t.TempDir()
	path := writeJWKS(t, dir, rsaJWK("r1", &k.rsa1.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey))
	a := newAuth(t, Config{JWKS: path, Now: clk.Now, JWKSMaxAge: time.Minute})
	tok := func() string { return sign(t, jwt.SigningMethodRS256, k.rsa1, "r1", userClaims(clk.Now(), "u1")) }

	writeJWKS(t, dir, rsaJWK("r2", &k.rsa2.PublicKey))
	clk.Add(time.Minute)
	p, err := a.Authenticate(bearer(tok()), false)
	wantUser(t, p, err, "u1", "")
	waitRefresh(a)
	_, err = a.Authenticate(bearer(tok()), false)
	wantUnauthorized(t, err, "unknown signing key")
}
