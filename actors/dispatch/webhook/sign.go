package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a Standard Webhooks delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a secret in the Standard Webhooks form: whsec_ and the key in
// standard base64.
const SecretPrefix = "whsec_"

// Secret lengths ParseSecret accepts, in bytes of key.
const (
	MinSecretBytes    = 24 // the Standard Webhooks minimum, for a whsec_ secret
	MinRawSecretBytes = 32 // a secret given as plain text, which has less entropy per byte
)

// DefaultTolerance is the tolerance Verify uses when it is given none: the Standard
// Webhooks recommendation.
const DefaultTolerance = 5 * time.Minute

// The errors Verify wraps, for errors.Is.
var (
	ErrMissingHeader = errors.New("webhook: missing header")
	ErrTimestamp     = errors.New("webhook: timestamp outside the tolerance")
	ErrSignature     = errors.New("webhook: no valid signature")
)

// Sign returns the webhook-signature value of a message: "v1," and the standard base64
// of HMAC-SHA256(secret, id + "." + Unix seconds of ts + "." + body).
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, ts.Unix(), body))
}

func mac(secret []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// ParseSecret returns the key of a signing secret given as "whsec_<base64>" (the
// Standard Webhooks form; at least MinSecretBytes once decoded) or as a raw string of
// at least MinRawSecretBytes bytes, used as it is.
func ParseSecret(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, SecretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		switch {
		case err != nil:
			return nil, fmt.Errorf("webhook: secret: the part after %s is not standard base64: %v", SecretPrefix, err)
		case len(key) < MinSecretBytes:
			return nil, fmt.Errorf("webhook: secret: %s key is %d bytes, want at least %d", SecretPrefix, len(key), MinSecretBytes)
		}
		return key, nil
	}
	if len(s) < MinRawSecretBytes {
		return nil, fmt.Errorf("webhook: secret: neither %s<base64> nor a raw secret of at least %d bytes (got %d bytes)", SecretPrefix, MinRawSecretBytes, len(s))
	}
	return []byte(s), nil
}

// Verify checks a delivery as a receiver: headers must carry webhook-id,
// webhook-timestamp within tolerance of now (DefaultTolerance when tolerance <= 0), and a
// webhook-signature with at least one v1 signature of body by secret. The header may
// hold several space-separated signatures (during a secret rotation); other versions
// are ignored. Errors wrap ErrMissingHeader, ErrTimestamp or ErrSignature.
func Verify(secret []byte, headers http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: the secret is empty", ErrSignature)
	}
	// Signatures are space-separated in one header; a proxy may have split them.
	id, ts, sigs := headers.Get(HeaderID), headers.Get(HeaderTimestamp), strings.Join(headers.Values(HeaderSignature), " ")
	for _, h := range []struct{ name, v string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sigs}} {
		if h.v == "" {
			return fmt.Errorf("%w %s", ErrMissingHeader, h.name)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrTimestamp, HeaderTimestamp, ts)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	switch at := time.Unix(unix, 0); {
	case now.Sub(at) > tolerance:
		return fmt.Errorf("%w: %s is %v old", ErrTimestamp, HeaderTimestamp, now.Sub(at).Truncate(time.Second))
	case at.Sub(now) > tolerance:
		return fmt.Errorf("%w: %s is %v in the future", ErrTimestamp, HeaderTimestamp, at.Sub(now).Truncate(time.Second))
	}
	want := mac(secret, id, unix, body)
	seen := false
	for _, sig := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(sig, ",")
		if !ok || v != "v1" {
			continue
		}
		seen = true
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	if !seen {
		return fmt.Errorf("%w: %s has no v1 signature", ErrSignature, HeaderSignature)
	}
	return fmt.Errorf("%w: no v1 signature in %s matches the body", ErrSignature, HeaderSignature)
}
