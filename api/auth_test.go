package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
)

// rawToken returns an HS256 JWT with exactly payload as its claims, signed with the
// test secret: a token the host application signed, claim names as they came.
func rawToken(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	s := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(s))
	return s + "." + enc(m.Sum(nil))
}

// wantUnauthorizedMessage asserts a 401 whose message contains msg.
func wantUnauthorizedMessage(t *testing.T, r response, msg string) {
	t.Helper()
	wantError(t, r, 401, herald.CodeUnauthorized, "")
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || !strings.Contains(body.Error.Message, msg) {
		t.Fatalf("message %q, want it to contain %q", body.Error.Message, msg)
	}
}

// A signed token whose claims name sub twice, or once as "ſub" (which encoding/json
// folds to sub), reads no one's notifications: 401, not bob's inbox.
func TestClaimNamesOverHTTP(t *testing.T) {
	e := newEnv(t, stores["embedded"](t))
	if r := e.do("POST", "/notifications", testKey, `{"receiverId":"bob","type":"secret"}`); r.code != 201 {
		t.Fatalf("create for bob: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/notifications", testKey, `{"receiverId":"x\ufffd","type":"secret"}`); r.code != 201 {
		t.Fatalf("create for x\ufffd: %d %s", r.code, r.body)
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct{ payload, msg string }{
		{fmt.Sprintf(`{"sub":"alice","ſub":"bob","exp":%d}`, exp), `token claim "ſub" differs from "sub" only in case`},
		{fmt.Sprintf(`{"sub":"alice","sub":"bob","exp":%d}`, exp), `token has a duplicate claim "sub"`},
		{fmt.Sprintf(`{"Sub":"bob","exp":%d}`, exp), `token claim "Sub" differs from "sub" only in case`},
		{fmt.Sprintf(`{"sub":"bob","exp":%d,"iat":%d}`, exp, time.Now().Add(time.Hour).Unix()), "token iat is in the future"},
		// Subs that encoding/json would all read as "x\ufffd", the inbox created below.
		{fmt.Sprintf(`{"sub":"x\ud800","exp":%d}`, exp), `claim "sub" must be valid UTF-8`},
		{fmt.Sprintf(`{"sub":"x\udc01","exp":%d}`, exp), `claim "sub" must be valid UTF-8`},
		{fmt.Sprintf("{\"sub\":\"x\xff\",\"exp\":%d}", exp), `claim "sub" must be valid UTF-8`},
	} {
		wantUnauthorizedMessage(t, e.do("GET", "/notifications/unread", rawToken(tc.payload), nil), tc.msg)
	}
	// The same token with exact, single names reads bob's inbox.
	r := e.do("GET", "/notifications/unread", rawToken(fmt.Sprintf(`{"sub":"bob","exp":%d}`, exp)), nil)
	if r.code != 200 || !strings.Contains(string(r.body), `"secret"`) {
		t.Fatalf("bob's own token: %d %s", r.code, r.body)
	}
}

// A ws-token from GET /notifications/ws-token is no HS256 JWT signed with the JWT
// secret: a host application verifying its own tokens with that secret refuses it.
func TestWSTokenIsNoHostJWT(t *testing.T) {
	e := newEnv(t, stores["embedded"](t))
	r := e.do("GET", "/notifications/ws-token", userToken(t, "alice"), nil)
	tok, _ := r.json(t)["wsToken"].(string)
	if r.code != 200 || tok == "" {
		t.Fatalf("ws-token: %d %s", r.code, r.body)
	}
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }, jwt.WithValidMethods([]string{"HS256"}))
	if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Fatalf("the ws-token verified as a host JWT: %v", err)
	}
	wantUnauthorizedMessage(t, e.do("GET", "/notifications/unread", tok, nil), "ws-token is only valid for the WebSocket")
}
