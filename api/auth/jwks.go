package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald"
)

const (
	// refreshInterval is the least time between two JWKS refreshes, and so also the
	// least JWKS max age.
	refreshInterval = 30 * time.Second
	// fetchTimeout bounds one JWKS fetch.
	fetchTimeout = 5 * time.Second
	// maxJWKS bounds the size of a JWKS document.
	maxJWKS = 1 << 20
	// minRSABits is the smallest RSA modulus used; smaller keys are skipped.
	minRSABits = 2048
)

// jwksAlgs are the algorithms verified with JWKS keys.
var jwksAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// keySet is the cached JWKS of one source.
type keySet struct {
	source string // file path or http(s) URL
	client *http.Client
	now    func() time.Time
	maxAge time.Duration // a snapshot at least this old is refreshed; >= refreshInterval

	// keys is the current snapshot. A snapshot is never modified; a refresh swaps in a
	// new one, so readers need no lock.
	keys atomic.Pointer[keys]

	// refreshMu serializes refreshes and guards lastRefresh. It is held for the whole
	// of a refresh, including a background one (see refreshStale), so at most one
	// fetch is in flight. A request that finds no key waits here while another
	// refresh is running, then looks again.
	refreshMu   sync.Mutex
	lastRefresh time.Time // start of the last refresh attempt; zero before the first
}

// keys is an immutable snapshot of a JWKS.
type keys struct {
	byKid  map[string][]jwk // keys with a kid; a kid may name several keys of different types
	all    []jwk            // every key, with or without kid
	loaded time.Time        // start of the load that read these keys
}

// jwk is one usable verification key.
type jwk struct {
	kid string
	alg string // the key's "alg", empty when it does not restrict the algorithm
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// fits reports whether k can verify a token signed with alg.
func (k *jwk) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	}
	return false
}

// newKeySet loads the JWKS of source. maxAge is raised to refreshInterval if lower.
func newKeySet(source string, client *http.Client, now func() time.Time, maxAge time.Duration) (*keySet, error) {
	s := &keySet{source: source, client: client, now: now, maxAge: max(maxAge, refreshInterval)}
	if err := s.reload(now()); err != nil {
		return nil, err
	}
	return s, nil
}

// key returns the key verifying a token with kid and alg. If the cached keys are older
// than maxAge, it starts a refresh in the background and still uses them for this
// token. If they have no key for the token, it refreshes them (at most once per
// refreshInterval), waiting for the refresh, and looks again.
func (s *keySet) key(kid, alg string) (any, error) {
	ks := s.keys.Load()
	if s.now().Sub(ks.loaded) >= s.maxAge {
		s.refreshStale()
	}
	if k, err := ks.find(kid, alg); err == nil {
		return k, nil
	}
	refreshErr := s.refresh()
	k, err := s.keys.Load().find(kid, alg)
	if err == nil {
		return k, nil
	}
	err.Err = refreshErr // why the refresh did not help, for the log
	return nil, err
}

// find returns the key for kid and alg from the snapshot.
func (ks *keys) find(kid, alg string) (any, *herald.Error) {
	if kid != "" {
		for i := range ks.byKid[kid] {
			if k := &ks.byKid[kid][i]; k.fits(alg) {
				return k.key, nil
			}
		}
		return nil, unauthorized("unknown signing key", nil)
	}
	var found any
	n := 0
	for i := range ks.all {
		if k := &ks.all[i]; k.fits(alg) {
			found = k.key
			n++
		}
	}
	switch n {
	case 0:
		return nil, unauthorized("unknown signing key", nil)
	case 1:
		return found, nil
	default:
		return nil, unauthorized("token has no kid and several keys could have signed it", nil)
	}
}

// refresh reloads the keys unless the last refresh started less than refreshInterval
// ago. It returns the error of a failed reload; the previous keys then stay. A refresh
// already running, in the foreground or the background, is waited for first.
func (s *keySet) refresh() error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	now := s.now()
	if !s.refreshDue(now) {
		return nil
	}
	s.lastRefresh = now
	return s.reload(now)
}

// refreshStale starts a background refresh of keys older than maxAge and returns
// without waiting for it. It does nothing while another refresh is running (that one
// replaces the keys, or has just failed) or within refreshInterval of the last attempt,
// so a failing JWKS is retried no more often than a missing kid would retry it, and at
// most one fetch is ever in flight.
//
// The goroutine it starts, from the request that noticed the stale keys, does one
// load and ends: a fetch is bounded by fetchTimeout whatever the HTTP client, a file
// source is read once. It holds refreshMu throughout, taken here before it starts, so
// nothing needs to own or stop it; it outlives the request by at most that one load.
func (s *keySet) refreshStale() {
	if !s.refreshMu.TryLock() {
		return
	}
	now := s.now()
	// Another refresh may have replaced the keys since the caller looked at them.
	if !s.refreshDue(now) || now.Sub(s.keys.Load().loaded) < s.maxAge {
		s.refreshMu.Unlock()
		return
	}
	s.lastRefresh = now
	go func() {
		defer s.refreshMu.Unlock()
		// A failure keeps the previous keys, and lastRefresh puts the next attempt
		// refreshInterval away. No request waits for this one to report its error.
		_ = s.reload(now)
	}()
}

// refreshDue reports whether a refresh may start at now. The caller holds refreshMu.
func (s *keySet) refreshDue(now time.Time) bool {
	return s.lastRefresh.IsZero() || now.Sub(s.lastRefresh) >= refreshInterval
}

// reload loads the JWKS and, if that succeeds, swaps in its keys as loaded at start.
// The caller holds refreshMu, or is newKeySet.
func (s *keySet) reload(start time.Time) error {
	ks, err := s.load()
	if err != nil {
		return err
	}
	ks.loaded = start
	s.keys.Store(ks)
	return nil
}

// load reads and parses the JWKS.
func (s *keySet) load() (*keys, error) {
	data, err := s.read()
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", s.source, err)
	}
	ks, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", s.source, err)
	}
	return ks, nil
}

// isURL reports whether source is fetched over HTTP rather than read from a file.
func isURL(source string) bool {
	return strings.HasPrefix(source, "https://") || strings.HasPrefix(source, "http://")
}

// CheckJWKS checks a JWKS source (Config.JWKS) without loading it: a URL must be
// https, except on a loopback host (localhost, 127.0.0.0/8, ::1), where http is
// allowed. Over plain http anyone on the path could replace the keys. A file path or
// an empty source passes.
func CheckJWKS(source string) error {
	if !isURL(source) {
		return nil
	}
	u, err := url.Parse(source)
	if err != nil {
		return fmt.Errorf("auth: JWKS URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("auth: JWKS URL %q has no host", u.Redacted())
	}
	if u.Scheme == "https" || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("auth: JWKS URL %q must use https (http only for a loopback host: localhost, 127.0.0.0/8, ::1)", u.Redacted())
}

// isLoopback reports whether host, as url.URL.Hostname returns it, is localhost or a
// loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// refuseRedirect is the CheckRedirect of the JWKS client: a JWKS URL must answer
// itself, so that a redirect cannot point the fetch somewhere else (an internal
// address, a plain-http URL).
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("redirect to %s refused: the JWKS URL must serve the JWKS itself", req.URL.Redacted())
}

// read returns the JWKS document, at most maxJWKS bytes.
func (s *keySet) read() ([]byte, error) {
	var body io.Reader
	if isURL(s.source) {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.source, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP status %s", resp.Status)
		}
		body = resp.Body
	} else {
		f, err := os.Open(s.source)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		body = f
	}
	data, err := io.ReadAll(io.LimitReader(body, maxJWKS+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKS {
		return nil, errors.New("larger than 1 MiB")
	}
	return data, nil
}

// jwkJSON is one key of a JWKS document (RFC 7517, RFC 7518 section 6).
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JWKS document. Keys Herald cannot use are skipped; a malformed
// key of a supported type, or no usable key at all, is an error.
func parseJWKS(data []byte) (*keys, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	ks := &keys{byKid: make(map[string][]jwk)}
	for i, raw := range doc.Keys {
		var j jwkJSON
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		k, err := parseJWK(&j)
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
		if k == nil {
			continue
		}
		ks.all = append(ks.all, *k)
		if k.kid != "" {
			ks.byKid[k.kid] = append(ks.byKid[k.kid], *k)
		}
	}
	if len(ks.all) == 0 {
		return nil, errors.New("no usable signing key (RSA of at least 2048 bits, or EC P-256/P-384/P-521)")
	}
	return ks, nil
}

// parseJWK returns the key of j, nil for a key Herald does not use.
func parseJWK(j *jwkJSON) (*jwk, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	if j.Alg != "" && !slices.Contains(jwksAlgs, j.Alg) {
		return nil, nil
	}
	k := &jwk{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		key, err := parseRSA(j)
		if err != nil {
			return nil, err
		}
		if key == nil { // too short
			return nil, nil
		}
		k.key = key
	case "EC":
		curve := curves[j.Crv]
		if curve == nil {
			return nil, nil
		}
		key, err := parseEC(curve, j)
		if err != nil {
			return nil, err
		}
		k.key = key
	default:
		return nil, nil
	}
	if k.alg != "" && !k.fits(k.alg) {
		return nil, fmt.Errorf("alg %s does not match a %s key", k.alg, j.Kty)
	}
	return k, nil
}

// curves are the EC curves Herald verifies with, by JWK crv.
var curves = map[string]elliptic.Curve{
	"P-256": elliptic.P256(),
	"P-384": elliptic.P384(),
	"P-521": elliptic.P521(),
}

// parseRSA returns the RSA key of j, nil for one shorter than minRSABits.
func parseRSA(j *jwkJSON) (*rsa.PublicKey, error) {
	n, err := decodeB64(j.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad n")
	}
	e, err := decodeB64(j.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad e")
	}
	var exp uint64
	for _, b := range e {
		exp = exp<<8 | uint64(b)
	}
	if exp < 3 || exp%2 == 0 || exp > math.MaxInt32 {
		return nil, fmt.Errorf("bad e: %d", exp)
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	if key.N.BitLen() < minRSABits {
		return nil, nil
	}
	return key, nil
}

// parseEC returns the EC key of j on curve.
func parseEC(curve elliptic.Curve, j *jwkJSON) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	x, err := decodeB64(j.X)
	if err != nil || len(x) != size {
		return nil, fmt.Errorf("bad x for %s", j.Crv)
	}
	y, err := decodeB64(j.Y)
	if err != nil || len(y) != size {
		return nil, fmt.Errorf("bad y for %s", j.Crv)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4) // uncompressed
	point = append(point, x...)
	point = append(point, y...)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("bad %s point: %w", j.Crv, err)
	}
	return key, nil
}

// decodeB64 decodes base64url, with or without padding (RFC 7515 says without; some
// publishers pad).
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
