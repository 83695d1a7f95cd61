package auth

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald"
)

// claims are the JWT claims Herald reads: the registered ones and the tenant. They
// are decoded by UnmarshalJSON, by exact name; they are encoded (IssueWSToken,
// SignUserToken) by encoding/json.
type claims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid,omitempty"`
}

// isWSToken reports whether c claims to be a ws-token. Only a claim: the signature is
// checked afterwards, with the ws-token key.
func (c *claims) isWSToken() bool {
	return c.Issuer == wsIssuer && slices.Contains(c.Audience, wsAudience)
}

// claimNames are the names of the claims Herald reads.
var claimNames = [...][]byte{
	[]byte("iss"), []byte("sub"), []byte("aud"), []byte("exp"),
	[]byte("nbf"), []byte("iat"), []byte("jti"), []byte("tid"),
}

const (
	// maxNesting bounds how deeply JSON may nest, the claims object included, as
	// encoding/json bounds it.
	maxNesting = 10000
	// maxQuotedName bounds how much of a claim name an error message quotes.
	maxQuotedName = 64
)

// UnmarshalJSON decodes the claims object data by exact claim name. encoding/json,
// with which golang-jwt decodes claims, matches names case-insensitively under
// Unicode folding and lets the last of duplicate names win, so {"sub":"alice",
// "ſub":"bob"} would be bob. Here a claim name that occurs twice (any name), and a
// name that differs from one Herald reads (iss, sub, aud, exp, nbf, iat, jti, tid)
// only in case under Unicode simple folding ("Sub", "ſub", "EXP"), make the whole
// token malformed. Names and values are otherwise read as encoding/json reads them:
// escapes in names count as their characters, a null leaves a claim unset.
//
// The errors are 401 *herald.Errors whose message says what is wrong; golang-jwt
// wraps them with %w, so errors.As finds them. data need not be valid JSON (it is,
// from encoding/json): anything else is an error.
func (c *claims) UnmarshalJSON(data []byte) error {
	*c = claims{}
	s := scanner{data: data}
	s.space()
	if !s.byte('{') {
		return unauthorized("malformed token: the claims are not a JSON object", nil)
	}
	var seen nameSet
	s.space()
	if !s.byte('}') {
		for {
			s.space()
			start := s.i
			plain, ok := s.string()
			if !ok {
				return malformedClaims()
			}
			name := data[start+1 : s.i-1]
			if !plain {
				var n string
				if err := json.Unmarshal(data[start:s.i], &n); err != nil {
					return unauthorized("malformed token", err)
				}
				name = []byte(n)
			}
			s.space()
			if !s.byte(':') {
				return malformedClaims()
			}
			s.space()
			start = s.i
			if !s.value(1) {
				return malformedClaims()
			}
			if seen.add(name) {
				return unauthorized("token has a duplicate claim "+quoteName(name), nil)
			}
			if err := c.set(name, data[start:s.i]); err != nil {
				return err
			}
			s.space()
			if s.byte('}') {
				break
			}
			if !s.byte(',') {
				return malformedClaims()
			}
		}
	}
	s.space()
	if s.i != len(data) {
		return malformedClaims()
	}
	return nil
}

// malformedClaims is the error of claims that are not valid JSON.
func malformedClaims() error {
	return unauthorized("malformed token: the claims are not valid JSON", nil)
}

// set decodes the claim name with the JSON value raw into c, if it is one Herald
// reads, and refuses a name that differs from one of those only in case.
func (c *claims) set(name, raw []byte) error {
	var ok bool
	switch string(name) {
	case "iss", "sub", "jti", "tid", "aud":
		// Text that encoding/json would replace (invalid UTF-8, a lone surrogate) would
		// make several subs one user: "x\ud800" and "x\udc01" both read "x\ufffd".
		if raw[0] == '"' && !plainString(raw) && !herald.ValidStringText(raw[1:len(raw)-1]) {
			return unauthorized(`malformed token: claim "`+string(name)+`" must be valid UTF-8`, nil)
		}
	}
	switch string(name) {
	case "iss":
		ok = decodeString(raw, &c.Issuer)
	case "sub":
		ok = decodeString(raw, &c.Subject)
	case "jti":
		ok = decodeString(raw, &c.ID)
	case "tid":
		ok = decodeString(raw, &c.TenantID)
	case "aud":
		if !decodeAudience(raw, &c.Audience) {
			return unauthorized(`malformed token: claim "aud" must be a string or an array of strings`, nil)
		}
		return nil
	case "exp":
		ok = decodeDate(raw, &c.ExpiresAt)
	case "nbf":
		ok = decodeDate(raw, &c.NotBefore)
	case "iat":
		ok = decodeDate(raw, &c.IssuedAt)
	default:
		if known := foldsTo(name); known != nil {
			return unauthorized("token claim "+quoteName(name)+` differs from "`+string(known)+`" only in case: claim names are case-sensitive`, nil)
		}
		return nil
	}
	if ok {
		return nil
	}
	switch string(name) {
	case "exp", "nbf", "iat":
		return unauthorized(`malformed token: claim "`+string(name)+`" must be a number (seconds since 1970-01-01 UTC)`, nil)
	default:
		return unauthorized(`malformed token: claim "`+string(name)+`" must be a string`, nil)
	}
}

// foldsTo returns the claim name Herald reads that name equals under Unicode simple
// folding, or nil. name is not itself one of them.
func foldsTo(name []byte) []byte {
	// Each of the three letters of a claim name folds to itself, its other case, or
	// (s) ſ: at most two bytes. The bounds are looser, and cheap.
	if len(name) < 3 || len(name) > 3*utf8.UTFMax {
		return nil
	}
	for _, known := range claimNames {
		if bytes.EqualFold(name, known) {
			return known
		}
	}
	return nil
}

// quoteName quotes a claim name for an error message, shortened if it is long.
func quoteName(name []byte) string {
	return strconv.Quote(herald.Truncate(string(name), maxQuotedName))
}

// decodeString decodes the JSON value raw into *dst as encoding/json does: a string,
// or null for none. It reports false for any other value.
func decodeString(raw []byte, dst *string) bool {
	if plainString(raw) {
		*dst = string(raw[1 : len(raw)-1])
		return true
	}
	return json.Unmarshal(raw, dst) == nil
}

// decodeDate decodes the JSON value raw into *dst as jwt.NumericDate does: a number
// of seconds, or null for none.
func decodeDate(raw []byte, dst **jwt.NumericDate) bool {
	// The common case: an integer small enough for a float64 to hold exactly, which
	// is what NumericDate would make of it.
	if n, ok := smallInt(raw); ok {
		*dst = jwt.NewNumericDate(time.Unix(n, 0))
		return true
	}
	return json.Unmarshal(raw, dst) == nil
}

// decodeAudience decodes the JSON value raw into *dst as jwt.ClaimStrings does: a
// string, an array of strings, or null for none.
func decodeAudience(raw []byte, dst *jwt.ClaimStrings) bool {
	if plainString(raw) {
		*dst = jwt.ClaimStrings{string(raw[1 : len(raw)-1])}
		return true
	}
	// The common case: an array of plain strings.
	if raw[0] == '[' {
		var aud jwt.ClaimStrings
		s := scanner{data: raw, i: 1}
		s.space()
		if s.byte(']') {
			*dst = nil // as ClaimStrings decodes []
			return true
		}
		for {
			s.space()
			start := s.i
			plain, ok := s.string()
			if !ok || !plain {
				break // not only plain strings: the general case below
			}
			aud = append(aud, string(raw[start+1:s.i-1]))
			s.space()
			if s.byte(']') {
				*dst = aud
				return true
			}
			if !s.byte(',') {
				break
			}
		}
	}
	var aud jwt.ClaimStrings
	if err := json.Unmarshal(raw, &aud); err != nil {
		return false
	}
	if aud != nil || raw[0] != 'n' {
		*dst = aud
	}
	return true
}

// plainString reports whether the valid JSON value raw is a string without escapes,
// of valid UTF-8: one whose Go value is its bytes between the quotes.
func plainString(raw []byte) bool {
	if raw[0] != '"' {
		return false
	}
	body := raw[1 : len(raw)-1]
	return bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body)
}

// smallInt returns the valid JSON number raw if it is an integer of at most 15
// digits.
func smallInt(raw []byte) (int64, bool) {
	digits := raw
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 15 {
		return 0, false
	}
	var n int64
	for _, b := range digits {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	if raw[0] == '-' {
		n = -n
	}
	return n, true
}

// nameSet is the set of claim names seen in a claims object. The first few are
// kept in an array, compared one by one; a map takes over beyond, so that many
// claims cost linear time.
type nameSet struct {
	small [16][]byte
	n     int
	big   map[string]struct{}
}

// add adds name to the set and reports whether it was there already.
func (s *nameSet) add(name []byte) (dup bool) {
	if s.big != nil {
		if _, ok := s.big[string(name)]; ok {
			return true
		}
		s.big[string(name)] = struct{}{}
		return false
	}
	for _, n := range s.small[:s.n] {
		if bytes.Equal(n, name) {
			return true
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = name
		s.n++
		return false
	}
	s.big = make(map[string]struct{}, 4*len(s.small))
	for _, n := range s.small {
		s.big[string(n)] = struct{}{}
	}
	s.big[string(name)] = struct{}{}
	return false
}

// scanner reads JSON (RFC 8259) from data at i, checking it as it goes.
type scanner struct {
	data []byte
	i    int
}

// space skips white space.
func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes b if it is next.
func (s *scanner) byte(b byte) bool {
	if s.i < len(s.data) && s.data[s.i] == b {
		s.i++
		return true
	}
	return false
}

// value consumes one JSON value; depth is the number of objects and arrays it is
// in. Objects and arrays nest at most maxNesting deep.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.data) {
		return false
	}
	switch b := s.data[s.i]; b {
	case '"':
		_, ok := s.string()
		return ok
	case '{', '[':
		if depth >= maxNesting {
			return false
		}
		end := byte('}')
		if b == '[' {
			end = ']'
		}
		s.i++
		s.space()
		if s.byte(end) {
			return true
		}
		for {
			s.space()
			if b == '{' {
				if _, ok := s.string(); !ok {
					return false
				}
				s.space()
				if !s.byte(':') {
					return false
				}
				s.space()
			}
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			if s.byte(end) {
				return true
			}
			if !s.byte(',') {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// literal consumes lit.
func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.i >= len(lit) && string(s.data[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// string consumes a string and reports whether it is plain: without escapes and of
// valid UTF-8.
func (s *scanner) string() (plain, ok bool) {
	if !s.byte('"') {
		return false, false
	}
	start, escaped, ascii := s.i, false, true
	for s.i < len(s.data) {
		b := s.data[s.i]
		switch {
		case b == '"':
			plain = !escaped && (ascii || utf8.Valid(s.data[start:s.i]))
			s.i++
			return plain, true
		case b == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.data) {
				return false, false
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.data)-s.i < 5 {
					return false, false
				}
				for _, h := range s.data[s.i+1 : s.i+5] {
					if !isHex(h) {
						return false, false
					}
				}
				s.i += 5
			default:
				return false, false
			}
		case b < 0x20:
			return false, false
		default:
			if b >= utf8.RuneSelf {
				ascii = false
			}
			s.i++
		}
	}
	return false, false
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// number consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.i < len(s.data) && '1' <= s.data[s.i] && s.data[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.byte('.') && !s.digits() {
		return false
	}
	if s.byte('e') || s.byte('E') {
		if !s.byte('+') {
			s.byte('-')
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes one or more digits and reports whether there was one.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
