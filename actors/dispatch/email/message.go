package email

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one email to one recipient.
type Message struct {
	To      string // one address as net/mail parses it: "ada@example.com" or "Ada <ada@example.com>"
	Subject string // UTF-8; encoded (RFC 2047) when it is not plain ASCII
	Text    string // the plain-text body, UTF-8
	HTML    string // optional HTML body, UTF-8: when set the message is multipart/alternative
	// ID, when set, makes the Message-ID "<ID@domain of From>", the same on every
	// attempt, so a receiver can tell a resent message from a new one. It must be
	// letters, digits, '-' and '.' only. Empty: a random Message-ID.
	ID string
}

// Header lines are folded to stay near lineFold bytes; none may be longer than lineMax
// (RFC 5322 section 2.1.1).
const (
	lineFold = 78
	lineMax  = 998
)

// build returns the message as it goes after DATA, and the recipient's address for RCPT.
// Its errors are permanent (the message can never be sent as it is), but for a failure
// of the random source.
func build(from *mail.Address, m Message, now time.Time) ([]byte, string, error) {
	if strings.ContainsAny(m.To, "\r\n") {
		return nil, "", permanent("To contains CR or LF (header injection)")
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, "", permanent("Subject contains CR or LF (header injection)")
	}
	for _, f := range []struct{ name, v string }{{"To", m.To}, {"Subject", m.Subject}, {"Text", m.Text}, {"HTML", m.HTML}} {
		if !utf8.ValidString(f.v) {
			return nil, "", permanent("%s is not valid UTF-8", f.name)
		}
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, "", permanent("To %q is not an email address: %v", m.To, err)
	}
	id, err := messageID(from.Address, m.ID)
	if err != nil {
		return nil, "", err
	}

	var b bytes.Buffer
	hdr := []struct{ name, v string }{
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", id},
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
		{"MIME-Version", "1.0"},
	}
	for _, h := range hdr {
		if err := writeHeader(&b, h.name, h.v); err != nil {
			return nil, "", err
		}
	}
	if m.HTML == "" {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		writeQP(&b, m.Text)
		return b.Bytes(), to.Address, nil
	}

	mw := multipart.NewWriter(&b)
	ct := mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()})
	if err := writeHeader(&b, "Content-Type", ct); err != nil {
		return nil, "", err
	}
	b.WriteString("\r\n")
	for _, p := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil { // a bytes.Buffer does not fail
			return nil, "", retryable(err)
		}
		writeQP(w, p.body)
	}
	if err := mw.Close(); err != nil {
		return nil, "", retryable(err)
	}
	return b.Bytes(), to.Address, nil
}

// writeQP writes s quoted-printable, every line break as CRLF. Its writers are in-memory
// and do not fail.
func writeQP(w io.Writer, s string) {
	qp := quotedprintable.NewWriter(w)
	qp.Write([]byte(s))
	qp.Close()
}

// writeHeader writes "name: value", folded at spaces to keep lines near lineFold bytes.
// A line longer than lineMax (a word without spaces that long) is a permanent error.
func writeHeader(b *bytes.Buffer, name, value string) error {
	line := name + ":"
	for i, word := range strings.Split(value, " ") {
		// Fold before a word (never before an empty one: a folded line must not be
		// blank), then the space that preceded it starts the next line.
		if i > 0 && word != "" && len(line)+1+len(word) > lineFold {
			if len(line) > lineMax {
				return permanent("%s has a word too long for one line", name)
			}
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + word
	}
	if len(line) > lineMax {
		return permanent("%s has a word too long for one line", name)
	}
	b.WriteString(line + "\r\n")
	return nil
}

// messageID returns "<local@domain>", domain being that of the From address and local
// the given one, or random when it is empty.
func messageID(from, local string) (string, error) {
	domain := from[strings.LastIndexByte(from, '@')+1:]
	if local != "" {
		for _, c := range local {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') || len(local) > 128 {
				return "", permanent("message ID %q: only letters, digits, '-' and '.', at most 128 bytes", local)
			}
		}
		return "<" + local + "@" + domain + ">", nil
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", retryable(fmt.Errorf("message id: %w", err))
	}
	return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">", nil
}
