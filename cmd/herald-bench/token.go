package main

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// userID is the id of the i-th user of run. Each run has users of its own, so each
// starts at seq 0 whatever earlier runs left in the store.
func userID(run string, i int) string { return "bench-" + run + "-" + strconv.Itoa(i) }

// newRunID returns a short random run id.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}

// mintToken returns a user JWT as the contract describes it: HS256, sub = user, exp.
func mintToken(secret []byte, user string, ttl time.Duration) (string, error) {
	now := time.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString(secret)
}
