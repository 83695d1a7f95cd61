// Package webhook delivers one notification to one HTTP endpoint, signed the Standard
// Webhooks way (https://www.standardwebhooks.com), and verifies such deliveries.
//
// It owns the signature (Sign, Verify, ParseSecret) and one POST (Sender.Send). It does
// not retry, queue, back off or dead-letter: the caller (the outbox dispatcher) does,
// guided by the *deliver.Error that Send returns.
//
// # Sending
//
//	secret, err := webhook.ParseSecret("whsec_...") // or a raw secret of at least 32 bytes
//	s, err := webhook.New(webhook.Options{Secret: secret, Timeout: 10 * time.Second})
//	err = s.Send(ctx, endpointURL, deliveryID, jsonBody) // the webhook-id: the same on every attempt
//	var e *deliver.Error
//	switch {
//	case err == nil:                          // the endpoint answered 2xx
//	case errors.As(err, &e) && e.Permanent:   // never retry: 4xx, a redirect, a bad URL
//	default:                                  // retry, not before e.RetryAfter when it is set
//	}
//
// Send POSTs body as it is, with Content-Type application/json and three headers:
//
//	webhook-id         msgID; the same for every attempt of one message, so that the
//	                   receiver can drop duplicates
//	webhook-timestamp  the attempt's time, in Unix seconds
//	webhook-signature  v1,<base64 of HMAC-SHA256(secret, id + "." + timestamp + "." + body)>
//
// A Sender is safe for concurrent use. Each Sender has one secret: for a secret per
// endpoint, make a Sender per secret and give them one http.Client in Options.Client,
// so that they share its connections.
//
// # Failures
//
// Any 2xx is success; the response body is read (at most 64 KiB) and dropped. Every
// error is a *deliver.Error of Channel "webhook":
//
//	408, 425, 429, 5xx                 retryable; Code is the status, and RetryAfter is set
//	                                   when the response had a Retry-After (seconds or
//	                                   HTTP date)
//	other 4xx                          permanent
//	3xx                                permanent: redirects are never followed, and the
//	                                   error names the Location
//	timeout (errors.Is(err, deliver.ErrTimeout)),
//	connection or TLS error,
//	cancelled context                  retryable, Code 0
//	bad URL or msgID                   permanent, found before sending
//
// Error messages name the endpoint without its query, which may hold a token, and quote
// the start of the response body.
//
// Send makes a request to any URL it is given, loopback and private addresses included:
// which endpoints are allowed is the caller's decision (pass an Options.Client whose
// dialer refuses private addresses, if endpoints come from untrusted users).
//
// # Receiving
//
// A receiver written in Go checks a delivery with Verify:
//
//	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//	if err != nil { ... 400 ... }
//	if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
//		... 400 or 401: errors.Is(err, webhook.ErrSignature) or webhook.ErrTimestamp ...
//	}
//	... dedupe on r.Header.Get("webhook-id"), then act on body ...
//
// A Sender starts no goroutine; an attempt in flight ends with its context or its timeout.
package webhook
