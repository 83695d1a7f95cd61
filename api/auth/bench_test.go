package auth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkAuthenticate measures one verification of each kind of credential the API
// sees on every request: a user JWT (HS256, with a tenant), a ws-token and a service's
// API key (the second of two).
func BenchmarkAuthenticate(b *testing.B) {
	now := time.Now()
	a := newAuth(b, Config{JWTSecret: secret, APIKeys: []string{"other-key-0123456789abcdef012345", "svc-key-0123456789abcdef0123456789"}})
	c := userClaims(now, "user-1234567890")
	c["tid"] = "tenant-42"
	user := sign(b, jwt.SigningMethodHS256, secret, "", c)
	ws, _, err := a.IssueWSToken(Principal{Kind: KindUser, UserID: "user-1234567890", TenantID: "tenant-42"})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, token string
		ws          bool
	}{{"user-jwt", user, false}, {"ws-token", ws, true}, {"api-key", "svc-key-0123456789abcdef0123456789", false}} {
		b.Run(bc.name, func(b *testing.B) {
			r := bearer(bc.token)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(r, bc.ws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClaims measures decoding the claims of a typical user JWT, as the parser
// does it (json.Unmarshal into the claims).
func BenchmarkClaims(b *testing.B) {
	data := []byte(`{"sub":"user-1234567890","tid":"tenant-42","iat":1800000000,"exp":1800003600,"aud":["herald-api"],"iss":"https://issuer.example","name":"Alice Example","roles":["admin","user"]}`)
	b.ReportAllocs()
	for b.Loop() {
		var c claims
		if err := json.Unmarshal(data, &c); err != nil {
			b.Fatal(err)
		}
	}
}
