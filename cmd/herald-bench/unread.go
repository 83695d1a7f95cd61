package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// seedUnread gives each of the run's -n users -unread unread notifications of about
// -unread-bytes of payload each: -unread rounds of POST /notifications/batch with
// receiverIds, in chunks of 1,000 users, -publishers requests at once. It fails unless
// every request is acknowledged: the memory figures that follow are for that state.
func (s *session) seedUnread(ctx context.Context, r *Result) error {
	o := s.o
	users := s.userIDs()
	api := newREST(s.t.base, s.t.apiKey, o.publishers)
	payload := unreadPayload(o.unreadBytes)
	var stats publishStats
	start := time.Now()
	var rm rateMeter
	total := int64(o.n) * int64(o.unread)
	p := startProgress(s.progress, time.Second, func(el time.Duration) string {
		n := stats.acked.Load()
		return fmt.Sprintf("%s %s: seeding %d/%d unread (%s)", o.scenario, fmtElapsed(el), n, total, fmtRate(rm.rate(n, el)))
	})
	sem := make(chan struct{}, o.publishers)
	var wg sync.WaitGroup
	for round := 0; round < o.unread && ctx.Err() == nil; round++ {
		for i := 0; i < len(users); i += broadcastChunk {
			j := min(i+broadcastChunk, len(users))
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				stats.requests.Add(1)
				status, _, err := api.post(ctx, "/notifications/batch", unreadBody(users[i:j], payload))
				if status == http.StatusCreated {
					stats.acked.Add(int64(j - i))
					return
				}
				stats.fail(status, err)
			})
		}
	}
	wg.Wait()
	p.Stop()
	took := time.Since(start)
	r.count("unread notifications seeded", stats.acked.Load())
	r.duration("seeding time", took)
	if stats.acked.Load() != total {
		publishFailures(r, &stats)
		_, firstErr := stats.failures()
		return fmt.Errorf("seeding: %d of %d notifications acknowledged; first error: %v", stats.acked.Load(), total, firstErr)
	}
	return ctx.Err()
}

// unreadPayload returns a JSON object of exactly n bytes (at least 12).
func unreadPayload(n int) string {
	const open, end = `{"text":"`, `"}`
	return open + strings.Repeat("x", max(0, n-len(open)-len(end))) + end
}

// unreadBody returns a batch body with receiverIds: one notification with payload to
// each of users.
func unreadBody(users []string, payload string) []byte {
	b := make([]byte, 0, 64+len(users)*24+len(payload))
	b = append(b, `{"receiverIds":[`...)
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, u...)
		b = append(b, '"')
	}
	b = append(b, `],"type":"bench.unread","payload":`...)
	b = append(b, payload...)
	return append(b, '}')
}
