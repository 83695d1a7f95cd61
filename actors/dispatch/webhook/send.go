package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/actors/dispatch/deliver"
)

// DefaultTimeout bounds one Send when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultUserAgent is the User-Agent when Options.UserAgent is empty.
const DefaultUserAgent = "Herald-Webhook/1"

// Limits of one Send.
const (
	MaxResponseBytes = 64 << 10 // of a response body read before the connection is let go
	MaxIDBytes       = 256      // of msgID
	snippetBytes     = 200      // of a response body quoted in an error
)

// Options configures a Sender. Secret is required.
type Options struct {
	Secret  []byte        // the signing key, e.g. from ParseSecret
	Timeout time.Duration // bounds one Send, response body included; 0 means DefaultTimeout
	// Client makes the requests; nil means one with Timeout and the default transport.
	// Send never follows a redirect, whatever the client's CheckRedirect says, and
	// bounds each attempt by Timeout whatever the client's own Timeout.
	Client    *http.Client
	UserAgent string // "" means DefaultUserAgent
}

// Sender signs and sends messages. It is safe for concurrent use.
type Sender struct {
	secret    []byte
	timeout   time.Duration
	client    *http.Client
	userAgent string
}

// New validates o and returns a Sender.
func New(o Options) (*Sender, error) {
	if len(o.Secret) == 0 {
		return nil, errors.New("webhook: Secret is empty")
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("webhook: Timeout %v is negative", o.Timeout)
	}
	if strings.ContainsAny(o.UserAgent, "\r\n") {
		return nil, errors.New("webhook: UserAgent contains CR or LF")
	}
	s := &Sender{secret: bytes.Clone(o.Secret), timeout: o.Timeout, userAgent: o.UserAgent}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.userAgent == "" {
		s.userAgent = DefaultUserAgent
	}
	var c http.Client
	if o.Client != nil {
		c = *o.Client // a copy: the caller's client keeps its own redirect policy
	} else {
		c.Timeout = s.timeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &c
	return s, nil
}

// Send makes one attempt to POST body to rawURL, signed for msgID. It returns nil when
// the endpoint answers 2xx, and otherwise a *deliver.Error whose Permanent field says
// whether to try again. The attempt is bounded by Options.Timeout and by ctx.
func (s *Sender) Send(ctx context.Context, rawURL, msgID string, body []byte) error {
	u, err := checkURL(rawURL)
	if err != nil {
		return permanent(err)
	}
	if err := checkID(msgID); err != nil {
		return permanent(err)
	}
	endpoint := redact(u)
	if err := ctx.Err(); err != nil {
		return retryable(fmt.Errorf("POST %s not sent: %w", endpoint, context.Cause(ctx)))
	}

	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("POST %s: %w", endpoint, err))
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(HeaderID, msgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.secret, msgID, now, body))

	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query included
		}
		switch {
		case ctx.Err() != nil && errors.Is(err, ctx.Err()): // the caller gave up
			return retryable(fmt.Errorf("POST %s: %w", endpoint, err))
		case ctx.Err() != nil:
			return retryable(fmt.Errorf("POST %s: %w (%v)", endpoint, context.Cause(ctx), err))
		case rctx.Err() != nil || isTimeout(err):
			return retryable(fmt.Errorf("POST %s: %w after %v: %w", endpoint, deliver.ErrTimeout, s.timeout, err))
		default:
			return retryable(fmt.Errorf("POST %s: %w", endpoint, err))
		}
	}
	// Read a bounded part of the body, so that the connection can be reused, and keep
	// its start for the error message. A failure to read it changes nothing.
	snippet := make([]byte, snippetBytes)
	lr := io.LimitReader(resp.Body, MaxResponseBytes)
	n, _ := io.ReadFull(lr, snippet)
	snippet = snippet[:n]
	io.Copy(io.Discard, lr)
	resp.Body.Close()

	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	e := &deliver.Error{Channel: channel, Code: code, Permanent: !retryableStatus(code)}
	e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	msg := fmt.Sprintf("POST %s: HTTP %s", endpoint, resp.Status)
	if code >= 300 && code <= 399 {
		if loc := resp.Header.Get("Location"); loc != "" {
			msg += fmt.Sprintf(": redirect to %q not followed", loc)
		} else {
			msg += ": redirect not followed"
		}
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (Retry-After %v)", e.RetryAfter)
	}
	if s := quoteSnippet(snippet); s != "" {
		msg += ": " + s
	}
	e.Err = errors.New(msg)
	return e
}

func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		return nil, fmt.Errorf("endpoint URL does not parse: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("endpoint URL scheme is %q, want http or https", u.Scheme)
	case u.Host == "":
		return nil, errors.New("endpoint URL has no host")
	}
	return u, nil
}

// checkID accepts a non-empty msgID of visible ASCII: it goes in a header and in the
// signed content, where "." separates fields but is harmless in an id.
func checkID(id string) error {
	if id == "" {
		return errors.New("msgID is empty")
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("msgID is %d bytes long, at most %d allowed", len(id), MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("msgID %q has a character other than visible ASCII", id)
		}
	}
	return nil
}

// redact returns u for a log: no user info, query or fragment.
func redact(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// quoteSnippet returns the start of a response body, quoted, "" for an empty one.
func quoteSnippet(b []byte) string {
	cut := len(b) == snippetBytes
	for i := 0; cut && i < utf8.UTFMax-1 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1] // do not end inside a character
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	s := fmt.Sprintf("%q", b)
	if cut {
		s += "…"
	}
	return s
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
