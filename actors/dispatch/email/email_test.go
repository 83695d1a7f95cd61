package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/heraldhq/herald/actors/dispatch/deliver"
)

func newSender(t *testing.T, o Options) *Sender {
	t.Helper()
	if o.From == "" {
		o.From = "Herald <noreply@example.com>"
	}
	if o.HelloName == "" {
		o.HelloName = "herald.test"
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// only returns the one message the backend received.
func only(t *testing.T, be *backend) received {
	t.Helper()
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// asError returns err as a *deliver.Error of this channel, failing the test when it is
// not one.
func asError(t *testing.T, err error) *deliver.Error {
	t.Helper()
	var e *deliver.Error
	if !errors.As(err, &e) || e.Channel != "email" || !strings.HasPrefix(err.Error(), "email: ") {
		t.Fatalf("error %v (%T) is not a *deliver.Error of channel email", err, err)
	}
	return e
}

func decodeHeader(t *testing.T, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("decoding header %q: %v", v, err)
	}
	return s
}

// lf turns CRLF into LF, so bodies compare whatever line breaks went on the wire.
func lf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func TestSendPlainText(t *testing.T) {
	be := &backend{}
	addr, _ := startServer(t, be, nil)
	s := newSender(t, Options{Addr: addr})

	subject := "Zoë commented on “Größenwahn” — 日本語 too"
	text := "Hello Zoë,\n\n" +
		".a line that starts with a dot\n" +
		"a line with = and trailing space \n" +
		strings.Repeat("long line ", 20) + "\n" +
		"the end"
	err := s.Send(context.Background(), Message{To: "Zoë Example <zoe@example.org>", Subject: subject, Text: text})
	if err != nil {
		t.Fatal(err)
	}

	got := only(t, be)
	if got.from != "noreply@example.com" || len(got.to) != 1 || got.to[0] != "zoe@example.org" {
		t.Errorf("envelope = %q → %q, want noreply@example.com → [zoe@example.org]", got.from, got.to)
	}
	for i, line := range strings.Split(string(got.data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes long", i, len(line))
		}
		if strings.ContainsRune(line, '\n') || strings.ContainsRune(line, '\r') {
			t.Errorf("line %d has a bare CR or LF: %q", i, line)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatalf("parsing the message: %v\n%s", err, got.data)
	}
	h := m.Header
	if d, err := h.Date(); err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("Date %q: %v, %v", h.Get("Date"), d, err)
	}
	if id := h.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID = %q, want <random@example.com>", id)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "Herald" || from[0].Address != "noreply@example.com" {
		t.Errorf("From = %q: %v, %v", h.Get("From"), from, err)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Name != "Zoë Example" || to[0].Address != "zoe@example.org" {
		t.Errorf("To = %q: %v, %v", h.Get("To"), to, err)
	}
	if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("Subject %q is not Q-encoded", raw)
	}
	if got := decodeHeader(t, h.Get("Subject")); got != subject {
		t.Errorf("Subject = %q, want %q", got, subject)
	}
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	if ct, params, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || ct != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	if v := h.Get("Content-Transfer-Encoding"); v != "quoted-printable" {
		t.Errorf("Content-Transfer-Encoding = %q", v)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	if lf(string(body)) != text+"\n" {
		t.Errorf("body = %q, want %q", body, text+"\n")
	}
}

func TestSendASCIISubjectUnencoded(t *testing.T) {
	be := &backend{}
	addr, _ := startServer(t, be, nil)
	s := newSender(t, Options{Addr: addr})
	subject := "Your weekly digest:" + strings.Repeat(" words that go on", 10)
	if err := s.Send(context.Background(), Message{To: "ada@example.org", Subject: subject, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	data := only(t, be).data
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// The long subject was folded; unfolding gives it back.
	if got := m.Header.Get("Subject"); got != subject {
		t.Errorf("Subject = %q, want %q", got, subject)
	}
	head, _, _ := strings.Cut(string(data), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if len(line) > 78 {
			t.Errorf("header line is %d bytes long: %q", len(line), line)
		}
	}
}

func TestSendHTML(t *testing.T) {
	be := &backend{}
	addr, _ := startServer(t, be, nil)
	s := newSender(t, Options{Addr: addr})
	text := "Ada invited you to “Herald”.\nOpen https://example.org/x?a=1&b=2"
	html := `<p>Ada invited you to <b>“Herald”</b>.</p>` + "\n" + `<p><a href="https://example.org/x?a=1&amp;b=2">Open</a></p>`
	if err := s.Send(context.Background(), Message{To: "ada@example.org", Subject: "Invitation", Text: text, HTML: html}); err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(only(t, be).data))
	if err != nil {
		t.Fatal(err)
	}
	ct, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for i, want := range []struct{ typ, body string }{{"text/plain", text}, {"text/html", html}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if ct, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct != want.typ || params["charset"] != "utf-8" {
			t.Errorf("part %d: Content-Type = %q, want %s; charset=utf-8", i, p.Header.Get("Content-Type"), want.typ)
		}
		// multipart.Reader decodes quoted-printable itself.
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if lf(string(body)) != want.body {
			t.Errorf("part %d body = %q, want %q", i, body, want.body)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after two parts: %v, want io.EOF", err)
	}
}

func TestSendRefused(t *testing.T) {
	for _, tc := range []struct {
		step      string
		code      int
		permanent bool
	}{
		{"RCPT", 550, true},
		{"MAIL", 553, true},
		{"DATA", 554, true},
		{"RCPT", 450, false},
		{"DATA", 451, false},
		{"MAIL", 421, false},
	} {
		t.Run(tc.step+"-"+string(rune('0'+tc.code/100))+"xx", func(t *testing.T) {
			be := &backend{}
			be.refuseAt(tc.step, tc.code, "refused by the test")
			addr, _ := startServer(t, be, nil)
			s := newSender(t, Options{Addr: addr})
			err := s.Send(context.Background(), Message{To: "ada@example.org", Subject: "x", Text: "y"})
			e := asError(t, err)
			if e.Permanent != tc.permanent || e.Code != tc.code {
				t.Errorf("Permanent, Code = %v, %d; want %v, %d (%v)", e.Permanent, e.Code, tc.permanent, tc.code, err)
			}
			if !strings.Contains(err.Error(), tc.step) || !strings.Contains(err.Error(), "refused by the test") {
				t.Errorf("error %q does not name the step and the server's reply", err)
			}
			if n := len(be.messages()); n != 0 {
				t.Errorf("server kept %d messages", n)
			}
		})
	}
}

func TestSendTimeout(t *testing.T) {
	addr, _ := hangingServer(t)
	const timeout = 200 * time.Millisecond
	s := newSender(t, Options{Addr: addr, Timeout: timeout})
	start := time.Now()
	err := s.Send(context.Background(), Message{To: "ada@example.org", Subject: "x", Text: "y"})
	elapsed := time.Since(start)
	e := asError(t, err)
	if e.Permanent || e.Code != 0 || !errors.Is(err, deliver.ErrTimeout) {
		t.Errorf("got %v (Permanent %v, Code %d), want a retryable timeout", err, e.Permanent, e.Code)
	}
	if elapsed < timeout || elapsed > timeout+5*time.Second {
		t.Errorf("Send took %v with a Timeout of %v", elapsed, timeout)
	}
}

func TestSendCancelled(t *testing.T) {
	addr, accepted := hangingServer(t)
	s := newSender(t, Options{Addr: addr, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-accepted
		cancel()
	}()
	err := s.Send(ctx, Message{To: "ada@example.org", Subject: "x", Text: "y"})
	e := asError(t, err)
	if e.Permanent || !errors.Is(err, context.Canceled) || errors.Is(err, deliver.ErrTimeout) {
		t.Errorf("got %v (Permanent %v), want a retryable context.Canceled", err, e.Permanent)
	}

	// A context that is done already: nothing is attempted.
	err = s.Send(ctx, Message{To: "ada@example.org", Subject: "x", Text: "y"})
	if e := asError(t, err); e.Permanent || !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: %v", err)
	}
}

func TestSendConnectionRefused(t *testing.T) {
	// A port that was just free: nobody listens there any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newSender(t, Options{Addr: addr})
	err = s.Send(context.Background(), Message{To: "ada@example.org", Subject: "x", Text: "y"})
	if e := asError(t, err); e.Permanent || e.Code != 0 || !strings.Contains(err.Error(), "connect to") {
		t.Errorf("got %v, want a retryable connection error", err)
	}
}

func TestSendRefusesBadMessageBeforeConnecting(t *testing.T) {
	be := &backend{}
	addr, l := startServer(t, be, nil)
	s := newSender(t, Options{Addr: addr})
	for _, tc := range []struct {
		name string
		m    Message
		want string
	}{
		{"CRLF in To", Message{To: "ada@example.org\r\nBcc: eve@example.org", Subject: "x"}, "To contains CR or LF"},
		{"LF in To", Message{To: "ada@example.org\nBcc: eve@example.org", Subject: "x"}, "To contains CR or LF"},
		{"CRLF in Subject", Message{To: "ada@example.org", Subject: "hi\r\nBcc: eve@example.org"}, "Subject contains CR or LF"},
		{"CR in Subject", Message{To: "ada@example.org", Subject: "hi\rBcc: eve@example.org"}, "Subject contains CR or LF"},
		{"To not an address", Message{To: "ada at example.org", Subject: "x"}, "not an email address"},
		{"two recipients", Message{To: "ada@example.org, eve@example.org", Subject: "x"}, "not an email address"},
		{"empty To", Message{Subject: "x"}, "not an email address"},
		{"Text not UTF-8", Message{To: "ada@example.org", Subject: "x", Text: "\xff"}, "Text is not valid UTF-8"},
		{"Subject not UTF-8", Message{To: "ada@example.org", Subject: "\xc3"}, "Subject is not valid UTF-8"},
		{"Subject word too long", Message{To: "ada@example.org", Subject: strings.Repeat("x", 1000)}, "Subject has a word too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Send(context.Background(), tc.m)
			e := asError(t, err)
			if !e.Permanent || e.Code != 0 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v (Permanent %v), want a permanent error containing %q", err, e.Permanent, tc.want)
			}
		})
	}
	if n := l.n.Load(); n != 0 {
		t.Errorf("the server accepted %d connections, want none", n)
	}
}

func TestStartTLS(t *testing.T) {
	cert, pool := testCert(t)
	withTLS := func(srv *smtp.Server) { srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} }
	trusted := &tls.Config{RootCAs: pool}
	msg := Message{To: "ada@example.org", Subject: "x", Text: "y"}

	for _, tc := range []struct {
		name      string
		serverTLS bool
		mode      string
		tls       *tls.Config
		wantTLS   bool
		wantErr   string
	}{
		{"auto, offered", true, StartTLSAuto, trusted, true, ""},
		{"default, offered", true, "", trusted, true, ""},
		{"auto, not offered", false, StartTLSAuto, trusted, false, ""},
		{"never, offered", true, StartTLSNever, trusted, false, ""},
		{"always, offered", true, StartTLSAlways, trusted, true, ""},
		{"always, not offered", false, StartTLSAlways, trusted, false, "does not offer it"},
		{"auto, untrusted certificate", true, StartTLSAuto, nil, false, "STARTTLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &backend{}
			var configure func(*smtp.Server)
			if tc.serverTLS {
				configure = withTLS
			}
			addr, _ := startServer(t, be, configure)
			s := newSender(t, Options{Addr: addr, StartTLS: tc.mode, TLSConfig: tc.tls})
			err := s.Send(context.Background(), msg)
			if tc.wantErr != "" {
				if e := asError(t, err); e.Permanent || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want a retryable error containing %q", err, tc.wantErr)
				}
				if n := len(be.messages()); n != 0 {
					t.Errorf("server received %d messages", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := only(t, be).tls; got != tc.wantTLS {
				t.Errorf("message came over TLS: %v, want %v", got, tc.wantTLS)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	cert, pool := testCert(t)
	withTLS := func(srv *smtp.Server) { srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} }
	msg := Message{To: "ada@example.org", Subject: "x", Text: "y"}

	t.Run("over TLS", func(t *testing.T) {
		be := &backend{password: "s3cret"}
		addr, _ := startServer(t, be, withTLS)
		s := newSender(t, Options{Addr: addr, Username: "herald", Password: "s3cret", TLSConfig: &tls.Config{RootCAs: pool}})
		if err := s.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if got := only(t, be); got.user != "herald" || !got.tls {
			t.Errorf("user %q, TLS %v; want herald over TLS", got.user, got.tls)
		}
	})

	t.Run("plain text to loopback", func(t *testing.T) {
		be := &backend{password: "s3cret"}
		addr, _ := startServer(t, be, func(srv *smtp.Server) { srv.AllowInsecureAuth = true })
		s := newSender(t, Options{Addr: addr, Username: "herald", Password: "s3cret", StartTLS: StartTLSNever})
		if err := s.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		if got := only(t, be); got.user != "herald" || got.tls {
			t.Errorf("user %q, TLS %v; want herald without TLS", got.user, got.tls)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		be := &backend{password: "s3cret"}
		addr, _ := startServer(t, be, withTLS)
		s := newSender(t, Options{Addr: addr, Username: "herald", Password: "wrong", TLSConfig: &tls.Config{RootCAs: pool}})
		err := s.Send(context.Background(), msg)
		if e := asError(t, err); !e.Permanent || e.Code != 535 || !strings.Contains(err.Error(), "AUTH PLAIN") {
			t.Errorf("got %v, want a permanent 535 from AUTH PLAIN", err)
		}
	})

	t.Run("AUTH not offered", func(t *testing.T) {
		be := &backend{}
		addr, _ := startServer(t, be, withTLS)
		s := newSender(t, Options{Addr: addr, Username: "herald", Password: "s3cret", TLSConfig: &tls.Config{RootCAs: pool}})
		err := s.Send(context.Background(), msg)
		if e := asError(t, err); e.Permanent || !strings.Contains(err.Error(), "does not offer AUTH") {
			t.Errorf("got %v, want a retryable error saying AUTH is not offered", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	ok := Options{Addr: "smtp.example.com:587", From: "noreply@example.com"}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no port", func(o *Options) { o.Addr = "smtp.example.com" }, "Addr"},
		{"empty port", func(o *Options) { o.Addr = "smtp.example.com:" }, "has no port"},
		{"no host", func(o *Options) { o.Addr = ":25" }, "has no host"},
		{"From missing", func(o *Options) { o.From = "" }, "From"},
		{"From not an address", func(o *Options) { o.From = "Herald" }, "From"},
		{"From with CRLF", func(o *Options) { o.From = "a@example.com\r\nBcc: b@example.com" }, "From contains CR or LF"},
		{"StartTLS unknown", func(o *Options) { o.StartTLS = "sometimes" }, "StartTLS"},
		{"negative Timeout", func(o *Options) { o.Timeout = -time.Second }, "Timeout"},
		{"Password without Username", func(o *Options) { o.Password = "x" }, "Username"},
		{"password in the clear", func(o *Options) { o.Username, o.StartTLS = "u", StartTLSNever }, "unencrypted"},
		{"HelloName with space", func(o *Options) { o.HelloName = "a b" }, "HelloName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, o := range []Options{
		ok,
		{Addr: "127.0.0.1:25", From: "a@example.com", Username: "u", StartTLS: StartTLSNever},
		{Addr: "localhost:25", From: "a@example.com", Username: "u", StartTLS: StartTLSNever},
		{Addr: "[::1]:25", From: "a@example.com", Username: "u", StartTLS: StartTLSNever},
		{Addr: "smtp.example.com:submission", From: "a@example.com"},
	} {
		if _, err := New(o); err != nil {
			t.Errorf("New(%+v): %v", o, err)
		}
	}
}

// TestStableMessageID: a message sent with an ID has the same Message-ID every time it
// is sent, so the receiver can drop a resent one; a malformed ID is refused before
// connecting.
func TestStableMessageID(t *testing.T) {
	be := &backend{}
	addr, _ := startServer(t, be, nil)
	s := newSender(t, Options{Addr: addr})
	msg := Message{To: "ada@example.org", Subject: "s", Text: "t", ID: "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b"}
	for range 2 {
		if err := s.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	be.mu.Lock()
	msgs := slices.Clone(be.msgs)
	be.mu.Unlock()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	for _, got := range msgs {
		m, err := mail.ReadMessage(bytes.NewReader(got.data))
		if err != nil {
			t.Fatal(err)
		}
		if id := m.Header.Get("Message-ID"); id != "<0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b@example.com>" {
			t.Fatalf("Message-ID = %q", id)
		}
	}
	msg.ID = "bad id>"
	var e *deliver.Error
	if err := s.Send(context.Background(), msg); !errors.As(err, &e) || !e.Permanent {
		t.Fatalf("malformed ID: %v, want a permanent error", err)
	}
}
