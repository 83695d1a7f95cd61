package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
)

// IssueWSToken mints a ws-token for the user p: an HS256 JWT signed with the ws-token
// key (derived from a secret, see Config.WSTokenSecret), with iss "herald", aud ["ws"], sub, tid (when p has a tenant), iat and exp
// now plus the ws-token lifetime, which it also returns. A ws-token opens any number of
// WebSocket connections until it expires; it is refused everywhere else. Only users get
// one: any other p is a herald.CodeForbidden error.
func (a *Authenticator) IssueWSToken(p Principal) (token string, expiresIn time.Duration, err error) {
	if p.Kind != KindUser || p.UserID == "" {
		return "", 0, herald.Errorf(herald.CodeForbidden, "ws-tokens are issued to users only")
	}
	now := a.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    wsIssuer,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{wsAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(a.wsTTL)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		TenantID: p.TenantID,
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.wsKey)
	if err != nil {
		return "", 0, &herald.Error{Code: herald.CodeInternal, Message: "internal error", Err: err}
	}
	return token, a.wsTTL, nil
}

// SignUserToken returns a user JWT as a host application would issue it: HS256 signed
// with secret, sub userID, tid tenantID when non-empty, iat now and exp now plus ttl.
// It is what "herald token" prints.
func SignUserToken(secret []byte, userID, tenantID string, ttl time.Duration) (string, error) {
	switch {
	case len(secret) == 0:
		return "", errors.New("auth: empty secret")
	case userID == "":
		return "", errors.New("auth: empty user id")
	case len(userID) > maxIDLen || len(tenantID) > maxIDLen:
		return "", errors.New("auth: user or tenant id longer than 256 bytes")
	case ttl <= 0:
		return "", errors.New("auth: token lifetime must be positive")
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   userID,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
		},
		TenantID: tenantID,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
