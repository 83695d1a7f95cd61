package auth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkAuthenticate measures one verification of each kind of token the API
// sees on every request: a user JWT (HS256, with a tenant) and a ws-token.
func BenchmarkAuthenticate(b *testing.B) {
	now := time.Now()
	a := newAuth(b, Config{JWTSecret: secret})
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
	}{{"user-jwt", user, false}, {"ws-token", ws, true}} {
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
