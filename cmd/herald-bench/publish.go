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
type rest struct {
	base   string // http://host:port
	auth   []string
	client *http.Client
}

func newREST(base, apiKey string, conns int) *rest {
	return &rest{
		base: base,
		auth: []string{"Bearer " + apiKey},
		client: &http.Client{
			Timeout: requestTimeout,
			Transport: &http.Transport{
				MaxIdleConns:        conns,
				MaxIdleConnsPerHost: conns,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
		},
	}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header["Authorization"] = r.auth
	req.Header["Content-Type"] = jsonContent
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		err = &httpError{resp.StatusCode, string(bytes.TrimSpace(b))}
	}
	_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
	if resp.StatusCode == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			retry = time.Duration(s) * time.Second
		}
	}
	return resp.StatusCode, retry, err
}

// publishStats counts requests and their outcomes.
type publishStats struct {
	requests atomic.Int64
	acked    atomic.Int64 // notifications acknowledged with 201
	latency  histogram    // request sent → 201 received: the commit, as a caller sees it

	mu       sync.Mutex
	statuses map[int]int64 // requests answered other than 201, by status; 0: no answer
	firstErr error
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
)

// publishing is a run of publishers sending to users[m % len(users)] for marker m, at
// rate notifications/s in all (0: flat out), from start until end.
type publishing struct {
	rest       *rest
	ledger     *ledger
	users      []string
	rate       float64
	start, end time.Time
	mode       string
	batchSize  int
	stats      publishStats
}

// run starts n publishers and waits for them. They stop at p.end, when the ledger is
// full or when ctx ends.
func (p *publishing) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for i := range n {
		k := 1
		if p.mode == publishBatch || p.mode == publishBoth && i%2 == 1 {
			k = p.batchSize
		}
		wg.Go(func() { p.publisher(ctx, k) })
	}
	wg.Wait()
}

// publisher sends requests of k notifications (k = 1: single creates), each due at the
// time the rate gives its first marker.
func (p *publishing) publisher(ctx context.Context, k int) {
	path := "/notifications"
	if k > 1 {
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
			due = p.start.Add(time.Duration(float64(first) / p.rate * float64(time.Second)))
		}
		if !due.Before(p.end) || !wait(time.Until(due)) || !time.Now().Before(p.end) {
			return
		}
		t := time.Now().UnixNano()
		body = p.body(body[:0], first, k, t)
		p.ledger.sent(first, k, t)
		p.stats.requests.Add(1)
		status, retry, err := p.rest.post(ctx, path, body)
		if status == http.StatusCreated {
			now := time.Now().UnixNano()
			p.ledger.ack(first, k, now)
			p.stats.acked.Add(int64(k))
			p.stats.latency.record(time.Duration(now - t))
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
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, u...)
		b = append(b, '"')
	}
	b = append(b, `],"type":"bench.broadcast","payload":`...)
	b = appendPayload(b, t, m)
	return append(b, '}')
}
