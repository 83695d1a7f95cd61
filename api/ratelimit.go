package api

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Rate is a token-bucket limit: Per tokens a second, up to Burst saved up. A zero Per
// means no limit.
type Rate struct {
	Per   float64
	Burst int
}

// limiter holds one token bucket per key (a user id or an API key label). Buckets that
// have refilled completely are indistinguishable from new ones, so a sweep drops them:
// memory follows the keys active within about Burst/Per seconds, not every key ever seen.
type limiter struct {
	rate Rate
	now  func() time.Time

	// mu guards buckets and nextSweep. The critical section is a map lookup and a few
	// float operations; a request never holds it while doing I/O.
	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(r Rate, now func() time.Time) *limiter {
	if r.Burst < 1 {
		r.Burst = 1
	}
	return &limiter{rate: r, now: now, buckets: map[string]*bucket{}}
}

// allow takes one token for key. When none is left it returns false and how long until
// one is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil || l.rate.Per <= 0 {
		return true, 0
	}
	now := l.now()
	burst := float64(l.rate.Burst)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.nextSweep) {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.at).Seconds()*l.rate.Per)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate.Per * float64(time.Second))
}

// sweep drops the buckets that are full again. Called with mu held.
func (l *limiter) sweep(now time.Time) {
	full := time.Duration(float64(l.rate.Burst) / l.rate.Per * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.at) >= full {
			delete(l.buckets, k)
		}
	}
	l.nextSweep = now.Add(max(full, time.Second))
}

// retryAfter is the Retry-After header value for a wait: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
