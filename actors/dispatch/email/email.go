package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// The values of Options.StartTLS.
const (
	StartTLSAuto   = "auto"   // use STARTTLS when the server offers it (the default)
	StartTLSAlways = "always" // fail when the server does not offer STARTTLS
	StartTLSNever  = "never"  // never use STARTTLS
)

// DefaultTimeout bounds one Send when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configures a Sender. Addr and From are required.
type Options struct {
	Addr      string        // host:port of the SMTP server, e.g. "smtp.example.com:587"
	From      string        // the sender, as net/mail parses it: "Herald <noreply@example.com>"
	Username  string        // AUTH PLAIN when set; sent only over TLS or to a loopback address
	Password  string        //
	Timeout   time.Duration // bounds the whole conversation of one Send; 0 means DefaultTimeout
	HelloName string        // the EHLO name; "" means the machine's host name
	StartTLS  string        // StartTLSAuto (""), StartTLSAlways or StartTLSNever
	// TLSConfig verifies the server for STARTTLS. nil means the system's roots; an empty
	// ServerName means the host of Addr.
	TLSConfig *tls.Config
}

// Sender sends messages as configured. It is safe for concurrent use.
type Sender struct {
	addr      string
	host      string
	from      *mail.Address
	username  string
	password  string
	timeout   time.Duration
	helloName string
	startTLS  string
	tls       *tls.Config
}

// OptionError is the error of New: the Options field that is wrong, and why.
type OptionError struct {
	Option string // "Addr", "From", "StartTLS", "Password", "Timeout", "HelloName"
	Err    error
}

func (e *OptionError) Error() string { return "email: " + e.Option + " " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

func optionErr(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// New validates o and returns a Sender. Its errors are *OptionError, naming the option
// that is wrong.
func New(o Options) (*Sender, error) {
	host, port, err := net.SplitHostPort(o.Addr)
	switch {
	case err != nil:
		return nil, optionErr("Addr", "%q must be host:port: %v", o.Addr, err)
	case host == "":
		return nil, optionErr("Addr", "%q has no host", o.Addr)
	case port == "":
		return nil, optionErr("Addr", "%q has no port", o.Addr)
	}
	if strings.ContainsAny(o.From, "\r\n") {
		return nil, optionErr("From", "contains CR or LF")
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, optionErr("From", "%q is not an email address: %v", o.From, err)
	}
	if o.Timeout < 0 {
		return nil, optionErr("Timeout", "%v is negative", o.Timeout)
	}
	s := &Sender{
		addr: o.Addr, host: host, from: from,
		username: o.Username, password: o.Password,
		timeout: o.Timeout, helloName: o.HelloName, startTLS: o.StartTLS,
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	switch s.startTLS {
	case "":
		s.startTLS = StartTLSAuto
	case StartTLSAuto, StartTLSAlways, StartTLSNever:
	default:
		return nil, optionErr("StartTLS", "%q must be %q, %q or %q", o.StartTLS, StartTLSAuto, StartTLSAlways, StartTLSNever)
	}
	if s.username == "" && s.password != "" {
		return nil, optionErr("Password", "is set without Username")
	}
	if s.username != "" && s.startTLS == StartTLSNever && !loopbackHost(host) {
		return nil, optionErr("StartTLS", "%q with a Username would send the password unencrypted to %s", StartTLSNever, host)
	}
	if s.helloName == "" {
		s.helloName, _ = os.Hostname()
		if s.helloName == "" {
			s.helloName = "localhost"
		}
	}
	if strings.ContainsAny(s.helloName, " \t\r\n") {
		return nil, optionErr("HelloName", "%q contains white space", s.helloName)
	}
	if o.TLSConfig != nil {
		s.tls = o.TLSConfig.Clone()
	} else {
		s.tls = &tls.Config{}
	}
	if s.tls.ServerName == "" {
		s.tls.ServerName = host
	}
	return s, nil
}

// Send makes one attempt to deliver m. It returns nil once the server has accepted the
// message, and otherwise a *deliver.Error whose Permanent field says whether to try again.
// The message is checked before connecting. The whole conversation is bounded by
// Options.Timeout and by ctx.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, rcpt, err := build(s.from, m, time.Now())
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return retryable(fmt.Errorf("not sent: %w", context.Cause(ctx)))
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.converse(cctx, rcpt, msg); err != nil {
		return classify(ctx, cctx, s.timeout, err)
	}
	return nil
}

// converse runs one SMTP conversation that delivers msg to rcpt. Its errors name the step.
func (s *Sender) converse(ctx context.Context, rcpt string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	defer conn.Close()
	// net/smtp knows no context: the deadline bounds every read and write, and a
	// cancelled ctx moves it to the past, which fails the one in progress at once.
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(s.helloName); err != nil {
		return err
	}
	// net/smtp sends EHLO with the first command, and Extension hides its error: NOOP
	// is that first command here, so that a failed EHLO is reported as one.
	if err := c.Noop(); err != nil {
		return fmt.Errorf("EHLO %s: %w", s.helloName, err)
	}
	if err := s.secure(c, conn); err != nil {
		return err
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", s.from.Address, err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: sending the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: end of message: %w", err)
	}
	// The server has the message: a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// secure runs EHLO (through Extension), STARTTLS and AUTH as configured.
func (s *Sender) secure(c *smtp.Client, conn net.Conn) error {
	offered, _ := c.Extension("STARTTLS")
	encrypted := false
	switch {
	case s.startTLS == StartTLSNever:
	case offered:
		if err := c.StartTLS(s.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		encrypted = true
	case s.startTLS == StartTLSAlways:
		return fmt.Errorf("STARTTLS: %s does not offer it and StartTLS is %q", s.addr, StartTLSAlways)
	}
	if s.username == "" {
		return nil
	}
	if !encrypted && !loopbackAddr(conn.RemoteAddr()) {
		return fmt.Errorf("AUTH: not sending the password to %s over an unencrypted connection", s.addr)
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return fmt.Errorf("AUTH: %s does not offer AUTH", s.addr)
	}
	plain := false
	for _, m := range strings.Fields(mechs) {
		plain = plain || strings.EqualFold(m, "PLAIN")
	}
	if !plain {
		return fmt.Errorf("AUTH: %s offers %s, not PLAIN", s.addr, mechs)
	}
	if err := c.Auth(plainAuth{s.username, s.password}); err != nil {
		return fmt.Errorf("AUTH PLAIN: %w", err)
	}
	return nil
}

// plainAuth is AUTH PLAIN (RFC 4616). Unlike smtp.PlainAuth, it leaves the decision when
// to send the password to secure, which also accepts any loopback address.
type plainAuth struct{ username, password string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.username + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}

func loopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
