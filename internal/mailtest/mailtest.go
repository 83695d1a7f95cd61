// Package mailtest serves a real SMTP server (go-smtp) on loopback for tests: the
// backend records what arrives, as each test needs. It starts one goroutine per server,
// which ends when the test does.
package mailtest

import (
	"io"
	"log"
	"net"
	"testing"

	"github.com/emersion/go-smtp"
)

// Serve runs an SMTP server for be on 127.0.0.1 until the test ends and returns its
// address. It accepts AUTH over plain text, as a loopback server may.
func Serve(t testing.TB, be smtp.Backend) string {
	t.Helper()
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ln.Addr().String()
}
