package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func specKey(t *testing.T) []byte {
	t.Helper()
	key, err := ParseSecret(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestSignSpecVector(t *testing.T) {
	key := specKey(t)

	// The definition, by hand: HMAC-SHA256 keyed with the base64-decoded part of the
	// secret, over "id.timestamp.body", in standard base64 after "v1,".
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(specSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, raw)
	h.Write([]byte(specID + ".1614265330." + specBody))
	byHand := "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
	if byHand != specSignature {
		t.Fatalf("the test's own computation gives %s, the spec says %s", byHand, specSignature)
	}

	if got := Sign(key, specID, time.Unix(specTimestamp, 0), []byte(specBody)); got != specSignature {
		t.Errorf("Sign = %s, want %s", got, specSignature)
	}
	// Only the second counts: the same instant in another zone, or with nanoseconds.
	ts := time.Unix(specTimestamp, 999_999_999).In(time.FixedZone("X", 5*3600))
	if got := Sign(key, specID, ts, []byte(specBody)); got != specSignature {
		t.Errorf("Sign with nanoseconds and a zone = %s, want %s", got, specSignature)
	}
}

func specHeaders(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, sig)
	return h
}

func TestVerify(t *testing.T) {
	key := specKey(t)
	at := time.Unix(specTimestamp, 0)
	other := "v1," + base64.StdEncoding.EncodeToString(make([]byte, 32))

	for _, tc := range []struct {
		name    string
		headers http.Header
		body    string
		now     time.Time
		want    error
	}{
		{"spec example", specHeaders(specSignature), specBody, at, nil},
		{"4 minutes later", specHeaders(specSignature), specBody, at.Add(4 * time.Minute), nil},
		{"among others (rotation)", specHeaders(other + " v1a,xyz " + specSignature), specBody, at, nil},
		{"body changed", specHeaders(specSignature), `{"test": 2432232315}`, at, ErrSignature},
		{"wrong signature", specHeaders(other), specBody, at, ErrSignature},
		{"not base64", specHeaders("v1,***"), specBody, at, ErrSignature},
		{"no v1", specHeaders("v1a," + strings.TrimPrefix(specSignature, "v1,")), specBody, at, ErrSignature},
		{"too old", specHeaders(specSignature), specBody, at.Add(6 * time.Minute), ErrTimestamp},
		{"from the future", specHeaders(specSignature), specBody, at.Add(-6 * time.Minute), ErrTimestamp},
		{"missing id", func() http.Header { h := specHeaders(specSignature); h.Del(HeaderID); return h }(), specBody, at, ErrMissingHeader},
		{"missing signature", func() http.Header { h := specHeaders(specSignature); h.Del(HeaderSignature); return h }(), specBody, at, ErrMissingHeader},
		{"bad timestamp", func() http.Header { h := specHeaders(specSignature); h.Set(HeaderTimestamp, "yesterday"); return h }(), specBody, at, ErrTimestamp},
		{"signatures in two header lines", func() http.Header { h := specHeaders(other); h.Add(HeaderSignature, specSignature); return h }(), specBody, at, nil},
		{"id changed", func() http.Header { h := specHeaders(specSignature); h.Set(HeaderID, "msg_other"); return h }(), specBody, at, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(key, tc.headers, []byte(tc.body), tc.now, 0)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	if err := Verify(nil, specHeaders(specSignature), []byte(specBody), at, 0); !errors.Is(err, ErrSignature) {
		t.Errorf("with no secret: %v", err)
	}
	// A tolerance of its own.
	if err := Verify(key, specHeaders(specSignature), []byte(specBody), at.Add(time.Hour), 2*time.Hour); err != nil {
		t.Errorf("within a 2h tolerance: %v", err)
	}
	if err := Verify(key, specHeaders(specSignature), []byte(specBody), at.Add(2*time.Second), time.Second); !errors.Is(err, ErrTimestamp) {
		t.Errorf("outside a 1s tolerance: %v", err)
	}
	// Header names are case-insensitive, as HTTP says.
	h := http.Header{}
	h["webhook-id"] = []string{specID}
	h["WEBHOOK-TIMESTAMP"] = []string{"1614265330"}
	h["Webhook-Signature"] = []string{specSignature}
	if err := Verify(key, normalise(h), []byte(specBody), at, 0); err != nil {
		t.Errorf("with other header cases: %v", err)
	}
}

// normalise canonicalises header keys, as net/http does for a received request.
func normalise(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		for _, s := range v {
			out.Add(k, s)
		}
	}
	return out
}

func TestParseSecret(t *testing.T) {
	long := strings.Repeat("k", 32)
	for _, tc := range []struct {
		in      string
		wantLen int
		wantErr string
	}{
		{specSecret, 24, ""},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)), 64, ""},
		{long, 32, ""},
		{"whsec_not*base64", 0, "not standard base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), 0, "16 bytes, want at least 24"},
		{"whsec_", 0, "0 bytes"},
		{"short", 0, "at least 32 bytes (got 5 bytes)"},
		{"", 0, "got 0 bytes"},
		// A raw secret that looks like whsec_ but is not base64 is not silently taken raw.
		{"whsec_" + long + "!", 0, "not standard base64"},
	} {
		key, err := ParseSecret(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseSecret(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || len(key) != tc.wantLen):
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d bytes", tc.in, len(key), err, tc.wantLen)
		}
	}
	if key, _ := ParseSecret(long); string(key) != long {
		t.Errorf("a raw secret is not used as it is: %q", key)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"9999999999999999999", maxRetryAfter, true},
		{"99999999999999999999", 0, false}, // beyond uint64: not a number it can read
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
