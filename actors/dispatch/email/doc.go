// Package email delivers one notification email over SMTP: one message, one recipient,
// one attempt per Send.
//
// It owns building the message (an RFC 5322 message with a UTF-8 text/plain body, or a
// multipart/alternative of text and HTML, both quoted-printable) and one SMTP
// conversation: connect, EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT. It does not
// retry, queue, back off or dead-letter: the caller (the outbox dispatcher) does, guided
// by the *deliver.Error that Send returns.
//
// # Use
//
//	s, err := email.New(email.Options{Addr: "smtp.example.com:587", From: "Herald <noreply@example.com>",
//		Username: "herald", Password: "...", Timeout: 10 * time.Second})
//	if err != nil { ... a configuration error ... }
//	err = s.Send(ctx, email.Message{To: "ada@example.com", Subject: "…", Text: "…", HTML: "…"})
//	var e *deliver.Error
//	switch {
//	case err == nil:                          // the server accepted the message
//	case errors.As(err, &e) && e.Permanent:   // never retry: bad address, 5xx reply
//	default:                                  // retry later: 4xx reply, network error, timeout
//	}
//
// A Sender holds only its configuration: it is safe for concurrent use, and every Send
// opens and closes its own connection.
//
// # Failures
//
// Every error Send returns is a *deliver.Error of Channel "email". Permanent is true
// for a message that can never be sent as it is (a To that net/mail does not parse, CR
// or LF in To or Subject, text that is not UTF-8; these are found before connecting) and
// for an SMTP reply in the 5xx range, whose code is in Code. A 4xx reply, a network
// error, a TLS failure, a timeout (errors.Is(err, deliver.ErrTimeout)) and a cancelled
// context are not permanent. Note that some 5xx replies speak about the server or the
// account rather than the message (535 authentication failed, 554 at the greeting): they
// are permanent all the same, and a dispatcher that sees them for every message is
// looking at a configuration problem.
//
// Once the server has accepted the message (250 after DATA), Send returns nil even if
// QUIT fails. A connection lost between the end of DATA and the server's reply is
// retryable, so a message may, rarely, be delivered twice: SMTP offers no better.
//
// # Security
//
// StartTLS "auto" (the default) upgrades with STARTTLS whenever the server offers it,
// "always" fails (retryably) when it does not, and "never" does not try. The server's
// certificate is verified against Options.TLSConfig, by default the system roots and
// the host of Addr. Username and Password are sent with AUTH PLAIN, and only over TLS or
// to a loopback address (a relay on the same machine): otherwise Send fails before
// sending them, and New refuses StartTLS "never" with a Username for a host that is not
// loopback. Implicit TLS (port 465) is not supported.
//
// # Why net/smtp
//
// The conversation uses the standard library's net/smtp. It is frozen but complete for
// one message to one recipient, it keeps the server's dependencies as they are, and its
// replies carry their SMTP code (*textproto.Error) for the classification above. It has
// no context support, so Send bounds the conversation itself: the connection gets a
// deadline of Options.Timeout (or the context's deadline, if sooner) for the whole
// conversation, and a cancelled context moves that deadline to the past. The tests run a
// real SMTP server from github.com/emersion/go-smtp, which is a test dependency only.
package email
