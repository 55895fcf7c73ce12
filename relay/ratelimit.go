package relay

import (
	"sync"
	"time"
)

// Rate is a token-bucket rate: Per events per second with bursts of Burst.
type Rate struct {
	PerSecond float64
	Burst     float64
}

// bucket is one token bucket. Not safe for concurrent use by itself.
type bucket struct {
	tokens float64
	last   time.Time
}

// take removes one token, or says how long until one is available.
func (b *bucket) take(r Rate, now time.Time) (ok bool, wait time.Duration) {
	if b.last.IsZero() {
		b.tokens = r.Burst
	} else if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens += el * r.PerSecond
		if b.tokens > r.Burst {
			b.tokens = r.Burst
		}
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if r.PerSecond <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((1 - b.tokens) / r.PerSecond * float64(time.Second))
}

// keyedLimiter keeps one bucket per key (e.g. per client IP), forgetting
// full buckets now and then so that it does not grow without bound.
type keyedLimiter struct {
	rate    Rate
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

func newKeyedLimiter(r Rate) *keyedLimiter {
	return &keyedLimiter{rate: r, buckets: make(map[string]*bucket)}
}

func (l *keyedLimiter) allow(key string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		refill := time.Duration(l.rate.Burst / max(l.rate.PerSecond, 1e-9) * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.last) > refill {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = new(bucket)
		l.buckets[key] = b
	}
	if ok, wait := b.take(l.rate, now); !ok {
		return &RateError{RetryAfter: wait}
	}
	return nil
}

// enrollLimiter limits enrollments, device links and failed logins: per
// client address key, and enrollments and links of all addresses together
// too, so that many addresses (a botnet, an IPv6 block split into /64s)
// do not multiply the guesses at activation codes.
type enrollLimiter struct {
	perAddr *keyedLimiter
	allRate Rate
	mu      sync.Mutex
	all     bucket
}

func newEnrollLimiter(perAddr, all Rate) *enrollLimiter {
	return &enrollLimiter{perAddr: newKeyedLimiter(perAddr), allRate: all}
}

// allow takes a token from key's bucket, then one from the global bucket.
func (l *enrollLimiter) allow(key string, now time.Time) error {
	if err := l.perAddr.allow(key, now); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok, wait := l.all.take(l.allRate, now); !ok {
		return &RateError{RetryAfter: wait}
	}
	return nil
}

// allowAddr takes a token from key's bucket only (failed logins: no code
// is guessed, and they must not lock everybody out of enrolling).
func (l *enrollLimiter) allowAddr(key string, now time.Time) error {
	return l.perAddr.allow(key, now)
}
