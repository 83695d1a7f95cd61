package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one REST request.
const requestTimeout = 30 * time.Second

// rest posts to the server's REST API as a service.
// rest posts to the server: over the bench's own connections (raw) when the server is
// plain HTTP, else through net/http (client, with auth).
type rest struct {
	base   string // http://host:port
	raw    *rawClient
	auth   []string
	client *http.Client
}

func newREST(base, apiKey string, conns int) *rest {
	r := &rest{base: base, raw: newRawClient(base, "Bearer "+apiKey, conns)}
	if r.raw == nil {
		r.auth = []string{"Bearer " + apiKey}
		r.client = &http.Client{
			Timeout: requestTimeout,
			Transport: &http.Transport{
				MaxIdleConns:        conns,
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
		}
	}
	return r
}

var jsonContent = []string{"application/json"}

// errorBodyLimit is how much of an error response post keeps.
const errorBodyLimit = 512

// httpError is a response other than 2xx.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return "HTTP " + strconv.Itoa(e.status) + ": " + e.body }

// post sends body to path and returns the status, the Retry-After of a 429, and for
// any status but 2xx an *httpError with the start of the body.
func (r *rest) post(ctx context.Context, path string, body []byte) (status int, retry time.Duration, err error) {
	status, retry, _, err = r.postRead(ctx, path, body, nil)
	return status, retry, err
}

// answerLimit bounds the answer postRead keeps: an event's 202 lists every notification
// it stored, up to herald's batch limit of 1,000.
const answerLimit = 8 << 20

// postRead is post that also returns a 2xx answer's body, appended to buf[:0] (nil buf:
// the body is discarded).
func (r *rest) postRead(ctx context.Context, path string, body, buf []byte) (status int, retry time.Duration, answer []byte, err error) {
	if r.raw != nil {
		return r.raw.postRead(ctx, path, body, buf)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, buf, err
	}
	req.Header["Authorization"] = r.auth
	req.Header["Content-Type"] = jsonContent
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, buf, err
	}
	defer resp.Body.Close()
	answer = buf
	switch {
	case resp.StatusCode/100 != 2:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		err = &httpError{resp.StatusCode, string(bytes.TrimSpace(b))}
	case buf != nil:
		answer, err = readAll(io.LimitReader(resp.Body, answerLimit), buf[:0])
	}
	_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
	if resp.StatusCode == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			retry = time.Duration(s) * time.Second
		}
	}
	return resp.StatusCode, retry, answer, err
}

// publishStats counts requests and their outcomes.
type publishStats struct {
	requests atomic.Int64
	acked    atomic.Int64 // notifications acknowledged with 201 (events: stored, as the 202 counts them)
	latency  histogram    // request sent → 201 (202) received: the commit, as a caller sees it
	window   windowed     // the same, per -window

	events    atomic.Int64 // events answered 202
	offFanout atomic.Int64 // events answered 202 with a count of notifications other than the fan-out

	mu       sync.Mutex
	statuses map[int]int64 // requests answered other than 201 (202), by status; 0: no answer
	firstErr error
	firstOff string // the first 202 that counted other than the fan-out
}

// off records a 202 whose count of notifications was not the fan-out.
func (s *publishStats) off(answer []byte, err error) {
	s.offFanout.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstOff == "" {
		s.firstOff = string(answer[:min(len(answer), errorBodyLimit)])
		if err != nil {
			s.firstOff = err.Error() + ": " + s.firstOff
		}
	}
}

func (s *publishStats) fail(status int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statuses == nil {
		s.statuses = map[int]int64{}
	}
	s.statuses[status]++
	if err != nil && s.firstErr == nil {
		s.firstErr = err
	}
}

func (s *publishStats) failures() (map[int]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int64, len(s.statuses))
	for k, v := range s.statuses {
		out[k] = v
	}
	return out, s.firstErr
}

// Publishing modes (-publish).
const (
	publishSingle = "single" // POST /notifications
	publishBatch  = "batch"  // POST /notifications/batch with items[]
	publishBoth   = "both"   // publishers alternate between the two
	// publishMulticast is POST /notifications/batch with receiverIds[] and one body:
	// markers first..first+k-1 go to users[(first+j) % len(users)], and the payload
	// carries first (as events do).
	publishMulticast = "multicast"

	// publishEvents is the events scenario's: POST /events, one event fanned out to
	// fanout users by the bench's rule. Not a -publish value.
	publishEvents = "events"
)

// publishing is a run of publishers sending to users[m % len(users)] for marker m, at
// rate notifications/s in all (0: flat out), from start until end. In mode
// publishEvents the rate counts events, and an event with markers m..m+fanout-1 goes to
// users[(m+j) % len(users)] for j < fanout.
type publishing struct {
	rest       *rest
	ledger     *ledger
	users      []string
	rate       float64
	start, end time.Time
	mode       string
	batchSize  int
	fanout     int // publishEvents: receivers of each event
	// route, when set, picks the node a request for markers from first goes to
	// (several nodes); else every request goes to rest.
	route func(first int64) *rest
	stats publishStats
}

// run starts n publishers and waits for them. They stop at p.end, when the ledger is
// full or when ctx ends.
func (p *publishing) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for i := range n {
		k := 1
		switch {
		case p.mode == publishEvents:
			k = p.fanout
		case p.mode == publishBatch || p.mode == publishMulticast || p.mode == publishBoth && i%2 == 1:
			k = p.batchSize
		}
		wg.Go(func() { p.publisher(ctx, k) })
	}
	wg.Wait()
}

// publisher sends requests of k notifications (k = 1: single creates; events: one
// event of k receivers), each due at the time the rate gives its first marker.
func (p *publishing) publisher(ctx context.Context, k int) {
	path := "/notifications"
	perSecond := p.rate // markers
	var answer []byte   // the answers of /events, which the bench reads
	switch {
	case p.mode == publishEvents:
		path = "/events"
		perSecond *= float64(k) // the rate counts events: k markers each
		answer = make([]byte, 0, 512*k)
	case k > 1:
		path = "/notifications/batch"
	}
	body := make([]byte, 0, 128*k)
	timer := time.NewTimer(0)
	<-timer.C
	wait := func(d time.Duration) bool {
		if d <= 0 {
			return ctx.Err() == nil
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		first, ok := p.ledger.reserve(k)
		if !ok {
			return
		}
		due := p.start
		if p.rate > 0 {
			due = p.start.Add(time.Duration(float64(first) / perSecond * float64(time.Second)))
		}
		if !due.Before(p.end) || !wait(time.Until(due)) || !time.Now().Before(p.end) {
			return
		}
		t := time.Now().UnixNano()
		switch p.mode {
		case publishEvents:
			body = p.event(body[:0], first, k, t)
		case publishMulticast:
			body = p.multicast(body[:0], first, k, t)
		default:
			body = p.body(body[:0], first, k, t)
		}
		p.ledger.sent(first, k, t)
		p.stats.requests.Add(1)
		to := p.rest
		if p.route != nil {
			to = p.route(first)
		}
		status, retry, ans, err := to.postRead(ctx, path, body, answer)
		answer = ans
		switch {
		case p.mode != publishEvents && status == http.StatusCreated,
			p.mode == publishEvents && status == http.StatusAccepted:
			now := time.Now().UnixNano()
			p.stats.latency.record(time.Duration(now - t))
			p.stats.window.record(time.Duration(now - t))
			if p.mode == publishEvents {
				p.stats.events.Add(1)
				// The ledger only owes the bench what the answer says was stored.
				if n, err := eventNotifications(answer); err != nil || n != int64(k) {
					p.stats.off(answer, err)
					continue
				}
			}
			p.ledger.ack(first, k, now)
			p.stats.acked.Add(int64(k))
			continue
		}
		if ctx.Err() != nil {
			return
		}
		p.stats.fail(status, err)
		if retry > 0 && !wait(min(retry, time.Until(p.end))) {
			return
		}
	}
}

// body appends the request body for markers first..first+k-1 published at t.
func (p *publishing) body(b []byte, first int64, k int, t int64) []byte {
	if k == 1 {
		return p.item(b, first, t)
	}
	b = append(b, `{"items":[`...)
	for m := first; m < first+int64(k); m++ {
		if m > first {
			b = append(b, ',')
		}
		b = p.item(b, m, t)
	}
	return append(b, "]}"...)
}

func (p *publishing) item(b []byte, m, t int64) []byte {
	b = append(b, `{"receiverId":"`...)
	b = append(b, p.users[m%int64(len(p.users))]...) // bench ids need no escaping
	b = append(b, `","type":"bench.deliver","payload":`...)
	b = appendPayload(b, t, m)
	return append(b, '}')
}

// multicast appends the body of one notification, marker first, to the k users from
// users[first % len(users)] on.
func (p *publishing) multicast(b []byte, first int64, k int, t int64) []byte {
	b = append(b, `{"receiverIds":[`...)
	b = appendReceivers(b, p.users, first, k)
	b = append(b, `],"type":"bench.deliver","payload":`...)
	b = appendPayload(b, t, first)
	return append(b, '}')
}

// appendReceivers appends, as JSON strings separated by commas, the k users from
// users[first % len(users)] on (wrapping round).
func appendReceivers(b []byte, users []string, first int64, k int) []byte {
	n := int64(len(users))
	for j := range int64(k) {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, users[(first+j)%n]...) // bench ids need no escaping
		b = append(b, '"')
	}
	return b
}

// appendPayload appends the bench's payload: publish time and marker.
func appendPayload(b []byte, t, m int64) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"m":`...)
	b = strconv.AppendInt(b, m, 10)
	return append(b, '}')
}

// broadcastBody returns a batch body with receiverIds: one notification, marker m, to
// each of users.
func broadcastBody(users []string, t, m int64) []byte {
	b := make([]byte, 0, 64+len(users)*24)
	b = append(b, `{"receiverIds":[`...)
	b = appendReceivers(b, users, 0, len(users))
	b = append(b, `],"type":"bench.broadcast","payload":`...)
	b = appendPayload(b, t, m)
	return append(b, '}')
}
