package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
)

// signRaw returns an HS256 JWT whose claims segment is payload, byte for byte, signed
// with key: what an attacker holding a validly signed token of their own could send
// if the host application copies claims it does not check (or what a careless host
// application signs).
func signRaw(key []byte, payload string) string {
	const header = `{"alg":"HS256","typ":"JWT"}`
	s := b64([]byte(header)) + "." + b64([]byte(payload))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + b64(m.Sum(nil))
}

func TestClaimNames(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	now := clk.Now().Unix()
	exp := fmt.Sprintf(`"exp":%d`, now+3600)

	// Claim names are exact: a name that differs from one Herald reads only in case
	// (Unicode simple folding: ſ is s, K is k) or a repeated name is refused, whoever
	// signed the token.
	for _, tc := range []struct{ name, payload, msg string }{
		{"long s", `{"sub":"alice","ſub":"bob",` + exp + `}`, `token claim "ſub" differs from "sub" only in case`},
		{"long s first", `{"ſub":"bob","sub":"alice",` + exp + `}`, `token claim "ſub" differs from "sub" only in case`},
		{"upper case sub", `{"Sub":"bob",` + exp + `}`, `token claim "Sub" differs from "sub" only in case`},
		{"upper case exp", fmt.Sprintf(`{"sub":"alice","exp":%d,"EXP":%d}`, now-3600, now+3600), `token claim "EXP" differs from "exp" only in case`},
		{"upper case tid", `{"sub":"alice","Tid":"other",` + exp + `}`, `token claim "Tid" differs from "tid" only in case`},
		{"upper case iss", `{"sub":"alice","ISS":"herald",` + exp + `}`, `token claim "ISS" differs from "iss" only in case`},
		{"escaped fold", `{"sub":"alice","\u017fub":"bob",` + exp + `}`, `token claim "ſub" differs from "sub" only in case`},
		{"duplicate sub", `{"sub":"alice","sub":"bob",` + exp + `}`, `token has a duplicate claim "sub"`},
		{"duplicate exp", fmt.Sprintf(`{"sub":"alice","exp":%d,"exp":%d}`, now-3600, now+3600), `token has a duplicate claim "exp"`},
		{"duplicate by escape", `{"sub":"alice","\u0073ub":"bob",` + exp + `}`, `token has a duplicate claim "sub"`},
		{"duplicate unregistered", `{"sub":"alice","role":"user","role":"admin",` + exp + `}`, `token has a duplicate claim "role"`},
		{"duplicate after many", `{"sub":"alice",` + manyClaims(40) + `,"c7":0,` + exp + `}`, `token has a duplicate claim "c7"`},
		{"not an object", `["sub","alice"]`, "malformed token: the claims are not a JSON object"},
		{"sub not a string", `{"sub":42,` + exp + `}`, `malformed token: claim "sub" must be a string`},
		{"exp not a number", `{"sub":"alice","exp":"tomorrow"}`, `malformed token: claim "exp" must be a number`},
		{"aud not strings", `{"sub":"alice","aud":[1],` + exp + `}`, `malformed token: claim "aud" must be a string or an array of strings`},
		// Text encoding/json would replace with U+FFFD: several subs would be one user.
		{"lone high surrogate", `{"sub":"x\ud800",` + exp + `}`, `malformed token: claim "sub" must be valid UTF-8`},
		{"lone low surrogate", `{"sub":"x\udc01",` + exp + `}`, `malformed token: claim "sub" must be valid UTF-8`},
		{"invalid UTF-8", "{\"sub\":\"x\xff\"," + exp + `}`, `malformed token: claim "sub" must be valid UTF-8`},
		{"invalid UTF-8 escaped too", "{\"sub\":\"\\u0078\xff\"," + exp + `}`, `malformed token: claim "sub" must be valid UTF-8`},
		{"tenant", `{"sub":"alice","tid":"t\udfff",` + exp + `}`, `malformed token: claim "tid" must be valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(bearer(signRaw(secret, tc.payload)), false)
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			wantUnauthorized(t, err, tc.msg)
		})
	}

	// Exact names, whatever else the token holds, are read as before.
	for _, tc := range []struct{ name, payload, user, tenant string }{
		{"plain", `{"sub":"alice","tid":"t1",` + exp + `}`, "alice", "t1"},
		{"escaped name", `{"\u0073ub":"alice",` + exp + `}`, "alice", ""},
		{"escaped value", `{"sub":"al\u0069ce","tid":"t\/1",` + exp + `}`, "alice", "t/1"},
		{"surrogate pair", `{"sub":"\ud83d\ude00",` + exp + `}`, "\U0001F600", ""},
		{"white space", "{ \"sub\" :\t\"alice\" ,\n" + exp + " }", "alice", ""},
		{"unrelated names that fold", `{"sub":"alice","Role":"a","role":"b","ROLE":"c",` + exp + `}`, "alice", ""},
		{"many claims", `{"sub":"alice",` + manyClaims(100) + `,` + exp + `}`, "alice", ""},
		{"nested", `{"sub":"alice","x":{"sub":"bob","sub":"eve","a":[{"b":[null,true,false,-1.5e3]}]},` + exp + `}`, "alice", ""},
		{"null tid", `{"sub":"alice","tid":null,` + exp + `}`, "alice", ""},
		{"fractional exp", fmt.Sprintf(`{"sub":"alice","exp":%d.5}`, now+3600), "alice", ""},
		{"exponent exp", `{"sub":"alice","exp":1.9e9}`, "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(bearer(signRaw(secret, tc.payload)), false)
			wantUser(t, p, err, tc.user, tc.tenant)
		})
	}
}

// manyClaims returns n distinct claims c0..c(n-1), without braces.
func manyClaims(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"c%d":%d`, i, i)
	}
	return b.String()
}

// A ws-token's claims are held to the same rules: a duplicate aud in a token signed
// with the ws-token key is refused before anything else looks at it.
func TestClaimNamesWSToken(t *testing.T) {
	clk := newClock()
	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	payload := fmt.Sprintf(`{"iss":"herald","aud":["ws"],"sub":"u1","sub":"u2","exp":%d}`, clk.Now().Unix()+60)
	_, err := a.Authenticate(bearer(signRaw(wsKeyFor(secret), payload)), true)
	wantUnauthorized(t, err, `token has a duplicate claim "sub"`)
}

// wsKeyFor is the ws-token key derived from secret, as the package doc describes it.
func wsKeyFor(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("herald ws-token v1"))
	return m.Sum(nil)
}

func TestWSTokenIsNotAUserJWT(t *testing.T) {
	clk := newClock()
	for _, cfg := range []Config{
		{JWTSecret: secret, Now: clk.Now},
		{JWTSecret: secret, WSTokenSecret: []byte("a separate ws-token secret......"), Now: clk.Now},
	} {
		a := newAuth(t, cfg)
		tok, _, err := a.IssueWSToken(Principal{Kind: KindUser, UserID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		// A host application verifying its own HS256 JWTs with HERALD_JWT_SECRET (or
		// with the ws-token secret) does not take a ws-token, which travels in URLs and
		// logs, for one of its tokens.
		for _, key := range [][]byte{secret, cfg.WSTokenSecret} {
			if key == nil {
				continue
			}
			_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return key, nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(clk.Now))
			if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
				t.Fatalf("ws-token verified with a configured secret as a plain HS256 JWT: %v", err)
			}
		}
		// Nor does Herald itself take it for a user JWT on any endpoint other than the
		// WebSocket.
		_, err = a.Authenticate(bearer(tok), false)
		wantUnauthorized(t, err, "ws-token is only valid for the WebSocket")
	}
}

func TestWSTokenKey(t *testing.T) {
	clk := newClock()
	wsSecret := []byte("a separate ws-token secret......")
	exp := clk.Now().Add(time.Minute).Unix()
	wsClaims := jwt.MapClaims{"sub": "u1", "iss": "herald", "aud": []string{"ws"}, "exp": exp}

	a := newAuth(t, Config{JWTSecret: secret, Now: clk.Now})
	b := newAuth(t, Config{JWTSecret: secret, WSTokenSecret: wsSecret, Now: clk.Now})
	for _, tc := range []struct {
		name string
		a    *Authenticator
		key  []byte
		ok   bool
	}{
		{"key derived from the JWT secret", a, wsKeyFor(secret), true},
		{"the JWT secret itself", a, secret, false},
		{"key derived from the ws-token secret", b, wsKeyFor(wsSecret), true},
		{"the ws-token secret itself", b, wsSecret, false},
		{"key derived from the JWT secret, with a ws-token secret", b, wsKeyFor(secret), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, tc.key, "", wsClaims)), true)
			if tc.ok {
				wantUser(t, p, err, "u1", "")
				if !p.WS {
					t.Fatal("WS not set")
				}
				return
			}
			wantUnauthorized(t, err, "invalid token signature")
		})
	}

	// A JWT signed with the ws-token key but without the ws-token claims is no user
	// token either: the ws-token key verifies ws-tokens only.
	_, err := a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, wsKeyFor(secret), "", userClaims(clk.Now(), "u1"))), true)
	wantUnauthorized(t, err, "invalid token signature")
	_, err = a.Authenticate(bearer(sign(t, jwt.SigningMethodHS256, wsKeyFor(secret), "", userClaims(clk.Now(), "u1"))), false)
	wantUnauthorized(t, err, "invalid token signature")
}

// Every node with the same secrets derives the same ws-token key: a ws-token from one
// node opens a socket on any other.
func TestWSTokenAcrossNodes(t *testing.T) {
	clk := newClock()
	for name, cfg := range map[string]Config{
		"JWT secret":      {JWTSecret: secret, Now: clk.Now},
		"ws-token secret": {JWTSecret: secret, WSTokenSecret: []byte("a separate ws-token secret......"), Now: clk.Now},
	} {
		t.Run(name, func(t *testing.T) {
			node1, node2 := newAuth(t, cfg), newAuth(t, cfg)
			tok, _, err := node1.IssueWSToken(Principal{Kind: KindUser, UserID: "u1", TenantID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := node2.Authenticate(httptest.NewRequest(http.MethodGet, "/notifications/ws?token="+tok, nil), true)
			wantUser(t, p, err, "u1", "t1")
			if !p.WS {
				t.Fatal("WS not set")
			}
		})
	}

	// With only a JWKS, each process has its own random key.
	path := writeJWKS(t, t.TempDir(), rsaJWK("k1", &testKeys().rsa1.PublicKey))
	node1, node2 := newAuth(t, Config{JWKS: path, Now: clk.Now}), newAuth(t, Config{JWKS: path, Now: clk.Now})
	tok, _, err := node1.IssueWSToken(Principal{Kind: KindUser, UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = node2.Authenticate(bearer(tok), true)
	wantUnauthorized(t, err, "invalid token signature")
}

// replacementFree reports whether the text of a JSON string decodes to the same code
// units a strict decoder would read: valid UTF-8, and its UTF-16 code units (escapes
// as written, other characters encoded) paired wherever they are surrogates.
func replacementFree(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	var units []uint16
	for i := 0; i < len(raw); {
		if raw[i] == '\\' && raw[i+1] == 'u' {
			v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
			if err != nil {
				return false
			}
			units = append(units, uint16(v))
			i += 6
			continue
		}
		if raw[i] == '\\' {
			units = append(units, uint16(raw[i+1]))
			i += 2
			continue
		}
		r, n := utf8.DecodeRune(raw[i:])
		units = utf16.AppendRune(units, r)
		i += n
	}
	for i := 0; i < len(units); i++ {
		switch u := rune(units[i]); {
		case u >= 0xDC00 && u <= 0xDFFF:
			return false
		case u >= 0xD800 && u <= 0xDBFF:
			if i+1 >= len(units) || units[i+1] < 0xDC00 || units[i+1] > 0xDFFF {
				return false
			}
			i++
		}
	}
	return true
}

// exactClaims decodes data as a decoder that knows names only exactly would: the
// names of the top-level object as they are, each claim Herald reads decoded by
// encoding/json into its field. ok is false for anything Herald must refuse: not a
// JSON object, a duplicate name, a name that differs from a claim Herald reads only
// in case, a claim Herald reads whose value does not decode, or a string claim whose
// text encoding/json would replace.
func exactClaims(data []byte) (c claims, ok bool) {
	if !json.Valid(data) {
		return c, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return c, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return c, false
		}
		name := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return c, false
		}
		if seen[name] {
			return c, false
		}
		seen[name] = true
		switch name {
		case "iss", "sub", "jti", "tid", "aud":
			if len(raw) > 0 && raw[0] == '"' && !replacementFree(raw[1:len(raw)-1]) {
				return c, false
			}
		}
		switch name {
		case "iss":
			err = json.Unmarshal(raw, &c.Issuer)
		case "sub":
			err = json.Unmarshal(raw, &c.Subject)
		case "aud":
			err = json.Unmarshal(raw, &c.Audience)
		case "exp":
			err = json.Unmarshal(raw, &c.ExpiresAt)
		case "nbf":
			err = json.Unmarshal(raw, &c.NotBefore)
		case "iat":
			err = json.Unmarshal(raw, &c.IssuedAt)
		case "jti":
			err = json.Unmarshal(raw, &c.ID)
		case "tid":
			err = json.Unmarshal(raw, &c.TenantID)
		default:
			for _, known := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "tid"} {
				if strings.EqualFold(name, known) {
					return c, false
				}
			}
		}
		if err != nil {
			return c, false
		}
	}
	return c, true
}

func FuzzClaims(f *testing.F) {
	for _, seed := range []string{
		`{"sub":"alice","exp":1800003600}`,
		`{"sub":"alice","tid":"t1","iat":1800000000,"exp":1800003600,"nbf":1800000000,"aud":["herald-api"],"iss":"https://issuer.example","jti":"j1"}`,
		`{"iss":"herald","aud":["ws"],"sub":"u1","tid":"t1","exp":1800000060,"iat":1800000000}`,
		`{"sub":"alice","ſub":"bob"}`, `{"sub":"alice","sub":"bob"}`, `{"Sub":"bob"}`, `{"EXP":1,"exp":2}`,
		`{"\u0073ub":"alice"}`, `{"sub":"alice","\u017fub":"bob"}`, `{"sub":"al\u0069ce","tid":"\ud83d\ude00"}`,
		`{"sub":"a","x":{"sub":"b","sub":"c"},"y":[1,-2.5e-3,true,false,null,"s",{},[]]}`,
		`{"exp":1e300}`, `{"exp":-1}`, `{"exp":"1800000000"}`, `{"exp":1800000000.999}`, `{"exp":123456789012345678}`,
		`{"aud":"a"}`, `{"aud":[]}`, `{"aud":null}`, `{"aud":["a","b\n"]}`, `{"aud":[1]}`, `{"sub":null,"tid":null}`,
		"{\"sub\":\"a\xffb\"}", "{\"s\xffb\":1}", `{}`, ` { } `, `[]`, `null`, `"x"`, `{"a":1,}`, `{"a" 1}`, `{"a":01}`,
		`{"a":[1,2]]}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":tru}`, `{"a":1}x`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
		`{` + manyClaims(20) + `,"c3":1}`, `{` + manyClaims(20) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Called directly, on anything: no panic, and an error is a 401.
		var direct claims
		err := direct.UnmarshalJSON(data)
		if err != nil {
			if he, ok := errors.AsType[*herald.Error](err); !ok || he.Code != herald.CodeUnauthorized || he.Message == "" {
				t.Fatalf("error %v (%T), want a 401 *herald.Error", err, err)
			}
		}
		want, ok := exactClaims(data)
		if ok != (err == nil) {
			t.Fatalf("%q: accepted %v (%v), an exact-name decoder accepts %v", data, err == nil, err, ok)
		}
		if ok && !reflect.DeepEqual(direct, want) {
			t.Fatalf("%q: decoded %+v, an exact-name decoder reads %+v", data, direct, want)
		}

		// Through golang-jwt, as Authenticate decodes claims: the same outcome.
		token := b64([]byte(`{"alg":"HS256"}`)) + "." + b64(data) + ".c2ln"
		var viaJWT claims
		_, _, jerr := peekParser.ParseUnverified(token, &viaJWT)
		if string(bytes.TrimSpace(data)) == "null" {
			// encoding/json sets golang-jwt's Claims interface to nil rather than
			// decode null into it: the claims stay empty (and the token has no exp).
			if jerr != nil || !reflect.DeepEqual(viaJWT, claims{}) {
				t.Fatalf("null claims: %+v, %v", viaJWT, jerr)
			}
			return
		}
		if ok != (jerr == nil) {
			t.Fatalf("%q: golang-jwt accepted %v (%v), an exact-name decoder accepts %v", data, jerr == nil, jerr, ok)
		}
		if ok && (viaJWT.Subject != want.Subject || viaJWT.TenantID != want.TenantID || !reflect.DeepEqual(viaJWT.ExpiresAt, want.ExpiresAt)) {
			t.Fatalf("%q: golang-jwt decoded %+v, an exact-name decoder reads %+v", data, viaJWT, want)
		}
		if !ok && !errors.Is(jerr, jwt.ErrTokenMalformed) {
			t.Fatalf("%q: golang-jwt error %v, want it malformed", data, jerr)
		}
	})
}
