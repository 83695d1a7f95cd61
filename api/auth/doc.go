// Package auth authenticates the callers of Herald's HTTP API and mints the short-lived
// tokens that open a WebSocket.
//
// # Credentials
//
// Authenticate takes the credential from "Authorization: Bearer <x>" or, failing that,
// "X-Api-Key: <x>"; for the WebSocket handshake (ws=true) also from the query parameter
// "token" when neither header is present. The credential is then, in this order:
//
//   - a configured API key: the caller is a service (KindService). The credential is
//     compared with every configured key, always all of them, as SHA-256 digests with
//     crypto/subtle, so neither which key matched nor the key lengths leak through
//     timing. Principal.KeyID names the key by its position ("key-1", "key-2", ...),
//     never by its value.
//   - a ws-token (issuer "herald", audience "ws", HS256 with the ws-token key, see
//     IssueWSToken and "ws-tokens" below): a user, with Principal.WS set. Valid on the WebSocket only; any
//     other endpoint gets 401. It may be used any number of times until it expires.
//     Any token with iss "herald" and aud "ws" is held to these rules, so a user JWT
//     must not use that combination.
//   - a user JWT issued by the host application: HS256 with Config.JWTSecret, or
//     RS256/RS384/RS512, PS256/PS384/PS512, ES256/ES384/ES512 verified against the
//     JWKS. A user JWT is accepted on the WebSocket too.
//
// Every JWT must carry exp; nbf, when present, must have passed; iat, when present,
// must not be in the future; the clock skew allowed for all three is 5 seconds. With
// Config.MaxTTL set, a user JWT whose exp is more than MaxTTL (plus the 5 seconds)
// ahead of now is refused too, so that a leaked token cannot be valid for years.
// Refused are: "alg: none" and any algorithm for which no key is
// configured, a "crit" header, a wrong signature, a wrong audience (checked only when
// Config.Audience is set; a token without aud then fails too), and a sub that is
// missing, empty or longer than 256 bytes. The optional "tid" claim (at most 256 bytes)
// becomes Principal.TenantID. Credentials longer than 16 KiB are refused unparsed.
// Every refusal is a *herald.Error with herald.CodeUnauthorized whose message says what
// was wrong; the underlying cause, if any, is in its Err field for the log.
//
// # Claim names
//
// Claims are read by their exact names. A token whose claims object names a claim
// twice (any claim, registered or not), or holds a name that differs from one Herald
// reads (iss, sub, aud, exp, nbf, iat, jti, tid) only in case under Unicode simple
// folding ("Sub", "EXP", "ſub" with a long s), is refused as malformed, even when its
// signature is good: decoders that fold names, or let the last duplicate win (as
// encoding/json does), would read another user than a decoder that does not, and the
// host application that signed the token may be either. Escapes in names count as
// the characters they stand for ("\u0073ub" is sub).
//
// # JWKS
//
// Config.JWKS is a file path or a URL. A URL must be https, except on a loopback host
// (localhost, 127.0.0.0/8, ::1), where http is allowed (see CheckJWKS); a redirect is
// never followed, whatever the HTTP client, so the JWKS URL must serve the keys
// itself. The JWKS is loaded once by New, which fails if the URL is refused, or the
// JWKS cannot be read, is not a JWKS, or holds no usable key. RSA keys (n, e; at
// least 2048 bits) and EC keys (crv P-256, P-384 or P-521; x, y) whose "use" is empty
// or "sig" are used; other keys (encryption keys, symmetric or OKP keys, weak RSA
// keys) are skipped. A key with an "alg" only verifies tokens of that algorithm.
//
// Keys are cached by kid in an immutable snapshot. A token is verified with the key
// of its kid; a token without kid is verified with the only key of the right type,
// and refused if there are several. The JWKS is fetched again (URL) or re-read (file)
// in two cases, together at most once per 30 seconds whatever the tokens say, so a
// flood of made-up kids cannot make Herald hammer the JWKS endpoint:
//
//   - When no key fits a token (typically a kid that is not in the cache: the host
//     rotated its keys). The request waits for the refresh, then looks again. The
//     first such refresh after New is not delayed.
//   - When a verification finds the cached keys older than Config.JWKSMaxAge
//     (DefaultJWKSMaxAge, 10 minutes, when unset; at least 30 seconds). This refresh
//     runs in the background: the request that noticed, and any that arrive while
//     the fetch is in flight, are verified with the cached keys.
//
// Only one refresh runs at a time. A refresh that fails (unreachable, not a JWKS, no
// usable key) keeps the previous keys, which stay in use, stale or not, until a later
// refresh succeeds; the next attempt is at least 30 seconds later. A key removed from
// the JWKS stops verifying as soon as a refresh succeeds: with a working JWKS, at the
// latest with the first request after JWKSMaxAge has passed since the keys were
// loaded, once that request's background fetch completes. There is no timer, so after
// an idle period that request may be much later; it is still verified with the old
// keys. Fetches time out after 5 seconds and read at most 1 MiB.
//
// # ws-tokens
//
// ws-tokens are signed and verified with the ws-token key: HMAC-SHA256 of the label
// "herald ws-token v1" keyed with Config.WSTokenSecret, or with Config.JWTSecret when
// that is empty. The key is never a configured secret itself, so a ws-token, which
// travels in URLs and may end up in logs, does not verify as an HS256 JWT signed
// with either secret: a host application that verifies its own tokens with the JWT
// secret does not take a ws-token for one of them. Only tokens with the ws-token
// claims are verified with the key, so a JWT signed with it is no user JWT either.
// Every node with the same secrets derives the same key, and so accepts the
// ws-tokens of the others. When both secrets are empty (JWKS only), New generates a
// random key: ws-tokens then verify only on the node that issued them and not after a
// restart, which suits a single node only; a cluster must configure a shared
// Config.WSTokenSecret.
//
// # Concurrency
//
// An Authenticator is safe for concurrent use. Its only mutable state is the JWKS
// cache: an atomic pointer to an immutable key snapshot, swapped by a refresh, and a
// mutex that serializes refreshes and guards the time of the last one. A background
// refresh is a goroutine started by the request that finds the keys stale; it holds
// the mutex, does one fetch (at most 5 seconds) or file read, and ends. An
// Authenticator therefore starts no long-lived goroutine and needs no Close.
package auth
