package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawClient posts over plain HTTP/1.1 keep-alive connections with none of net/http's
// client machinery: each request is one write and its answer is read on the caller's
// goroutine. net/http's transport runs two goroutines per connection and hands every
// request and answer between them and the caller, which cost the bench about as much
// CPU per create as the server's own HTTP handling; on a machine the bench shares with
// the server, that is CPU the server does not get. The workload is unchanged: one
// request at a time per connection, each waiting for its answer.
//
// It speaks just what herald's answers need: a status line, headers, and a body of
// Content-Length bytes or chunked. A connection that fails, or whose answer says
// Connection: close, is closed; nothing is retried (a POST may have been applied).
type rawClient struct {
	addr string // host:port
	head []byte // "Host: …\r\nAuthorization: …\r\nContent-Type: application/json\r\n"
	idle chan *rawConn
}

type rawConn struct {
	c    net.Conn
	r    *bufio.Reader
	out  []byte    // the request being written
	used time.Time // when its last answer was read
}

// rawIdleMax is how long a connection may sit idle before it is dialled anew rather than
// reused: well within the server's idle timeout (60 s by default), so that a request
// never goes out on a connection the server is closing.
const rawIdleMax = 5 * time.Second

// newRawClient returns a client for base (http://host:port) or nil when base is not
// plain HTTP.
func newRawClient(base, auth string, conns int) *rawClient {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil
	}
	host := dialAddr(u)
	head := "Host: " + u.Host + "\r\nAuthorization: " + auth + "\r\nContent-Type: application/json\r\n"
	return &rawClient{addr: host, head: []byte(head), idle: make(chan *rawConn, max(conns, 1))}
}

// dialAddr is the host:port a plain http:// or ws:// URL is dialled at (port 80 when it
// names none).
func dialAddr(u *url.URL) string {
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "80")
	}
	return u.Host
}

// postRead is rest.postRead over a raw connection.
func (rc *rawClient) postRead(ctx context.Context, path string, body, buf []byte) (status int, retry time.Duration, answer []byte, err error) {
	answer = buf
	c, err := rc.get(ctx)
	if err != nil {
		return 0, 0, answer, err
	}
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetDeadline(time.Unix(1, 0)) })
	status, retry, answer, keep, err := rc.exchange(c, path, body, answer)
	if !stop() || ctx.Err() != nil {
		keep = false
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if !keep {
		_ = c.c.Close()
	} else {
		c.used = time.Now()
		select {
		case rc.idle <- c:
		default:
			_ = c.c.Close()
		}
	}
	return status, retry, answer, err
}

// get returns an idle connection that has not sat too long, or a new one.
func (rc *rawClient) get(ctx context.Context) (*rawConn, error) {
	for {
		var c *rawConn
		select {
		case c = <-rc.idle:
		default:
			return rc.dial(ctx)
		}
		if time.Since(c.used) < rawIdleMax {
			return c, nil
		}
		_ = c.c.Close()
	}
}

// dial opens a new connection.
func (rc *rawClient) dial(ctx context.Context) (*rawConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", rc.addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: conn, r: bufio.NewReaderSize(conn, 4<<10)}, nil
}

// exchange writes one request and reads its answer. keep reports that the connection
// may carry the next request.
func (rc *rawClient) exchange(c *rawConn, path string, body, buf []byte) (status int, retry time.Duration, answer []byte, keep bool, err error) {
	answer = buf
	out := append(c.out[:0], "POST "...)
	out = append(out, path...)
	out = append(out, " HTTP/1.1\r\n"...)
	out = append(out, rc.head...)
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, body...)
	c.out = out
	if _, err := c.c.Write(out); err != nil {
		return 0, 0, answer, false, err
	}
	h, err := readHead(c.r)
	if err != nil {
		return 0, 0, answer, false, err
	}
	keep = !h.close
	var sink []byte // where the body goes: the answer, the error's start, or nowhere
	limit := 0
	switch {
	case h.status/100 != 2:
		limit = errorBodyLimit
	case buf != nil:
		sink, limit = buf[:0], answerLimit
	}
	sink, err = readBody(c.r, h, sink, limit)
	if err != nil {
		return h.status, 0, answer, false, err
	}
	switch {
	case h.status/100 != 2:
		err = &httpError{h.status, string(bytes.TrimSpace(sink))}
	case buf != nil:
		answer = sink
	}
	if h.status == 429 && h.retryAfter > 0 {
		retry = time.Duration(h.retryAfter) * time.Second
	}
	return h.status, retry, answer, keep, err
}

// rawHead is what an answer's head says.
type rawHead struct {
	status     int
	length     int64 // Content-Length; -1: none
	chunked    bool
	close      bool // Connection: close, or HTTP/1.0
	retryAfter int  // seconds; 0: none
}

var errBadAnswer = errors.New("malformed HTTP answer")

// readHead reads the status line and the headers.
func readHead(r *bufio.Reader) (rawHead, error) {
	h := rawHead{length: -1}
	line, err := readLine(r)
	if err != nil {
		return h, err
	}
	// HTTP/1.1 201 Created
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return h, fmt.Errorf("%w: status line %q", errBadAnswer, line)
	}
	h.close = line[7] == '0'
	if h.status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return h, fmt.Errorf("%w: status line %q", errBadAnswer, line)
	}
	for {
		line, err := readLine(r)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return h, fmt.Errorf("%w: header %q", errBadAnswer, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if h.length, err = strconv.ParseInt(string(value), 10, 64); err != nil || h.length < 0 {
				return h, fmt.Errorf("%w: Content-Length %q", errBadAnswer, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = h.close || bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Retry-After")):
			h.retryAfter, _ = strconv.Atoi(string(value))
		}
	}
}

// readLine reads one CRLF-terminated line, without it.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: a line longer than %d bytes", errBadAnswer, r.Size())
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// readBody reads the answer's body, appending at most limit bytes of it to sink and
// discarding the rest. An answer with neither a length nor chunks has no body here:
// herald always sends one of the two (an answer delimited by the connection's end is
// refused).
func readBody(r *bufio.Reader, h rawHead, sink []byte, limit int) ([]byte, error) {
	switch {
	case h.chunked:
		for {
			line, err := readLine(r)
			if err != nil {
				return sink, err
			}
			if i := bytes.IndexByte(line, ';'); i >= 0 {
				line = line[:i]
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil || n < 0 {
				return sink, fmt.Errorf("%w: chunk size %q", errBadAnswer, line)
			}
			if n == 0 { // the trailer, up to its blank line
				for {
					line, err := readLine(r)
					if err != nil || len(line) == 0 {
						return sink, err
					}
				}
			}
			if sink, err = readN(r, n, sink, limit); err != nil {
				return sink, err
			}
			if line, err := readLine(r); err != nil || len(line) != 0 {
				return sink, fmt.Errorf("%w: no CRLF after a chunk", errBadAnswer)
			}
		}
	case h.length >= 0:
		return readN(r, h.length, sink, limit)
	case h.status == 204 || h.status == 304 || h.status/100 == 1:
		return sink, nil
	}
	return sink, fmt.Errorf("%w: status %d with neither Content-Length nor chunks", errBadAnswer, h.status)
}

// readN reads n bytes, appending them to sink up to limit bytes in all.
func readN(r *bufio.Reader, n int64, sink []byte, limit int) ([]byte, error) {
	for n > 0 {
		b, err := r.Peek(int(min(n, int64(r.Size()))))
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return sink, err
		}
		if room := limit - len(sink); room > 0 {
			sink = append(sink, b[:min(len(b), room)]...)
		}
		_, _ = r.Discard(len(b))
		n -= int64(len(b))
	}
	return sink, nil
}
